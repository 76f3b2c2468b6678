"""EWC: elastic weight consolidation, one Fisher matrix and snapshot per task (EWC Eq. 3; docs/baselines.md#ewc)."""

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm
from common.config import Hparam


class EWC(Algorithm):
    """Loss = CE + sum_{tau<t} 1/2 * lambda * sum_k F_{tau,k} (theta_k - theta*_{tau,k})^2 over backbone parameters.

    Fisher as in the reference code (mode `train`): during task tau, every step adds B * g^2, g the gradient of the
    batch-mean CE (before the penalty), and the task end divides by the number of samples seen. The reference code
    ran EWC with manual optimisation, hence at a constant learning rate (no plateau scheduler).

    The penalty gradient lambda * sum_tau F_tau (theta - theta*_tau) is added to the CE gradient in closed form,
    using the per-task sums F = sum F_tau and F theta* = sum F_tau theta*_tau kept since the last task end.
    """

    name = "ewc"
    hparams = {"ewc_lambda": Hparam(5000.0, "penalty factor lambda (effective coefficient lambda / 2)", ge=0,
                                    equation="EWC penalty 1/2 lambda sum_k F_k (theta_k - theta*_k)^2")}
    plateau_scheduler = False
    tensor_lists = ("fisher_sum", "fisher_theta_sum")

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.params = list(self.backbone.parameters())
        self.fisher_sum = [torch.zeros_like(p) for p in self.params]       # sum_tau F_tau
        self.fisher_theta_sum = [torch.zeros_like(p) for p in self.params]  # sum_tau F_tau * theta*_tau
        self.fisher_theta2_sum = 0.0                                        # sum_tau sum_k F_tau theta*_tau^2
        self.num_fishers = 0

    def begin_task(self, task) -> None:
        super().begin_task(task)
        self.fisher_now = [torch.zeros_like(p) for p in self.params]
        self.samples_now = 0

    def penalty(self) -> torch.Tensor:
        """1/2 lambda sum_tau sum_k F_tau (theta - theta*_tau)^2, expanded over the running sums (for logging)."""
        total = sum(((f * p - 2 * ft) * p).sum() for f, ft, p in zip(self.fisher_sum, self.fisher_theta_sum,
                                                                    self.params))
        return 0.5 * self.cfg["ewc_lambda"] * (total + self.fisher_theta2_sum)

    def train_step(self, x, y, step):
        ce = F.cross_entropy(self(x, step.task_id), y)
        self.optimizer.zero_grad(set_to_none=True)
        ce.backward()
        with torch.no_grad():
            for p, acc in zip(self.params, self.fisher_now):
                if p.grad is not None:
                    acc.add_(p.grad.square(), alpha=len(y))
            self.samples_now += len(y)
            penalty = self.penalty() if self.num_fishers else ce.new_zeros(())
            if self.num_fishers:
                lam = self.cfg["ewc_lambda"]
                for p, f, ft in zip(self.params, self.fisher_sum, self.fisher_theta_sum):
                    if p.grad is not None:
                        p.grad.add_(lam * (f * p - ft))
        self.optimizer.step()
        return {"loss": (ce + penalty).detach(), "ce": ce.detach()}

    @torch.no_grad()
    def end_task(self, task) -> None:
        for p, acc, f, ft in zip(self.params, self.fisher_now, self.fisher_sum, self.fisher_theta_sum):
            fisher = acc / max(1, self.samples_now)
            f.add_(fisher)
            ft.add_(fisher * p)
            self.fisher_theta2_sum += (fisher * p * p).sum().item()
        self.num_fishers += 1
