"""LwF: learning without forgetting, with one teacher per earlier task (LwF Eqs. 1-3; `docs/baselines.md#lwf`)."""

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm
from common.config import Hparam
from common.nets import bn_momentum_repeats, frozen_copy


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy between temperature-softened distributions: softmax, raise to 1/T, renormalise, 1e-5 added to
    the student's probabilities, averaged over the batch."""
    p_student = F.softmax(student, dim=1).pow(1 / temperature)
    p_student = p_student / p_student.sum(1, keepdim=True) + 1e-5
    p_teacher = F.softmax(teacher, dim=1).pow(1 / temperature)
    p_teacher = p_teacher / p_teacher.sum(1, keepdim=True)
    return -(p_teacher * p_student.log()).sum(1).mean()


class LwF(Algorithm):
    """Loss = CE + sum over earlier tasks tau of lambda * KD_T(teacher_tau, student through head tau).

    `distill_gradient: false` (default; the FG-AdaHAT reference code) computes the student's old-task logits under
    `no_grad`, so the distillation term is logged but sends no gradient anywhere.
    What it does change is batch-norm statistics: the reference forwards the student backbone once per earlier task
    in training mode; we forward it once with the BN momentum that t running-stat updates with the same batch give.
    `distill_gradient: true` (the AmnesiacHAT reference code, `amnesiac_lwf`'s config) is LwF as described: the
    gradient reaches the backbone through the detached old head (the teacher and the heads get none).
    """

    name = "lwf"
    hparams = {
        "distill_factor": Hparam(0.1, "lambda, the weight of each earlier task's distillation term", gt=0,
                                 equation="LwF loss CE + lambda sum_tau KD_T(teacher_tau, student_tau)"),
        "temperature": Hparam(2.0, "distillation temperature T", gt=0, equation="LwF knowledge distillation KD_T"),
        "distill_gradient": Hparam(False, "false (FG-AdaHAT reference code): the distillation term sends no "
                                          "gradient; true (AmnesiacHAT reference code, LwF as described): it reaches "
                                          "the backbone through the detached old heads"),
    }

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.teachers: dict[int, torch.nn.Module] = {}  # task id -> snapshot; plain dict: frozen, not optimised

    def train_step(self, x, y, step):
        repeats = 1 + len(self.teachers)
        with bn_momentum_repeats(self.backbone, repeats):
            features = self.backbone(x)
        ce = F.cross_entropy(self.heads(features, step.task_id), y)
        reg = sum((self.distillation_term(features, x, tau) for tau in self.teachers), ce.new_zeros(()))
        self.optimizer_step(ce + reg)
        return {"loss": (ce + reg).detach(), "ce": ce.detach()}

    def distillation_term(self, features, x, tau: int) -> torch.Tensor:
        """lambda * KD_T between teacher tau and the student on head tau."""
        head = self.heads.head(tau)
        with torch.no_grad():
            teacher = head(self.teachers[tau](x))
        if self.cfg["distill_gradient"]:
            student = F.linear(features, head.weight.detach(), head.bias.detach())
        else:
            with torch.no_grad():
                student = head(features)
        return self.cfg["distill_factor"] * distillation_loss(student, teacher, self.cfg["temperature"])

    def end_task(self, task) -> None:
        self.teachers[task.id] = frozen_copy(self.backbone)
