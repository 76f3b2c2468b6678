"""AdaHAT: adaptive hard attention to the task (ECML-PKDD 2024; Eqs. (7)-(9), `docs/adahat.md`).

HAT's hard clipping is replaced by a soft rate from parameter importance (how many earlier tasks used the
parameter's units, the summative mask S) and the layer's network sparsity R_l:

    r_l = alpha / (epsilon + R_l),    a_{l,ij} = r_l / (min(S_{l,i}, S_{l-1,j}) + r_l),    a_{l,i} = r_l / (S_{l,i} + r_l)

Two semantics (`semantics`):
* `current` (default; the reference code behind the AdaHAT row of the FG-AdaHAT tables): R_l is the share of the
  layer's free units that the current soft mask occupies (0 when <= 10 units are free).
* `paper2024` (the 2024 code behind the AdaHAT paper): R_l is the average of that term and
  1 - sum(m M) / sum(M) (1 when <= 10 units are used).
The ablations AdaHAT-no-sum and AdaHAT-no-reg are the subclasses in `adahat/ablations.py`.
"""

from __future__ import annotations

import math

import torch

from baselines.hat import HAT
from common.config import Hparam
from common.hat import FREE_UNIT_GUARD, monotone_parameter_wise, parameter_wise, rate


class AdaHAT(HAT):
    name = "adahat"
    hparams = {
        "alpha": Hparam(1e-6, "adjustment intensity alpha of r_l = alpha / (epsilon + R_l)", gt=0,
                        equation="AdaHAT Eq. 9"),
        "epsilon": Hparam(0.1, "added to the network sparsity R_l in r_l = alpha / (epsilon + R_l)", gt=0,
                          equation="AdaHAT Eq. 9"),
        "semantics": Hparam("current", "network sparsity R_l: current (reference code behind the FG-AdaHAT "
                                       "tables) or paper2024 (the AdaHAT paper's 2024 code, a two-term average)",
                            choices=("current", "paper2024")),
    }
    tensor_lists = HAT.tensor_lists + ("summative",)

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.summative = [torch.zeros_like(c) for c in self.cumulative]  # S^{<t}: how many tasks used each unit

    def begin_task(self, task) -> None:
        super().begin_task(task)
        self.importance = parameter_wise(self.summative, self.layers, "min")  # min(S_i, S_j), once per task
        self.unit_importance = self.summative  # S_i of this task (`summative` is replaced, never changed in place)

    def network_sparsity(self, masks, layer_sparsity) -> list[torch.Tensor]:
        """R_l of this step (`docs/adahat.md#network-sparsity`; 2024 two-term average: `semantics: paper2024`)."""
        if self.cfg["semantics"] == "current":
            return layer_sparsity
        out = []
        for m, c, free_term in zip(masks, self.cumulative, layer_sparsity):
            used = c.sum()
            reuse = 1 - (m.detach() * c).sum() / used if used > FREE_UNIT_GUARD else torch.ones(())
            out.append((free_term + reuse) / 2)
        return out

    def adjustment_rates(self, masks, layer_sparsity, step):
        """AdaHAT's rate: a = r_l / (I + r_l) with r_l = alpha / (epsilon + R_l), I = min(S_i, S_j).

        Computed per unit, a_i = r_l / (S_i + r_l), and spread to the weights as max(a_i, a_j): the same numbers
        (a is non-increasing in S; `monotone_parameter_wise`) without a weight-sized addition and division."""
        intensity = self.layer_intensity(masks, layer_sparsity)
        if not all(0 < r < math.inf for r in intensity):  # outside the monotone case: rate every weight
            return [(rate(r, imp_w + r), rate(r, imp_b + r)) for (imp_w, imp_b), r in zip(self.importance, intensity)]
        S = self.unit_importance
        return monotone_parameter_wise(lambda l, k: rate(intensity[l], S[k] + intensity[l]), self.layers, "min")

    def layer_intensity(self, masks, layer_sparsity) -> list[float]:
        """r_l = alpha / (epsilon + R_l) for every weighted layer."""
        return [self.cfg["alpha"] / (self.cfg["epsilon"] + float(R)) for R in
                self.network_sparsity(masks, layer_sparsity)]

    @torch.no_grad()
    def end_task(self, task) -> None:
        super().end_task(task)
        self.summative = [s + m for s, m in zip(self.summative, self.task_masks[task.id])]
