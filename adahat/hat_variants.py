"""The HAT variants of the AdaHAT study (AdaHAT Sec. 4.1; `docs/adahat.md`): HAT's masks and regulariser, with
the gradients of HAT-protected parameters (P = min(M_i, M_j) = 1) multiplied by U(0,1), a constant alpha, or 1."""

from __future__ import annotations

import torch

from baselines.hat import HAT
from common.config import Hparam


class HATRandom(HAT):
    """a = u P + (1 - P), u ~ U(0, 1) drawn fresh per element and step."""

    name = "hat_random"

    def adjustment_rates(self, masks, layer_sparsity, step):
        rates = []
        for pw, pb in self.protected:
            rates.append((torch.rand_like(pw) * pw + (1 - pw), torch.rand_like(pb) * pb + (1 - pb)))
        return rates


class HATConstAlpha(HAT):
    """a = alpha P + (1 - P) with alpha = 1e-6."""

    name = "hat_const_alpha"
    hparams = {"alpha": Hparam(1e-6, "constant rate a on HAT-protected parameters: a = alpha P + (1 - P)",
                               ge=0, le=1)}

    def begin_task(self, task) -> None:
        super().begin_task(task)
        alpha = self.cfg["alpha"]
        self.const_rates = [(alpha * pw + (1 - pw), alpha * pb + (1 - pb)) for pw, pb in self.protected]

    def adjustment_rates(self, masks, layer_sparsity, step):
        return self.const_rates


class HATConst1(HAT):
    """a = 1 everywhere: HAT's masks and regulariser without any protection."""

    name = "hat_const_1"

    def adjustment_rates(self, masks, layer_sparsity, step):
        return [(torch.ones_like(pw), torch.ones_like(pb)) for pw, pb in self.protected]
