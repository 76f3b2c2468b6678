"""Base class of every continual-learning method (the registries are the `METHODS` dicts of each paper folder).

The engine calls, per task: `begin_task(task)`, then `train_step(x, y, step)` for every batch (the method owns
the whole step: forward, loss, backward, any gradient adjustment, optimizer step), `end_epoch(val_loss)` after
every epoch, `end_task(task)`; and `predict(x, task_id)` for evaluation. A paper variant subclasses its parent
and overrides the one method that differs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from common.config import Hparam, as_hparam, load_yaml
from common.nets import Heads, build_backbone


class PackedStepLog(NamedTuple):
    """A per-step log of (task id, value) as two tensors (see `Algorithm.__getstate__`)."""

    task_ids: torch.Tensor
    values: torch.Tensor


@dataclass
class Step:
    """Position of a training batch: 0-based batch index within the epoch, batches per epoch, epoch, task."""

    batch: int
    num_batches: int
    epoch: int
    task_id: int


class Algorithm(nn.Module):
    """Finetuning-style defaults: a plain backbone, one head per task, cross-entropy on the current head.

    Class attributes a method sets:
    * `hparams`: its own config keys, each declared once as an `Hparam` (default, one-line help, choices or
      range, paper equation), merged with every parent's (a child's declaration of a key replaces the parent's);
      a plain default instead of an `Hparam` still works (type from the default, no help, no range);
    * `plateau_scheduler`: whether the reference code stepped ReduceLROnPlateau for it (automatic optimisation in
      Lightning) — HAT-family methods and EWC ran at a constant learning rate (`docs/fidelity.md#plateau_scheduler`).
    """

    hparams: dict[str, Hparam] = {}
    plateau_scheduler: bool = True
    tensor_lists: tuple[str, ...] = ()  # bookkeeping held as plain lists of tensors, moved along by `.to(device)`
    step_logs: tuple[str, ...] = ()  # lists of (task id, 0-dim tensor) per step, pickled as two tensors

    def __init__(self, cfg: dict, classes_per_task: list[int], input_shape: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.classes_per_task = classes_per_task
        self.backbone = self.build_backbone(input_shape)
        self.heads = Heads(self.backbone.output_dim, classes_per_task, cfg["setting"])
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.task_id = 0

    # ----- construction -------------------------------------------------------------------------------------
    def build_backbone(self, input_shape) -> nn.Module:
        return build_backbone(self.cfg["backbone"], input_shape, self.cfg["batch_norm"])

    @classmethod
    def hparam_specs(cls) -> dict[str, Hparam]:
        """Declarations of the hyperparameters of this class and its parents (children override)."""
        merged = {}
        for klass in reversed(cls.__mro__):
            merged.update({k: as_hparam(v) for k, v in (getattr(klass, "hparams", {}) or {}).items()})
        return merged

    @classmethod
    def all_hparams(cls) -> dict:
        """Class defaults of the hyperparameters of this class and its parents (children override)."""
        return {name: spec.default for name, spec in cls.hparam_specs().items()}

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Checks across keys, run at configuration resolution (single values are checked by their `Hparam`
        declaration); raise `common.config.ConfigError`. Subclasses extend it with `super().check_config(cfg)`."""

    @classmethod
    def yaml_defaults(cls) -> dict:
        """Published settings from `<package>/configs/<name>.yaml` beside each class's module, parents first (so
        FG-AdaHAT (IG) reads hat.yaml, adahat.yaml, fgadahat.yaml, then fgadahat_ig.yaml)."""
        merged = {}
        for klass in reversed(cls.__mro__):
            if "name" not in vars(klass) or not issubclass(klass, Algorithm):
                continue
            path = Path(inspect.getfile(klass)).parent / "configs" / f"{klass.name}.yaml"
            if path.exists():
                merged.update(load_yaml(path))
        return merged

    name = "base"

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for name in self.tensor_lists:
            if hasattr(self, name):
                setattr(self, name, [fn(t) for t in getattr(self, name)])
        return self

    # ----- pickling (checkpoints, `common/checkpoint.py`) ------------------------------------------------------
    def __getstate__(self):
        """The object's state, with every `step_logs` list packed into two tensors: pickling one small tensor per
        training step would make a checkpoint after many tasks cost seconds. Unpacking gives the same values."""
        state = dict(self.__dict__)
        for name in self.step_logs:
            if state.get(name):
                ids = torch.tensor([task for task, _ in state[name]])
                state[name] = PackedStepLog(ids, torch.stack([value for _, value in state[name]]))
        return state

    def __setstate__(self, state):
        for name in self.step_logs:
            if isinstance(state.get(name), PackedStepLog):
                state[name] = list(zip(state[name].task_ids.tolist(), state[name].values.unbind()))
        super().__setstate__(state)

    # ----- hooks --------------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        """Fresh Adam (and plateau scheduler) for every task; parameters carry over."""
        self.task_id = task.id
        self.optimizer = self.make_optimizer()
        self.scheduler = self.make_scheduler(self.optimizer)

    def make_optimizer(self) -> torch.optim.Optimizer:
        return self.adam(self.parameters())

    def adam(self, params) -> torch.optim.Optimizer:
        """Adam with the run's learning rate and weight decay over the trainable ones of `params`."""
        params = [p for p in params if p.requires_grad]
        return torch.optim.Adam(params, lr=self.cfg["lr"], weight_decay=self.cfg["weight_decay"])

    def make_scheduler(self, optimizer):
        mode = self.cfg["plateau_scheduler"]
        if mode == "never" or (mode == "auto" and not self.plateau_scheduler):
            return None
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.cfg["plateau_factor"], patience=self.cfg["plateau_patience"])

    def forward(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        return self.heads(self.backbone(x), task_id)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: Step) -> dict[str, float]:
        loss = F.cross_entropy(self(x, step.task_id), y)
        self.optimizer_step(loss)
        return {"loss": loss.detach()}

    def optimizer_step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def end_epoch(self, val_loss: float) -> None:
        if self.scheduler is not None:
            self.scheduler.step(val_loss)

    def end_task(self, task) -> None:
        pass

    @torch.no_grad()
    def predict(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """Logits of task `task_id` in evaluation mode."""
        return self(x, task_id)

    @torch.no_grad()
    def validation_logits(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """Logits for the per-epoch validation of the current task (HAT uses its soft mask here)."""
        return self.predict(x, task_id)

    # ----- continual unlearning (methods that can unlearn override `unlearn`) ------------------------------------
    unlearnable = False  # True for methods that implement `unlearn`
    unlearning_state = None  # the state of the current task in an unlearning run

    @property
    def unlearning_enabled(self) -> bool:
        """An unlearning run that is not a reference run (references train the plain continual learner)."""
        return self.unlearning_state is not None and self.unlearning_state.enabled

    def set_unlearning_state(self, state) -> None:
        """Called before `begin_task` in an unlearning run with a `common.unlearning.UnlearningState`."""
        self.unlearning_state = state

    def unlearn(self, task_ids: list[int]) -> None:
        """Erase the tasks `task_ids` (called right after `end_task` of the current task)."""
        raise NotImplementedError(f"{type(self).__name__} cannot unlearn")

    @torch.no_grad()
    def aggregated_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of the 'unlearning test' stage, the input of the distribution distance DD: for a
        shared backbone simply its output (HAT-family networks use an all-ones mask; per-task networks average)."""
        return self.backbone(x)

    def extra_metrics(self) -> dict:
        """Method-specific figures for metrics.json (e.g. the memory of AmnesiacHAT's update store)."""
        return {}

    def extra_records(self) -> dict[str, list[dict]]:
        """Per-step curves to save in the run record (name -> rows), e.g. HAT's network capacity."""
        return {}

