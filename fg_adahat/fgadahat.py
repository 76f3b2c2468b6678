"""FG-AdaHAT: AdaHAT with fine-grained neuron importance (`spec/algorithms.md` §4).

The adjustment rate (§4.1) replaces AdaHAT's count-based importance by a learned one:

    a_{l,ij} = alpha / (c^t_l Agg(I^{<t}_{l,i}, I^{<t}_{l-1,j}) + alpha),    a_{l,i} = alpha / (c^t_l I^{<t}_{l,i} + alpha)
    c^t_l = (t + b_L)(R_l + b_R)   (`linear_sparsity_reg`, published)   or   R_l + b_R   (`sparsity_reg`, ablation case 1)

Importance (§4.2): after every optimizer step a raw per-unit measure u_l (`fg_adahat/importance.py`) is min-max
normalised within the layer, multiplied by the step's soft training mask, and averaged over the task's steps; the
task end adds b_I and sums into I^{<t+1} (`add_all`: I^{<t} = sum_{tau<t} (t - tau) I^tau, published).
"""

from __future__ import annotations

import math

import torch

from adahat.adahat import AdaHAT
from common.hat import monotone_parameter_wise, parameter_wise, rate
from fg_adahat.importance import MEASURES, StepContext, input_contribution_utility

SCHEDULERS = ("linear_sparsity_reg", "sparsity_reg")
SUMMING = ("add_all", "add_latest", "add_average")


class FGAdaHAT(AdaHAT):
    name = "fgadahat"
    hparams = {"alpha": 1.5e-7, "importance": "ig", "base_importance": 1e-8, "base_sparsity_reg": 0.1,
               "base_linear": 5.0, "importance_scheduler": "linear_sparsity_reg", "importance_summing": "add_all",
               "aggregation": "min", "step_multiply_training_mask": True, "filter_by_cumulative_mask": False,
               "filter_unmasked_importance": False, "afi_semantics": "paper"}
    wants_activations = True
    tensor_lists = AdaHAT.tensor_lists + ("importance_sum",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        checks = {"importance": tuple(MEASURES), "importance_scheduler": SCHEDULERS, "importance_summing": SUMMING,
                  "aggregation": ("min", "max", "mean"), "afi_semantics": ("paper", "described")}
        for key, allowed in checks.items():
            if cfg[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
        zeros = [torch.zeros_like(c) for c in self.cumulative]
        self.importance_sum = [z.clone() for z in zeros]  # I^{<t}
        self.task_importances: list[list[torch.Tensor]] = []  # I^tau of every finished task
        self.measure = MEASURES[cfg["importance"]]
        if cfg["importance"] == "afi" and cfg["afi_semantics"] == "paper":
            self.measure = input_contribution_utility  # the paper-time code computed ICU for AFI (§4.6)

    # ----- adjustment ---------------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        super().begin_task(task)
        self.step_importance = [torch.zeros_like(c) for c in self.cumulative]
        self.num_steps = 0
        self.fg_importance = parameter_wise(self.importance_sum, self.layers, self.cfg["aggregation"])
        if self.cfg["filter_by_cumulative_mask"]:
            self.fg_importance = [(iw * pw, ib * pb) for (iw, ib), (pw, pb) in zip(self.fg_importance, self.protected)]
        # the units' importances, when the rate can be computed per unit (`adjustment_rates`)
        monotone = (self.cfg["aggregation"] in ("min", "max") and not self.cfg["filter_by_cumulative_mask"]
                    and all(bool(torch.isfinite(i).all() and (i >= 0).all()) for i in self.importance_sum))
        self.unit_fg_importance = self.importance_sum if monotone else None

    def importance_scale(self, layer_sparsity, task_id: int) -> list[float]:
        """c^t_l per layer from the network sparsities R_l."""
        scale = [float(R) + self.cfg["base_sparsity_reg"] for R in layer_sparsity]
        if self.cfg["importance_scheduler"] == "linear_sparsity_reg":
            scale = [(task_id + self.cfg["base_linear"]) * c for c in scale]
        return scale

    def adjustment_rates(self, masks, layer_sparsity, step):
        """FG-AdaHAT's rate (§4.1): a = alpha / (c^t_l I + alpha); R_l as AdaHAT's `semantics` defines it.

        With min (max) aggregation, non-negative importances and c^t_l >= 0 the rate does not increase with I, so
        it is computed per unit and spread to the weights as max (min) of the two units' rates: the same numbers
        (`monotone_parameter_wise`) without weight-sized multiplication, addition and division."""
        alpha = self.cfg["alpha"]
        scale = self.importance_scale(self.network_sparsity(masks, layer_sparsity), step.task_id)
        units = self.unit_fg_importance
        if units is not None and all(0 <= c < math.inf for c in scale):
            return monotone_parameter_wise(lambda l, k: rate(alpha, scale[l] * units[k] + alpha), self.layers,
                                           self.cfg["aggregation"])
        return [(rate(alpha, c * imp_w + alpha), rate(alpha, c * imp_b + alpha))
                for (imp_w, imp_b), c in zip(self.fg_importance, scale)]

    # ----- importance -----------------------------------------------------------------------------------------------
    def after_step(self, x, y, step, masks, activations, layer_sparsity) -> None:
        """Accumulate this step's normalised, mask-weighted importance (§4.2)."""
        ctx = StepContext(self, x, y, masks, activations, step.task_id)
        raw = self.measure(ctx)
        with torch.no_grad():
            for acc, u, m in zip(self.step_importance, raw, masks):
                u = (u - u.min()) / (u.max() - u.min() + 1e-8)
                acc.add_(u * m.detach() if self.cfg["step_multiply_training_mask"] else u)
        self.num_steps += 1

    @torch.no_grad()
    def end_task(self, task) -> None:
        super().end_task(task)
        importance = [acc / max(1, self.num_steps) + self.cfg["base_importance"] for acc in self.step_importance]
        if self.cfg["filter_unmasked_importance"]:
            importance = [i * m for i, m in zip(importance, self.task_masks[task.id])]
        self.task_importances.append(importance)
        self.importance_sum = [total + added for total, added in zip(self.importance_sum, self.summed_update())]

    def summed_update(self) -> list[torch.Tensor]:
        """What the task end adds to I^{<t} (§4.4)."""
        k = len(self.task_importances)
        if self.cfg["importance_summing"] == "add_latest":
            return self.task_importances[-1]
        total = [sum(layer) for layer in zip(*self.task_importances)]
        if self.cfg["importance_summing"] == "add_average":
            return [t / k for t in total]
        return total  # add_all
