"""CBP: continual backpropagation (Dohare et al., "Loss of plasticity in deep continual learning", Nature 2024).

Plain sequential training (as Finetuning) plus a selective re-initialisation after every optimizer step (the
paper's Algorithm 1), per layer of hidden units:
* age a_i += 1;
* contribution utility u_i = eta u_i + (1 - eta) |h_i| sum_k |w_ik|, with h_i the unit's activation (after the
  ReLU; mean over the batch, and over positions for a conv channel) and w_ik its outgoing weights (after the step);
* units with a_i > m are eligible; n_eligible * rho units are due per step, accumulated as a fraction until a whole
  unit is due; the due number of eligible units with the smallest utility are replaced:
  input weights drawn afresh from the initialiser (Kaiming-uniform, a = sqrt(5), PyTorch's default), input bias 0,
  outgoing weights 0 (the new unit adds nothing to the output until they grow), u_i = a_i = 0, and the Adam moments of every
  replaced entry reset to 0 (torch's Adam keeps one step count per tensor, which is not reset).

Defaults (Dohare et al. 2024, Algorithm 1 and the Permuted MNIST experiment): decay rate eta 0.99, maturity
threshold m 100, replacement rate rho 1e-4. Ours (`docs/baselines.md#cbp`): the repository's optimiser protocol (Adam,
fresh per task, as Finetuning) and no batch norm by default; with `batch_norm=true` a replaced unit's batch-norm
scale, shift and running statistics are reset too. Units: the MLP's three hidden layers (the last one's outgoing
weights are the heads: the current task's head for the utility, every head zeroed on replacement); in ResNet-18 the
inner channel of every basic block (conv1's output, whose outgoing weights are conv2's alone); channels on the
residual stream are never replaced (their outgoing weights are shared by shortcuts and later blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.algorithm import Algorithm
from common.config import Hparam
from common.nets import MLP, ResNet18


@dataclass
class UnitLayer:
    """One layer of replaceable units: the module producing them, its batch norm (or None), the module whose input
    they are (None: the heads), and the module whose output (after a ReLU) is the units' activation."""

    producer: nn.Module
    bn: nn.Module | None
    consumer: nn.Module | None
    observed: nn.Module


def unit_layers(backbone: nn.Module) -> list[UnitLayer]:
    if isinstance(backbone, MLP):
        layers = []
        for i, fc in enumerate(backbone.fc):
            bn = backbone.bn[i] if backbone.bn is not None else None
            consumer = backbone.fc[i + 1] if i + 1 < len(backbone.fc) else None
            layers.append(UnitLayer(fc, bn, consumer, bn if bn is not None else fc))
        return layers
    if isinstance(backbone, ResNet18):
        return [UnitLayer(b.conv1, b.bn1 if isinstance(b.bn1, nn.BatchNorm2d) else None, b.conv2, b.bn1)
                for b in backbone.blocks]
    raise ValueError(f"CBP does not know the units of {type(backbone).__name__}")


def outgoing_magnitude(weight: torch.Tensor) -> torch.Tensor:
    """sum_k |w_ik| per input unit i of a linear (out, in) or conv (out, in, kh, kw) weight."""
    return weight.abs().sum(dim=[d for d in range(weight.dim()) if d != 1])


class RecordActivation:
    """Forward hook keeping the training-time activation h of unit layer `i` for the utility update (a class, not a
    closure, so a run's checkpoint can pickle the backbone with its hooks)."""

    def __init__(self, owner, i: int):
        self.owner, self.i = owner, i

    def __call__(self, module, inputs, output):
        if module.training:
            self.owner._activations[self.i] = F.relu(output.detach())


class CBP(Algorithm):
    name = "cbp"
    hparams = {
        "replacement_rate": Hparam(1e-4, "rho, the fraction of a layer's mature units replaced per step (accumulated "
                                         "until a whole unit is due)", ge=0, le=1, equation="CBP Algorithm 1"),
        "decay_rate": Hparam(0.99, "eta, the running-average decay of the contribution utility", ge=0, lt=1,
                             equation="CBP Algorithm 1 (contribution utility)"),
        "maturity_threshold": Hparam(100, "m, the steps a unit must have lived before it can be replaced", ge=0,
                                     equation="CBP Algorithm 1"),
    }

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.units = unit_layers(self.backbone)
        sizes = [u.producer.weight.shape[0] for u in self.units]
        self.utility = [torch.zeros(n) for n in sizes]
        self.age = [torch.zeros(n, dtype=torch.long) for n in sizes]
        self.due = [0.0] * len(sizes)  # fractional number of units due for replacement
        self.replaced: list[dict] = []  # one row per (task, layer) with the units replaced
        self._activations: list[torch.Tensor | None] = [None] * len(sizes)
        for i, unit in enumerate(self.units):
            unit.observed.register_forward_hook(RecordActivation(self, i))

    tensor_lists = ("utility", "age")


    def begin_task(self, task) -> None:
        super().begin_task(task)
        self.replaced += [{"task": task.id, "layer": i + 1, "replaced": 0} for i in range(len(self.units))]

    def train_step(self, x, y, step):
        loss = F.cross_entropy(self(x, step.task_id), y)
        self.optimizer_step(loss)
        self.selective_reinit(step.task_id)
        return {"loss": loss.detach()}

    # ----- Algorithm 1 ---------------------------------------------------------------------------------------------
    def outgoing(self, i: int, task_id: int) -> torch.Tensor:
        consumer = self.units[i].consumer
        weight = consumer.weight if consumer is not None else self.heads.head(task_id).weight
        return outgoing_magnitude(weight.detach())

    @torch.no_grad()
    def update_utility(self, task_id: int) -> None:
        """a += 1; u = eta u + (1 - eta) |h| sum_k |w_out| (mean |h| over the batch and positions)."""
        eta = self.cfg["decay_rate"]
        for i, h in enumerate(self._activations):
            mean_h = h.abs().mean(dim=[d for d in range(h.dim()) if d != 1])
            self.utility[i].mul_(eta).add_((1 - eta) * mean_h * self.outgoing(i, task_id))
            self.age[i] += 1

    @torch.no_grad()
    def selective_reinit(self, task_id: int) -> None:
        self.update_utility(task_id)
        for i in range(len(self.units)):
            eligible = (self.age[i] > self.cfg["maturity_threshold"]).nonzero().flatten()
            self.due[i] += self.cfg["replacement_rate"] * len(eligible)
            count = min(int(self.due[i]), len(eligible))
            if count == 0:
                continue
            self.due[i] -= count
            order = self.utility[i][eligible].argsort()[:count]
            self.reinit_units(i, eligible[order])
            self.replaced[-len(self.units) + i]["replaced"] += count

    @torch.no_grad()
    def reinit_units(self, i: int, idx: torch.Tensor) -> None:
        """Fresh input weights, zero input bias and outgoing weights, reset batch norm, utility, age, Adam moments."""
        unit = self.units[i]
        fresh = torch.empty_like(unit.producer.weight)
        nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
        unit.producer.weight[idx] = fresh[idx]
        touched = [(unit.producer.weight, (idx,))]
        if unit.producer.bias is not None:
            unit.producer.bias[idx] = 0.0
            touched.append((unit.producer.bias, (idx,)))
        if unit.bn is not None:
            unit.bn.weight[idx], unit.bn.bias[idx] = 1.0, 0.0
            unit.bn.running_mean[idx], unit.bn.running_var[idx] = 0.0, 1.0
            touched += [(unit.bn.weight, (idx,)), (unit.bn.bias, (idx,))]
        consumers = [unit.consumer] if unit.consumer is not None else list(self.heads.heads)
        for consumer in consumers:
            consumer.weight[:, idx] = 0.0
            touched.append((consumer.weight, (slice(None), idx)))
        for param, index in touched:
            state = self.optimizer.state.get(param, {}) if self.optimizer is not None else {}
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if key in state:
                    state[key][index] = 0.0
        self.utility[i][idx] = 0.0
        self.age[i][idx] = 0

    def extra_records(self):
        return {"replacements": self.replaced}
