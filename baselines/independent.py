"""Independent: a fresh copy of the same initial backbone per task (reference for FWT)."""

import copy

import torch

from common.algorithm import Algorithm
from common.nets import frozen_copy


class Independent(Algorithm):
    """At every task start the backbone returns to its initial weights theta_0; after the task it is frozen into a
    per-task copy, which (with the task's own head) answers that task's test queries."""

    name = "independent"

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.initial_state = copy.deepcopy(self.backbone.state_dict())
        self.task_backbones: dict[int, torch.nn.Module] = {}  # plain dict: not trained, not in the optimizer

    def begin_task(self, task) -> None:
        self.backbone.load_state_dict(self.initial_state)
        super().begin_task(task)

    def end_task(self, task) -> None:
        self.task_backbones[task.id] = frozen_copy(self.backbone)

    @torch.no_grad()
    def predict(self, x, task_id):
        backbone = self.task_backbones.get(task_id, self.backbone)
        return self.heads(backbone(x), task_id)
