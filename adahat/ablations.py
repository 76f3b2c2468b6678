"""The AdaHAT ablations (AdaHAT Sec. 4.3; `docs/adahat.md#ablations`): importance without the summative mask,
rate without the network-sparsity term."""

from __future__ import annotations

import torch

from adahat.adahat import AdaHAT


class AdaHATNoSum(AdaHAT):
    """Importance replaced by the task: `current` semantics a = r / (t + r) with the 1-based task id on every
    parameter (free ones and task 1 included); `paper2024` a = r / (t - 1 + r) on HAT-protected parameters only."""

    name = "adahat_no_sum"

    def adjustment_rates(self, masks, layer_sparsity, step):
        rates = []
        for (pw, pb), r in zip(self.protected, self.layer_intensity(masks, layer_sparsity)):
            if self.cfg["semantics"] == "current":
                value = r / (step.task_id + r)
                rates.append((torch.full_like(pw, value), torch.full_like(pb, value)))
            else:
                value = r / (step.task_id - 1 + r)
                rates.append((value * pw + (1 - pw), value * pb + (1 - pb)))
        return rates


class AdaHATNoReg(AdaHAT):
    """Network sparsity set to 0: r = alpha / epsilon in every layer and step."""

    name = "adahat_no_reg"

    def network_sparsity(self, masks, layer_sparsity):
        return [0.0 for _ in layer_sparsity]
