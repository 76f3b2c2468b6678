"""HAT: hard attention to the task (Serrà et al., ICML 2018) as run by the reference code (`docs/hat.md`).

Settings as published: s_max 400, embedding-gradient clamp 50, mask sparsity factor c 0.1 ('original' mode),
embeddings N(0, 1), Adam 1e-3 at a constant learning rate, fresh per task, no batch norm in the masked network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm
from common.config import ConfigError, Hparam
from common.hat import (FreeUnits, anneal_scale, build_masked_backbone, compensate_embedding_grads,
                        mask_sparsity, parameter_wise)


class HAT(Algorithm):
    """Training step (order as in the reference code, `docs/hat.md#training-step`):
    masks m = sigmoid(s_b e); loss = CE + c R(m, M^{<t}); backward; gradient adjustment (HAT Eq. 2, `adjustment_rates`);
    embedding-gradient compensation; Adam step; `after_step` (a hook for FG-AdaHAT).
    Testing uses the task's stored binary mask 1[e > 0]; validation the soft mask sigmoid(s_max e).
    """

    name = "hat"
    plateau_scheduler = False  # manual optimisation in the reference code: the scheduler never stepped
    hparams = {
        "s_max": Hparam(400.0, "largest gate scale s of m = sigmoid(s e), reached by annealing within an epoch",
                        gt=0, equation="HAT Eq. 1 (gate), Eq. 3 (annealing)"),
        "clamp_threshold": Hparam(50.0, "clamp of s e inside the embedding-gradient compensation", gt=0,
                                  equation="HAT, embedding gradient compensation"),
        "reg_factor": Hparam(0.1, "factor c of the mask sparsity regulariser: loss = CE + c R(m, M^{<t})", ge=0,
                             equation="HAT, promoting low capacity usage"),
        "anneal_zero_based": Hparam(True, "reference-code quirk: the 0-based batch index b in the 1-based annealing "
                                          "formula (negative scale on each epoch's first batch)",
                                    equation="HAT Eq. 3"),
        "hat_batch_norm": Hparam("none", "batch norm in the masked network: none, one shared, or one per task",
                                 choices=("none", "shared", "independent")),
        "stored_masks": Hparam("binary", "task mask kept for testing and protection: binary 1[e > 0] (reference "
                                         "code) or soft sigmoid(s_max e) (original HAT, 2024 AdaHAT code)",
                               choices=("binary", "soft")),
    }

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.layers = self.backbone.weighted_layers
        device = self.backbone.embeddings[0].device
        self.cumulative = [torch.zeros(n, device=device) for n in self.backbone.units]  # M^{<t}, union of masks
        self.task_masks: dict[int, list[torch.Tensor]] = {}
        self.num_adjusted = sum(l.weight.numel() + l.weight.shape[0] for l in self.layers)  # biases count N_l
        self.capacity_log: list[tuple[int, torch.Tensor]] = []

    @classmethod
    def check_config(cls, cfg):
        super().check_config(cfg)
        if cfg["batch_norm"]:
            raise ConfigError("batch_norm must be false for HAT-family methods: their masked networks take batch "
                              "norm from hat_batch_norm (none, shared, independent)")

    def build_backbone(self, input_shape):
        return build_masked_backbone(self.cfg["backbone"], input_shape, self.cfg["hat_batch_norm"])

    tensor_lists = ("cumulative",)
    step_logs = ("capacity_log",)

    # ----- per-task constants -------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        self.backbone.begin_task()
        super().begin_task(task)
        self.protected = parameter_wise(self.cumulative, self.layers, "min")  # P = min(M_i, M_j), binary
        self.hat_rates = [(1 - pw, 1 - pb) for pw, pb in self.protected]
        self.hat_capacity = None  # HAT's rates are constant within the task: their capacity is computed once
        self.free_units = FreeUnits(self.cumulative)

    def adjustment_rates(self, masks, layer_sparsity, step) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """HAT Eq. 2: a = 1 - min(M^{<t}_i, M^{<t}_j) for weights, 1 - M^{<t}_i for biases."""
        return self.hat_rates

    # ----- the step -----------------------------------------------------------------------------------------------
    def scale(self, step) -> float:
        return anneal_scale(step.batch, step.num_batches, self.cfg["s_max"], self.cfg["anneal_zero_based"])

    def train_step(self, x, y, step):
        s = self.scale(step)
        masks = self.backbone.gates(s)
        activations = [] if self.wants_activations else None
        logits = self.heads(self.backbone(x, masks, activations=activations), step.task_id)
        ce = F.cross_entropy(logits, y)
        reg, layer_sparsity = mask_sparsity(masks, self.cumulative, self.free_units)
        loss = ce + self.cfg["reg_factor"] * reg + self.extra_loss(x, y, step, masks, logits)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            rates = self.adjustment_rates(masks, layer_sparsity, step)
            self.apply_rates(rates)
            if self.cfg["log_capacity"]:
                self.capacity_log.append((step.task_id, self.step_capacity(rates)))
            compensate_embedding_grads(self.backbone.embeddings, s, self.cfg["s_max"], self.cfg["clamp_threshold"])
        self.optimizer.step()
        self.after_step(x, y, step, masks, activations, layer_sparsity)
        return {"loss": loss.detach(), "ce": ce.detach(), "reg": reg.detach()}

    wants_activations = False

    def extra_loss(self, x, y, step, masks, logits) -> torch.Tensor | float:
        """Further loss terms added before the backward pass (AmnesiacHAT's backup and replay terms)."""
        return 0.0

    def after_step(self, x, y, step, masks, activations, layer_sparsity) -> None:
        """Called after the optimizer step (FG-AdaHAT measures neuron importance here)."""

    def apply_rates(self, rates) -> None:
        """Multiply weight and bias gradients of the weighted layers by their rates."""
        for layer, (rate_w, rate_b) in zip(self.layers, rates):
            layer.weight.grad.mul_(rate_w)
            if layer.bias is not None and layer.bias.grad is not None:
                layer.bias.grad.mul_(rate_b)

    def step_capacity(self, rates) -> torch.Tensor:
        """The network capacity of this step's rates: mean rate over weights and biases, bias entries counted even
        for bias-free convs (docs/metrics.md#network-capacity); HAT's constant rates once per task."""
        if rates is self.hat_rates:
            if self.hat_capacity is None:
                self.hat_capacity = self.capacity(rates)
            return self.hat_capacity
        return self.capacity(rates)

    def capacity(self, rates) -> torch.Tensor:
        total = 0
        for rate_w, rate_b in rates:
            total = total + rate_w.sum() + rate_b.sum()
        return total / self.num_adjusted

    # ----- task end, test -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def end_task(self, task) -> None:
        """Store the task's mask (binary 1[e > 0] as published; `stored_masks: soft` keeps sigmoid(s_max e), as the
        original HAT and the 2024 AdaHAT code did) and update the cumulative (union) mask."""
        if self.cfg["stored_masks"] == "soft":
            masks = [m.detach() for m in self.backbone.gates(self.cfg["s_max"])]
        else:
            masks = self.backbone.binary_masks()
        self.task_masks[task.id] = masks
        self.cumulative = [torch.maximum(c, m) for c, m in zip(self.cumulative, masks)]
        self.backbone.end_task(task.id)

    @torch.no_grad()
    def predict(self, x, task_id):
        features = self.backbone(x, self.task_masks[task_id], bn_task=task_id)
        return self.heads(features, task_id)

    @torch.no_grad()
    def validation_logits(self, x, task_id):
        return self.heads(self.backbone(x, self.backbone.gates(self.cfg["s_max"])), task_id)

    @torch.no_grad()
    def aggregated_features(self, x):
        """'Unlearning test' stage: the backbone with an all-ones mask (the same for every task id)."""
        return self.backbone(x, [torch.ones_like(e) for e in self.backbone.embeddings])

    def extra_records(self):
        values = torch.stack([c for _, c in self.capacity_log]).tolist() if self.capacity_log else []
        return {"capacity": [{"step": i + 1, "task": t, "capacity": v}
                             for i, ((t, _), v) in enumerate(zip(self.capacity_log, values))]}
