"""AmnesiacHAT: continual learning with HAT / AdaHAT protection that can also unlearn a task (`docs/amnesiachat.md`).

Training (`docs/amnesiachat.md#training-with-backups-and-replay`): the AdaHAT (or HAT) step, plus
* DER++ replay: buffer samples of earlier tasks, forwarded with their own task's stored binary mask and head,
  lambda * MSE(logits, stored logits) + beta * CE (the same samples for both terms);
* one backup network per unlearnable earlier task b, a plain copy of the weighted layers initialised as "the network
  without b" (`backup_init`), trained on the current task by mask routing (b's units through the backup, the rest
  through the shared main weights); their mean cross-entropy is added to the loss with weight 1.
The gradient adjustment acts on the main weighted layers only.

Task end: HAT bookkeeping, the task's update Delta theta^(t) recorded, the cumulative mask rebuilt as the union
of the stored masks of the tasks not unlearned, every backup saved under (b, t).

Unlearning u (`docs/amnesiachat.md#unlearning-a-task`): delete Delta theta^(u); purge u from the buffer; backup
compensation (the weights between two units shared by u and a later task tau take the values of backup (u, tau));
replay repair (steps of DER++ on the affected tasks' buffer samples, moving only weights between units of u that
the replayed tasks also use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adahat.adahat import AdaHAT
from amnesiachat.amnesiac import REFILL_FREED_SLOTS, TaskUpdates
from amnesiachat.backups import (
    compensate,
    load_weights,
    make_backup,
    overlap,
    routed_forward,
    save_state,
)
from common.config import ConfigError, Hparam
from common.hat import parameter_wise
from common.replay import ReplayBatch, ReplayBuffer, replay_logits, replay_losses


class AmnesiacHAT(TaskUpdates, AdaHAT):
    name = "amnesiachat"
    hparams = {
        "architecture": Hparam("AdaHAT", "gradient adjustment that protects earlier tasks: AdaHAT (paper) or HAT",
                               choices=("AdaHAT", "HAT")),
        "replay": Hparam(True, "DER++ replay during training (and the buffer that replay repair draws from)"),
        "buffer_size": Hparam(200, "reservoir buffer size of the DER++ replay", ge=1),
        "der_alpha": Hparam(0.5, "logit-MSE factor lambda of the replay term (and of replay repair)", ge=0),
        "der_beta": Hparam(0.5, "cross-entropy factor beta of the replay term (and of replay repair)", ge=0),
        "backup_init": Hparam("delete", "a backup starts as the network without its task: delete (paper config: "
                                        "main minus the task's update) or before (the weights before the task)",
                              choices=("delete", "before")),
        "backup_compensation": Hparam(True, "on unlearning, copy the backups into the units shared by the "
                                            "unlearned task and later tasks"),
        "compensate_order": Hparam("normal", "backup compensation order: normal (oldest affected task first, later "
                                             "ones overwrite) or reverse", choices=("normal", "reverse")),
        "replay_repair": Hparam(True, "on unlearning, repair the affected tasks by replay"),
        "repair_steps": Hparam(50, "replay-repair steps per unlearning request", ge=0),
        "repair_batch_size": Hparam(200, "buffer examples per replay-repair step", ge=1),
        "recycle": Hparam("after_next_task", "when freed units leave M^{<t}: after_next_task (reference code, at the "
                                             "next task end) or next_task (right after unlearning)",
                          choices=("after_next_task", "next_task")),
        "refill_freed_slots": REFILL_FREED_SLOTS,
        "backup_unlearned": Hparam(True, "also build backups for unlearnable tasks already unlearned (reference code: "
                                         "its unlearnable list keeps them; they join the backup mean), false: skip "
                                         "them", equation="AmnesiacHAT loss, mean over the backup set B_t"),
        "recycle_summative": Hparam(False, "also remove unlearned masks from AdaHAT's summative mask (reference "
                                           "code: never)"),
    }
    unlearning_keys = (*TaskUpdates.unlearning_keys, "backup_init", "backup_compensation", "compensate_order",
                       "replay_repair", "repair_steps", "repair_batch_size", "recycle", "recycle_summative",
                       "refill_freed_slots", "backup_unlearned")

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg["unlearning_requests"].strip() and not cfg["cul_reference"] and cfg["hat_batch_norm"] != "none":
            raise ConfigError(f"hat_batch_norm must be none for AmnesiacHAT unlearning runs (its backup networks "
                              f"have no batch norm), got {cfg['hat_batch_norm']!r}")

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.buffer = ReplayBuffer(cfg["buffer_size"], refill_freed=cfg["refill_freed_slots"])
        self.backups = nn.ModuleDict()  # str(b) -> backup network of task b, re-created every task
        self.backup_states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}  # (b, t) -> saved backup b
        self.unlearned: set[int] = set()

    # ----- task start: backups -------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        self.backups = nn.ModuleDict()
        if self.unlearning_enabled:
            self.prepare_updates()
            for b in self.backup_tasks(task.id):
                self.backups[str(b)] = self.new_backup(b)
        super().begin_task(task)  # snapshot, fresh embeddings, then the optimizer over main and backup weights

    def backup_tasks(self, t: int) -> list[int]:
        """The backup set B_t: the unlearnable tasks but t; with `backup_unlearned: false` also without the tasks
        already unlearned (the reference keeps them, their update being gone)."""
        return [b for b in self.unlearning_state.unlearnable
                if b != t and (self.cfg["backup_unlearned"] or b not in self.unlearned)]

    def new_backup(self, b: int) -> nn.Module:
        """A plain copy of the weighted layers of the network without task b (`backup_init`): `delete` = the current
        parameters minus b's own update (a copy of the current parameters once b is unlearned, its update gone);
        `before` = the parameters just before b was trained (minus the updates of tasks unlearned since)."""
        backup = make_backup(self.backbone)
        if self.cfg["backup_init"] == "delete":
            delta = self.updates.delta(b)["backbone"] if b not in self.unlearned else {}
            weights = {k: v.detach() - delta[k] if k in delta else v.detach().clone()
                       for k, v in self.backbone.state_dict().items()}
        else:
            weights = self.updates.state_before(b, skip=self.unlearned)["backbone"]
        load_weights(backup, weights)
        return backup

    # ----- the step --------------------------------------------------------------------------------------------------
    def adjustment_rates(self, masks, layer_sparsity, step):
        if self.cfg["architecture"] == "HAT":
            return self.hat_rates
        return super().adjustment_rates(masks, layer_sparsity, step)

    def extra_loss(self, x, y, step, masks, logits):
        """Mean backup cross-entropy plus the DER++ replay terms."""
        self.current_logits = logits.detach()
        loss = logits.new_zeros(())
        if len(self.backups):
            backup_ce = [F.cross_entropy(self.heads(routed_forward(self.backbone, backup, x, self.task_masks[int(b)],
                                                                   masks), step.task_id), y)
                         for b, backup in self.backups.items()]
            loss = loss + sum(backup_ce) / len(backup_ce)
        if self.cfg["replay"]:
            earlier = [t for t in self.buffer.task_counts() if t != step.task_id]
            batch = self.buffer.sample(len(y), earlier) if earlier else None
            if batch is not None:
                loss = loss + self.replay_term(batch)
        return loss

    def task_forward(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """Logits of a task through its stored binary mask and its head, with gradient (the 'test' stage)."""
        return self.heads(self.backbone(x, self.task_masks[task_id]), task_id)

    def replay_term(self, batch: ReplayBatch) -> torch.Tensor:
        """lambda * MSE(logits, stored logits) + beta * CE(logits, labels) on the same samples, each forwarded with
        its own task's stored mask and head (the same samples for both terms)."""
        mse, ce = replay_losses(replay_logits(self.task_forward, batch.x, batch.task_ids), batch)
        return self.cfg["der_alpha"] * mse + self.cfg["der_beta"] * ce

    def after_step(self, x, y, step, masks, activations, layer_sparsity) -> None:
        super().after_step(x, y, step, masks, activations, layer_sparsity)
        if self.cfg["replay"]:
            self.buffer.add(x, y, self.current_logits, step.task_id)

    # ----- task end ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def end_task(self, task) -> None:
        super().end_task(task)  # mask, cumulative, summative; then Delta theta^(t)
        self.rebuild_masks()
        for b, backup in self.backups.items():
            self.backup_states[(int(b), task.id)] = save_state(backup)
        self.backups = nn.ModuleDict()  # re-created at the next task start; the optimizer goes with the task
        if self.unlearning_enabled:
            for tau in self.unlearning_state.just_permanent:
                self.backup_states = {k: v for k, v in self.backup_states.items() if k[0] != tau}

    @torch.no_grad()
    def rebuild_masks(self) -> None:
        """M^{<t} = union of the stored masks of the tasks not unlearned (the only place where an unlearned
        task's units become free); with `recycle_summative`, AdaHAT's summative mask likewise."""
        kept = [m for t, m in self.task_masks.items() if t not in self.unlearned]
        self.cumulative = union(kept) if kept else [torch.zeros_like(c) for c in self.cumulative]
        if self.cfg["recycle_summative"]:
            self.summative = [torch.stack(layer).sum(0) for layer in zip(*kept)] if kept else \
                [torch.zeros_like(s) for s in self.summative]

    # ----- unlearning --------------------------------------------------------------------------------------------------
    def unlearn(self, task_ids: list[int]) -> None:
        """Delete updates, purge the buffer, compensate from backups, repair by replay (docs/amnesiachat.md)."""
        with torch.no_grad():
            for u in task_ids:
                self.delete_update(u)
                self.buffer.delete_task(u)
        affected = [tau for tau in range(min(task_ids), self.task_id + 1)
                    if tau not in task_ids and tau not in self.unlearned]
        self.unlearned.update(task_ids)
        if self.cfg["backup_compensation"]:
            self.compensate_from_backups(task_ids[0], affected)
        if self.cfg["replay_repair"] and affected:
            self.repair(task_ids, affected)
        if self.cfg["recycle"] == "next_task":
            self.rebuild_masks()

    @torch.no_grad()
    def compensate_from_backups(self, u: int, affected: list[int]) -> int:
        """For each affected task tau (oldest first, or newest first with `compensate_order: reverse`), the weights
        whose both end units belong to u and tau take the values of backup (u, tau). Returns the entries written."""
        order = affected if self.cfg["compensate_order"] == "normal" else list(reversed(affected))
        written = 0
        for tau in order:
            state = self.backup_states.get((u, tau))
            if state is not None:
                written += compensate(self.backbone, state, overlap(self.task_masks[tau], self.task_masks[u]))
        return written

    def repair(self, task_ids: list[int], affected: list[int]) -> None:
        """`repair_steps` steps of 0.5 MSE + 0.5 CE on buffer samples of the affected tasks (strategy `joint`), with
        the optimizer left from the task; weighted-layer gradients are kept only between two units that belong to an
        unlearned task and to a task of the batch (heads and shortcut convs are not restricted)."""
        if not any(t in self.buffer.task_counts() for t in affected):
            return
        unlearned_units = union([self.task_masks[u] for u in task_ids])
        self.train()
        for _ in range(self.cfg["repair_steps"]):
            batch = self.buffer.sample(self.cfg["repair_batch_size"], affected)
            loss = self.replay_term(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            replayed_units = union([self.task_masks[t] for t in batch.task_ids.unique().tolist()])
            allowed = [torch.minimum(a, b) for a, b in zip(unlearned_units, replayed_units)]
            with torch.no_grad():
                for layer, (sel_w, sel_b) in zip(self.layers, parameter_wise(allowed, self.layers, "min")):
                    if layer.weight.grad is not None:
                        layer.weight.grad.mul_(sel_w)
                    if layer.bias is not None and layer.bias.grad is not None:
                        layer.bias.grad.mul_(sel_b)
            self.optimizer.step()
        self.eval()

    def extra_metrics(self) -> dict:
        saved = sum(v.numel() * v.element_size() for s in self.backup_states.values() for v in s.values())
        return {**super().extra_metrics(), "backup_states_mb": saved / 2**20}


def union(masks_per_task: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Unit-wise union (max) of several tasks' binary masks."""
    return [torch.stack(layer).amax(0) for layer in zip(*masks_per_task)]
