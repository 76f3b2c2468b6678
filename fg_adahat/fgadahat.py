"""FG-AdaHAT: AdaHAT with fine-grained neuron importance (`docs/fg_adahat.md`).

The adjustment rate (FG-AdaHAT Eqs. 1-3) replaces AdaHAT's count-based importance by a learned one:

    a_{l,ij} = alpha / (c^t_l Agg(I^{<t}_{l,i}, I^{<t}_{l-1,j}) + alpha),    a_{l,i} = alpha / (c^t_l I^{<t}_{l,i} + alpha)
    c^t_l = (t + b_L)(R_l + b_R)   (`linear_sparsity_reg`, published)   or   R_l + b_R   (`sparsity_reg`, ablation case 1)

Importance (Eqs. 4-6): after every optimizer step a raw per-unit measure u_l (`fg_adahat/importance.py`) is min-max
normalised within the layer, multiplied by the step's soft training mask, and averaged over the task's steps; the
task end adds b_I and sums into I^{<t+1} (`add_all`: I^{<t} = sum_{tau<t} (t - tau) I^tau, published).
"""

from __future__ import annotations

import math

import torch

from adahat.adahat import AdaHAT
from common.config import Hparam
from common.hat import monotone_parameter_wise, parameter_wise, rate
from fg_adahat.importance import MEASURES, StepContext, input_contribution_utility

SCHEDULERS = ("linear_sparsity_reg", "sparsity_reg")
SUMMING = ("add_all", "add_latest", "add_average")
FORWARD_MEASURES = ("fa", "ii", "gs", "dl")  # the measures that run forwards of their own (`measure_masks`)


class FGAdaHAT(AdaHAT):
    name = "fgadahat"
    hparams = {
        "alpha": Hparam(1.5e-7, "adjustment intensity alpha of a = alpha / (c^t_l I + alpha)", gt=0,
                        equation="FG-AdaHAT adjustment rate (docs/fg_adahat.md)"),
        "importance": Hparam("ig", "neuron importance measure u_l (fg_adahat/importance.py)",
                             choices=tuple(MEASURES)),
        "base_importance": Hparam(1e-8, "b_I, added to every task's importance at the task end", ge=0,
                                  equation="FG-AdaHAT importance I^t (docs/fg_adahat.md)"),
        "base_sparsity_reg": Hparam(0.1, "b_R, added to the network sparsity in c^t_l", ge=0,
                                    equation="FG-AdaHAT scheduler c^t_l = (t + b_L)(R_l + b_R)"),
        "base_linear": Hparam(5.0, "b_L, added to the task index in c^t_l (linear_sparsity_reg)", ge=0,
                              equation="FG-AdaHAT scheduler c^t_l = (t + b_L)(R_l + b_R)"),
        "importance_scheduler": Hparam("linear_sparsity_reg", "c^t_l = (t + b_L)(R_l + b_R) (published) or "
                                                              "R_l + b_R (sparsity_reg, ablation case 1)",
                                       choices=SCHEDULERS, equation="FG-AdaHAT scheduler (docs/fg_adahat.md)"),
        "importance_summing": Hparam("add_all", "how task importances sum into I^{<t}: add_all (sum of "
                                                "(t - tau) I^tau, published), add_latest or add_average",
                                     choices=SUMMING),
        "aggregation": Hparam("min", "neuron-to-weight importance: Agg(I_i, I_j) of the two units a weight joins",
                              choices=("min", "max", "mean")),
        "step_multiply_training_mask": Hparam(True, "multiply each step's normalised importance by the soft "
                                                    "training mask"),
        "filter_by_cumulative_mask": Hparam(False, "multiply the weight importance by HAT's protection "
                                                   "min(M_i, M_j) at every task start"),
        "filter_unmasked_importance": Hparam(False, "multiply the task's importance by its stored mask at the "
                                                    "task end"),
        "afi_semantics": Hparam("paper", "AFI measure: paper (computed as ICU, as the paper-time code did) or "
                                         "described (squared gradient x activation)",
                                choices=("paper", "described")),
        "measure_masks": Hparam("post_step", "soft masks of the extra forwards of FA, II, GS and DL: post_step "
                                             "(sigmoid(s_b e) from the embeddings after the optimizer step, as the "
                                             "paper-time code) or step (the step's own masks)",
                                choices=("post_step", "step")),
    }
    wants_activations = True
    tensor_lists = AdaHAT.tensor_lists + ("importance_sum",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        zeros = [torch.zeros_like(c) for c in self.cumulative]
        self.importance_sum = [z.clone() for z in zeros]  # I^{<t}
        self.task_importances: list[list[torch.Tensor]] = []  # I^tau of every finished task
        self.measure = MEASURES[cfg["importance"]]
        if cfg["importance"] == "afi" and cfg["afi_semantics"] == "paper":
            self.measure = input_contribution_utility  # paper-time AFI = ICU (docs/fidelity.md#afi_semantics)

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
        """FG-AdaHAT's rate (Eq. 2): a = alpha / (c^t_l I + alpha); R_l as AdaHAT's `semantics` defines it.

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
        """Accumulate this step's normalised, mask-weighted importance (Eqs. 5, 6)."""
        ctx = StepContext(self, x, y, self.measure_masks(masks, step), activations, step.task_id)
        raw = self.measure(ctx)
        with torch.no_grad():
            for acc, u, m in zip(self.step_importance, raw, masks):
                u = (u - u.min()) / (u.max() - u.min() + 1e-8)
                acc.add_(u * m.detach() if self.cfg["step_multiply_training_mask"] else u)
        self.num_steps += 1

    def measure_masks(self, masks, step) -> list[torch.Tensor]:
        """Masks the measures' forwards use (docs/fidelity.md#measure_masks): by default recomputed as sigmoid(s_b e)
        from the post-step embeddings, with the step's s_b; the mask factor of Eq. 6 stays the step's own."""
        if self.cfg["measure_masks"] == "step" or self.cfg["importance"] not in FORWARD_MEASURES:
            return masks
        with torch.no_grad():
            return self.backbone.gates(self.scale(step))

    @torch.no_grad()
    def end_task(self, task) -> None:
        super().end_task(task)
        importance = [acc / max(1, self.num_steps) + self.cfg["base_importance"] for acc in self.step_importance]
        if self.cfg["filter_unmasked_importance"]:
            importance = [i * m for i, m in zip(importance, self.task_masks[task.id])]
        self.task_importances.append(importance)
        self.importance_sum = [total + added for total, added in zip(self.importance_sum, self.summed_update())]

    def summed_update(self) -> list[torch.Tensor]:
        """What the task end adds to I^{<t} (Eq. 4; docs/fg_adahat.md#task-importance-and-summing)."""
        k = len(self.task_importances)
        if self.cfg["importance_summing"] == "add_latest":
            return self.task_importances[-1]
        total = [sum(layer) for layer in zip(*self.task_importances)]
        if self.cfg["importance_summing"] == "add_average":
            return [t / k for t in total]
        return total  # add_all
