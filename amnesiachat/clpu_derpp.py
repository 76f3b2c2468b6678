"""CLPU-DER++: temporary tasks on their own backbones, merged into the main one by replay when they become permanent
(`docs/baselines.md#clpu-der`, `docs/amnesiachat.md#unlearning-protocol`)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from amnesiachat.amnesiac import REFILL_FREED_SLOTS
from baselines.der import DERpp
from common.config import Hparam
from common.engine import batches_per_epoch


class CLPUDERpp(DERpp):
    """DER++ with CLPU's temporary / permanent split.

    * A task that is unlearnable at its own start (age > 0 in `unlearning_state`) is temporary: it gets a temporary
      backbone (a copy of the main backbone, or of the initial weights theta_0 with `temporary_init: from_scratch`),
      trained with plain cross-entropy (no replay), used for that task's training and testing; its buffer entries
      store that backbone's logits.
    * Permanent tasks train on the main backbone with DER++, replaying every earlier task still in the buffer,
      temporary ones included, through the main backbone (`replay_temporary: true`, the AmnesiacHAT paper's code);
      with `replay_temporary: false` only the permanent, not unlearned ones, so that the main backbone never sees a
      temporary task's data (CLPU's design).
    * At the start of a task, the temporary backbone of every task that has just become permanent is merged into the
      main backbone: a fresh Adam over the main backbone and the heads, `merge_num_steps` steps, each on
      `merge_batch_size` buffer examples of the merged task (alpha * MSE to the stored logits + beta * CE) plus the
      same DER++ terms on examples of the other permanent, not unlearned tasks; then the temporary backbone is
      deleted. As in the reference code, the current task's temporary backbone is created before these merges.
    * `unlearn(u)`: purge u from the buffer and delete its temporary backbone; u is then evaluated through the main
      backbone and its old head.
    Without an unlearning state (or with `enabled` False: the reference runs) every task is permanent: plain DER++.
    """

    name = "clpu_derpp"
    unlearnable = True
    # merge_num_steps: 0 = epochs x batches per epoch of the current task, which is what the reference code ran
    # (its config value 500 was only the fallback when no trainer was attached); any other value is used as given.
    hparams = {
        "temporary_init": Hparam("from_main", "a temporary task's backbone starts as a copy of the main backbone "
                                              "(from_main) or of the initial weights (from_scratch)",
                                 choices=("from_main", "from_scratch")),
        "merge_num_steps": Hparam(500, "replay steps that merge a temporary backbone into the main one (0 = epochs "
                                       "x batches per epoch of the current task)", ge=0),
        "merge_batch_size": Hparam(200, "buffer examples of the merged task per merge step", ge=1),
        "refill_freed_slots": REFILL_FREED_SLOTS,
        "replay_temporary": Hparam(True, "while a permanent task trains, also replay the buffer examples of temporary "
                                         "tasks through the main backbone (true: the AmnesiacHAT paper's code; "
                                         "false: only permanent tasks, CLPU's design)"),
    }
    unlearning_keys = ("temporary_init", "merge_num_steps", "merge_batch_size", "refill_freed_slots",
                       "replay_temporary")

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.buffer.refill_freed = cfg["refill_freed_slots"]
        self.initial_state = copy.deepcopy(self.backbone.state_dict())  # theta_0, for from_scratch
        self.temporary_backbones = nn.ModuleDict()  # str(task id) -> backbone of a temporary task
        self.unlearned: set[int] = set()

    # ----- routing ------------------------------------------------------------------------------------------------
    def is_temporary(self, task_id: int) -> bool:
        return str(task_id) in self.temporary_backbones

    def backbone_of(self, task_id: int) -> nn.Module:
        """The temporary backbone of a temporary task, else the main one."""
        return self.temporary_backbones[str(task_id)] if self.is_temporary(task_id) else self.backbone

    def forward(self, x, task_id):
        return self.heads(self.backbone_of(task_id)(x), task_id)

    def replay_task_ids(self) -> list[int]:
        """Earlier tasks not unlearned; with `replay_temporary: false` only the permanent ones."""
        return [t for t in super().replay_task_ids() if t not in self.unlearned
                and (self.cfg["replay_temporary"] or not self.is_temporary(t))]

    # ----- task boundaries ----------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        if self.unlearning_enabled:  # otherwise plain DER++
            state = self.unlearning_state
            self.unlearned |= set(state.unlearned)
            if task.id in state.unlearnable:
                self.temporary_backbones[str(task.id)] = self.new_temporary_backbone()
            for tau in state.just_permanent:
                if tau != task.id and self.is_temporary(tau):
                    self.merge(tau, self.merge_steps(task))
        super().begin_task(task)

    def new_temporary_backbone(self) -> nn.Module:
        backbone = copy.deepcopy(self.backbone)
        if self.cfg["temporary_init"] == "from_scratch":
            backbone.load_state_dict(self.initial_state)
        return backbone

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the backbone the current task trains (its temporary one, or the main one) and the heads."""
        params = [*self.backbone_of(self.task_id).parameters(), *self.heads.parameters()]
        return self.adam(params)

    def merge_steps(self, task) -> int:
        steps = self.cfg["merge_num_steps"]
        return steps or self.cfg["epochs"] * batches_per_epoch(len(task.train_y), self.cfg["batch_size"])

    def merge(self, task_id: int, steps: int) -> None:
        """Distil the temporary task `task_id` into the main backbone from its buffer entries (with DER++ replay of
        the other permanent tasks), then delete its temporary backbone. Nothing to distil without buffer entries."""
        others = [t for t in self.seen_tasks
                  if t != task_id and not self.is_temporary(t) and t not in self.unlearned]
        bs = self.cfg["merge_batch_size"]
        if self.buffer.count([task_id]) > 0:
            optimizer = self.adam([*self.backbone.parameters(), *self.heads.parameters()])
            self.train()
            for _ in range(steps):
                other = self.replay_loss(bs, others)
                loss = self.replay_loss(bs, [task_id])
                loss = loss if other is None else loss + other
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        del self.temporary_backbones[str(task_id)]

    # ----- training -----------------------------------------------------------------------------------------------
    def train_step(self, x, y, step):
        if not self.is_temporary(step.task_id):
            return super().train_step(x, y, step)
        logits = self(x, step.task_id)
        loss = F.cross_entropy(logits, y)
        self.optimizer_step(loss)
        self.buffer.add(x, y, logits.detach(), step.task_id)
        return {"loss": loss.detach(), "ce": loss.detach()}

    # ----- unlearning ---------------------------------------------------------------------------------------------
    def unlearn(self, task_ids: list[int]) -> None:
        """Purge the tasks from the buffer and delete their temporary backbones (a task already merged into the
        main backbone cannot be taken out of it; the protocol only requests tasks that are still unlearnable)."""
        for u in task_ids:
            self.buffer.delete_task(u)
            if self.is_temporary(u):
                del self.temporary_backbones[str(u)]
            self.unlearned.add(u)

    @torch.no_grad()
    def aggregated_features(self, x):
        """Mean over the learned, not unlearned tasks of the features of the backbone each task uses (the main
        backbone's features computed once and counted once per task routed through it)."""
        tasks = [t for t in self.seen_tasks if t not in self.unlearned]
        temporary = [self.temporary_backbones[str(t)](x) for t in tasks if self.is_temporary(t)]
        on_main = len(tasks) - len(temporary)
        if on_main == 0 and not temporary:
            return self.backbone(x)
        parts = temporary + ([on_main * self.backbone(x)] if on_main else [])
        return torch.stack(parts).sum(0) / len(tasks)
