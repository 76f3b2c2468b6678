"""Unlearning by update deletion: the Amnesiac baselines and Independent unlearning (`docs/baselines.md`).

`TaskUpdates` is a mixin placed before a continual-learning method in the bases: it records every task's parameter
update Delta theta^(t) = theta_end - theta_start (backbone and heads, every state-dict entry) and unlearns task u by
theta <- theta - Delta theta^(u). A method then forgets what else it keeps about u in `forget_task` (LwF its teacher,
EWC its Fisher matrix and snapshot, DER its buffer samples).
"""

from __future__ import annotations

import torch

from baselines.der import DER, DERpp
from baselines.ewc import EWC
from baselines.finetuning import Finetuning
from baselines.independent import Independent
from baselines.lwf import LwF
from common.config import Hparam
from common.unlearning import TaskUpdateStore

# shared by every method here whose replay buffer loses an unlearned task's examples
REFILL_FREED_SLOTS = Hparam(True, "true (reference code): buffer slots freed by unlearning go to the next examples "
                                  "offered, at once; false: only when the reservoir draw picks them")
# docs/fidelity.md#delete_from_current_head
DELETE_FROM_CURRENT_HEAD = Hparam(True, "true (reference code): deleting task u's update also subtracts u's own head "
                                        "update from the head of the task being trained (task-incremental only); "
                                        "false: every head loses only its own recorded change")


class TaskUpdates:
    """Mixin: per-task update records and unlearning by subtracting them.

    Records are kept while a task can still be unlearned; when a task becomes permanent its update is folded into
    the store's base (theta^(0) plus the permanent updates), so theta = base + sum of the kept records at all times.
    `update_prune_ratio` drops the smallest-magnitude share of every stored entry (memory against exactness).
    """

    unlearnable = True
    hparams = {"update_prune_ratio": Hparam(0.0, "share of the smallest-magnitude entries dropped from every stored "
                                                 "task update (0 = exact unlearning)", ge=0, lt=1),
               "delete_from_current_head": DELETE_FROM_CURRENT_HEAD}
    # settings that act only when unlearning (references ignore them)
    unlearning_keys = ("update_prune_ratio", "delete_from_current_head")
    til_only_keys = ("delete_from_current_head",)  # one shared head otherwise: no alias

    def begin_task(self, task) -> None:
        if self.unlearning_enabled:
            self.prepare_updates()
            self.updates.snapshot()
        super().begin_task(task)

    def prepare_updates(self) -> None:
        """Create the store at the first task (on the device the method was moved to) and fold the records of tasks
        that just became permanent into its base. Safe to call twice."""
        if getattr(self, "updates", None) is None:
            self.updates = TaskUpdateStore(self.update_modules(), self.cfg["update_prune_ratio"])
        for tau in self.unlearning_state.just_permanent:
            self.updates.make_permanent(tau)

    def update_modules(self) -> dict:
        return {"backbone": self.backbone, "heads": self.heads}

    def end_task(self, task) -> None:
        super().end_task(task)
        if self.unlearning_enabled:
            self.updates.record(task.id)

    def unlearn(self, task_ids: list[int]) -> None:
        """Delete each task's update (backbone and heads: an unlearned head returns to its initial value), then
        forget the method's own records of it."""
        for u in task_ids:
            self.forget_task(u, self.delete_update(u))

    @torch.no_grad()
    def delete_update(self, u: int) -> dict:
        """theta <- theta - Delta theta^(u) and drop the record; returns the deleted update. With
        `delete_from_current_head` (the reference code, task-incremental), the head of the task being trained also
        loses u's own head update: the reference heads' state dict holds the current head twice (under its task and
        as the "current head" alias), the alias is reloaded last, and in u's record the alias stands for u's head
        (docs/fidelity.md#delete_from_current_head)."""
        delta = self.updates.subtract(u)
        if self.cfg["delete_from_current_head"] and self.cfg["setting"] == "til" and u != self.task_id:
            for name, param in self.heads.head(self.task_id).named_parameters():
                param.sub_(delta["heads"][f"heads.{u - 1}.{name}"].to(param.dtype))
        return delta

    def forget_task(self, task_id: int, delta: dict) -> None:
        """Drop what the method keeps about an unlearned task (nothing for Finetuning); `delta` is its deleted
        update (module name -> state-dict key -> tensor)."""

    def extra_metrics(self) -> dict:
        store = getattr(self, "updates", None)
        if store is None:
            return super().extra_metrics()
        return {**super().extra_metrics(), "update_store_mb": store.nbytes() / 2**20,
                "update_store_peak_mb": store.peak_nbytes / 2**20,
                "update_store_dense_peak_mb": store.peak_dense_nbytes / 2**20}


class AmnesiacFinetuning(TaskUpdates, Finetuning):
    name = "amnesiac_finetuning"


class AmnesiacLwF(TaskUpdates, LwF):
    """Also drops the teacher snapshot of the unlearned task."""

    name = "amnesiac_lwf"

    def forget_task(self, task_id, delta):
        self.teachers.pop(task_id, None)


class AmnesiacDER(TaskUpdates, DER):
    """Also purges the unlearned task's samples from the replay buffer (freed slots: `refill_freed_slots`)."""

    name = "amnesiac_der"
    hparams = {"refill_freed_slots": REFILL_FREED_SLOTS}
    unlearning_keys = TaskUpdates.unlearning_keys + ("refill_freed_slots",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.buffer.refill_freed = cfg["refill_freed_slots"]

    def forget_task(self, task_id, delta):
        self.buffer.delete_task(task_id)


class AmnesiacDERpp(TaskUpdates, DERpp):
    name = "amnesiac_derpp"
    hparams = {"refill_freed_slots": REFILL_FREED_SLOTS}
    unlearning_keys = TaskUpdates.unlearning_keys + ("refill_freed_slots",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.buffer.refill_freed = cfg["refill_freed_slots"]

    def forget_task(self, task_id, delta):
        self.buffer.delete_task(task_id)


class AmnesiacEWC(TaskUpdates, EWC):
    """Keeps each task's Fisher matrix F_tau and snapshot theta*_tau separately; unlearning u drops them and, with
    `unlearn_later_snapshots` (the reference config), subtracts Delta theta^(u) from the snapshots of later tasks;
    the penalty's running sums are then rebuilt from what is left."""

    name = "amnesiac_ewc"
    hparams = {"unlearn_later_snapshots": Hparam(True, "also subtract the unlearned task's update from the EWC "
                                                       "snapshots of later tasks (reference config)")}
    unlearning_keys = TaskUpdates.unlearning_keys + ("unlearn_later_snapshots",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.per_task: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}  # tau -> (F_tau, theta*_tau)
        self.param_keys = [k for k, _ in self.backbone.named_parameters()]

    @torch.no_grad()
    def end_task(self, task) -> None:
        n = max(1, self.samples_now)
        self.per_task[task.id] = ([acc / n for acc in self.fisher_now], [p.detach().clone() for p in self.params])
        super().end_task(task)

    @torch.no_grad()
    def forget_task(self, task_id, delta):
        self.per_task.pop(task_id, None)
        if self.cfg["unlearn_later_snapshots"]:
            for tau, (_, snapshot) in self.per_task.items():
                if tau > task_id:
                    for p, key in zip(snapshot, self.param_keys):
                        p.sub_(delta["backbone"][key])
        self.rebuild_sums()

    @torch.no_grad()
    def rebuild_sums(self) -> None:
        self.fisher_sum = [torch.zeros_like(p) for p in self.params]
        self.fisher_theta_sum = [torch.zeros_like(p) for p in self.params]
        self.fisher_theta2_sum = 0.0
        for fisher, snapshot in self.per_task.values():
            for f_sum, ft_sum, f, s in zip(self.fisher_sum, self.fisher_theta_sum, fisher, snapshot):
                f_sum.add_(f)
                ft_sum.add_(f * s)
                self.fisher_theta2_sum += (f * s * s).sum().item()
        self.num_fishers = len(self.per_task)


class UnlearnableIndependent(Independent):
    """Independent with unlearning (`docs/baselines.md#independent`): unlearning u resets its network to theta^(0),
    re-initialises its head and leaves it out of the averaged features. Registered as `independent` in this folder."""

    name = "independent"  # so that amnesiachat/configs/independent.yaml applies
    unlearnable = True

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.unlearned: set[int] = set()

    @torch.no_grad()
    def unlearn(self, task_ids):
        for u in task_ids:
            self.task_backbones[u].load_state_dict(self.initial_state)
            self.heads.head(u).reset_parameters()
            self.unlearned.add(u)

    @torch.no_grad()
    def aggregated_features(self, x):
        """Mean over the per-task networks of the learned, not unlearned tasks."""
        kept = [net for t, net in self.task_backbones.items() if t not in self.unlearned]
        return torch.stack([net(x) for net in kept]).mean(0) if kept else self.backbone(x)
