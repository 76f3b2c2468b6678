"""HAT machinery shared by HAT, AdaHAT, FG-AdaHAT and AmnesiacHAT (`docs/hat.md`).

* masked backbones (`MaskedMLP`, `MaskedResNet18`): one task embedding per weighted layer, re-drawn N(0,1) at every
  task start; unit i of layer l outputs m_{l,i} * (W_l x + b_l)_i (after optional BN, before ReLU); ResNet blocks
  mask the residual sum; the 1x1 shortcut convs are outside the machinery (unmasked, never adjusted);
* the gate m = sigmoid(s e) with the within-epoch scale annealing (Eq. 3 of HAT with the reference code's 0-based
  batch index, behind `zero_based`);
* the mask sparsity regulariser ('original' mode: global normalisation, "> 10 free units" guard) and its per-layer
  network sparsity R_l;
* the unit-to-parameter aggregation (min, max, mean) and the embedding-gradient compensation with its clamp.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from common.nets import MLP_HIDDEN, MLP_OUTPUT, STAGES, conv3x3

FREE_UNIT_GUARD = 10  # R (and R_l) is 0 when at most this many units are free


# ----- gate and annealing -------------------------------------------------------------------------------------------
def anneal_scale(batch: int, num_batches: int, s_max: float, zero_based: bool = True) -> float:
    """s_b = 1/s_max + (s_max - 1/s_max) (b - 1)/(B - 1)  (HAT Eq. 3, 1-based b).

    The reference code plugs the 0-based batch index into this formula (`zero_based=True`, the default that
    produced the published numbers): the first batch of every epoch gets a negative scale and s_max is never
    reached. With `zero_based=False` b runs 1..B, from exactly 1/s_max to exactly s_max.
    """
    if num_batches < 2:
        return s_max
    b = batch if zero_based else batch + 1
    return 1 / s_max + (s_max - 1 / s_max) * (b - 1) / (num_batches - 1)


# ----- regulariser ---------------------------------------------------------------------------------------------------
class FreeUnits:
    """What the regulariser needs of M^{<t} alone, constant within a task: 1 - M per layer, the free-unit counts
    sum_i (1 - M_{l,i}) per layer and in total, and whether each passes the "> 10 free units" guard."""

    def __init__(self, cumulative: list[torch.Tensor]):
        self.cumulative = cumulative
        self.complement = [1 - c for c in cumulative]
        self.free = [k.sum() for k in self.complement]
        self.total = sum(self.free)
        self.total_guard = bool(self.total > FREE_UNIT_GUARD)
        self.layer_guard = [bool(f > FREE_UNIT_GUARD) for f in self.free]


def mask_sparsity(masks: list[torch.Tensor], cumulative: list[torch.Tensor],
                  free: FreeUnits | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """'original' mask sparsity regulariser and the per-layer network sparsity.

    R   = sum_l sum_i m_{l,i} (1 - M_{l,i}) / sum_l sum_i (1 - M_{l,i})   (global; 0 if <= 10 free units)
    R_l = sum_i m_{l,i} (1 - M_{l,i}) / sum_i (1 - M_{l,i})              (per layer; 0 if <= 10 free units)
    R carries gradient into the embeddings; the R_l are detached (AdaHAT / FG-AdaHAT use them as rates).
    `free` (`FreeUnits` of `cumulative`) saves recomputing the constant parts at every step.
    """
    free = free if free is not None and free.cumulative is cumulative else FreeUnits(cumulative)
    used = [(m * k).sum() for m, k in zip(masks, free.complement)]
    reg = sum(used) / free.total if free.total_guard else masks[0].new_zeros(())
    per_layer = [(u.detach() / f if guard else u.new_zeros(())) for u, f, guard in
                 zip(used, free.free, free.layer_guard)]
    return reg, per_layer


# ----- unit -> parameter aggregation -------------------------------------------------------------------------------
def aggregate(out_units: torch.Tensor, in_units: torch.Tensor | None, weight_shape, mode: str = "min") -> torch.Tensor:
    """Parameter-wise value of a weight from its two end units: Agg(v_out[i], v_in[j]), broadcast over kernel dims.
    For the first weighted layer (`in_units` None) the weight takes v_out[i]."""
    out = out_units.view(-1, *([1] * (len(weight_shape) - 1)))
    if in_units is None:
        return out.expand(weight_shape).clone()
    inp = in_units.view(1, -1, *([1] * (len(weight_shape) - 2)))
    if mode == "min":
        value = torch.minimum(out, inp)
    elif mode == "max":
        value = torch.maximum(out, inp)
    elif mode == "mean":  # broken (never ran) in the reference code; implemented as the plain average
        value = (out + inp) / 2
    else:
        raise ValueError(f"unknown aggregation {mode!r} (min, max, mean)")
    return value.expand(weight_shape).clone()


def parameter_wise(unit_values: list[torch.Tensor], layers: list[nn.Module], mode: str = "min"):
    """[(weight-shaped tensor, bias-shaped tensor)] for every weighted layer; biases take their own unit's value."""
    out = []
    for l, layer in enumerate(layers):
        previous = unit_values[l - 1] if l > 0 else None
        out.append((aggregate(unit_values[l], previous, layer.weight.shape, mode), unit_values[l].clone()))
    return out


def rate(numerator: float, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator as a true division (a Python float divided by a tensor is computed by torch as
    numerator * (1 / denominator), which can miss an exact 1 by one ulp)."""
    return denominator.new_tensor(numerator) / denominator


def monotone_parameter_wise(rate_of, layers: list[nn.Module], aggregation: str):
    """`parameter_wise` of unit importances followed by a rate that does not increase with importance, computed
    from rates of units: f(min(I_i, I_j)) = max(f(I_i), f(I_j)) and f(max(I_i, I_j)) = min(f(I_i), f(I_j)) hold
    exactly in floating point for a non-increasing f made of correctly rounded operations, so the result is the
    same as rating the parameter-wise importances, at the cost of one weight-sized operation instead of several.
    `rate_of(l, k)`: the rates of layer k's units under layer l's rate function (k = l for the output units and
    the biases, k = l - 1 for the input units)."""
    pick = {"min": torch.maximum, "max": torch.minimum}[aggregation]
    out = []
    for l, layer in enumerate(layers):
        shape, unit = layer.weight.shape, rate_of(l, l)
        column = unit.view(-1, *([1] * (len(shape) - 1)))
        if l == 0:
            weight = column.expand(shape).clone()
        else:
            row = rate_of(l, l - 1).view(1, -1, *([1] * (len(shape) - 2)))
            weight = pick(column, row).expand(shape)
            weight = weight if weight.is_contiguous() else weight.contiguous()
        out.append((weight, unit))
    return out


# ----- embedding gradient compensation -------------------------------------------------------------------------------
@torch.no_grad()
def compensate_embedding_grads(embeddings, s: float, s_max: float, clamp: float) -> None:
    """g_e <- g_e * (s_max / s) * (cosh(clip(s e, -clamp, clamp)) + 1) / (cosh(e) + 1)   (HAT Sec. 2.5, in place)."""
    for e in embeddings:
        if e.grad is not None:
            num = torch.cosh(torch.clamp(s * e, -clamp, clamp)) + 1
            e.grad.mul_((s_max / s) * num / (torch.cosh(e) + 1))


# ----- masked backbones -----------------------------------------------------------------------------------------------
class MaskedBackbone(nn.Module):
    """Shared parts: embeddings, gates, batch-norm modes. Subclasses define `weighted_layers` and `forward`.

    Batch norm modes (`docs/hat.md#batch-norm-in-masked-networks`): 'none' (published), 'shared' (one BN for all
    tasks, unprotected), 'independent' (working BN reset at every task start, stored per task at its end, used to
    test that task).
    """

    def _init_machinery(self, units: list[int], bn_mode: str, make_bn) -> None:
        if bn_mode not in ("none", "shared", "independent"):
            raise ValueError(f"hat_batch_norm must be none, shared or independent, got {bn_mode!r}")
        self.units = units
        self.embeddings = nn.ParameterList(nn.Parameter(torch.randn(n)) for n in units)
        self.bn_mode = bn_mode
        self.bns = nn.ModuleList(make_bn(n) for n in units) if bn_mode != "none" else None
        # one ReLU module per weighted layer (not F.relu): attribution methods such as DeepLIFT hook them
        self.relus = nn.ModuleList(nn.ReLU() for _ in units)
        self.initial_bn_state = copy.deepcopy(self.bns.state_dict()) if self.bns is not None else None
        self.task_bns: dict[int, nn.ModuleList] = {}

    def reset_embeddings(self) -> None:
        """Re-draw every task embedding from N(0, 1) (init mode N01), as at the start of each task."""
        with torch.no_grad():
            for e in self.embeddings:
                e.normal_()

    def begin_task(self) -> None:
        self.reset_embeddings()
        if self.bn_mode == "independent":
            self.bns.load_state_dict(self.initial_bn_state)

    def end_task(self, task_id: int) -> None:
        if self.bn_mode == "independent":
            self.task_bns[task_id] = copy.deepcopy(self.bns).eval()

    def gates(self, s: float) -> list[torch.Tensor]:
        return [torch.sigmoid(s * e) for e in self.embeddings]

    def binary_masks(self) -> list[torch.Tensor]:
        """The task's stored mask: 1[e > 0] (= sigmoid(s e) > 0.5 for any s > 0)."""
        return [(e.detach() > 0).float() for e in self.embeddings]

    def bn(self, l: int, h: torch.Tensor, bn_task: int | None) -> torch.Tensor:
        if self.bns is None:
            return h
        if bn_task is not None and bn_task in self.task_bns:
            return self.task_bns[bn_task][l](h)
        return self.bns[l](h)


def _mask(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return h * (m.view(1, -1, 1, 1) if h.dim() == 4 else m)


class MaskedMLP(MaskedBackbone):
    """784-256-100-64 MLP with a HAT mask on every layer (the last backbone layer included)."""

    def __init__(self, input_dim: int = 784, hidden=MLP_HIDDEN, output_dim: int = MLP_OUTPUT, bn_mode: str = "none"):
        super().__init__()
        dims = [input_dim, *hidden, output_dim]
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self._init_machinery(dims[1:], bn_mode, nn.BatchNorm1d)
        self.output_dim = output_dim

    @property
    def weighted_layers(self) -> list[nn.Module]:
        return list(self.fc)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor], bn_task: int | None = None,
                activations: list | None = None) -> torch.Tensor:
        h = x.flatten(1)
        for l, layer in enumerate(self.fc):
            h = self.relus[l](_mask(self.bn(l, layer(h), bn_task), masks[l]))
            if activations is not None:
                activations.append(h)
        return h


class MaskedResNet18(MaskedBackbone):
    """ResNet-18 of `common.nets` with a HAT mask on the output channels of every conv except the 1x1 shortcuts.
    Weighted layers in forward order: stem conv, then conv1, conv2 of each block (`docs/hat.md#weighted-layers`)."""

    def __init__(self, in_channels: int = 3, bn_mode: str = "none"):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        convs, shortcuts, cin = [self.stem], [], 64
        for cout, stride in STAGES:
            for block_stride in (stride, 1):
                convs += [conv3x3(cin, cout), conv3x3(cout, cout, block_stride)]
                needs = block_stride != 1 or cin != cout
                shortcuts.append(nn.Conv2d(cin, cout, 1, stride=block_stride, bias=False) if needs else None)
                cin = cout
        self.convs = nn.ModuleList(convs)
        self.shortcuts = nn.ModuleList(s if s is not None else nn.Identity() for s in shortcuts)
        self._init_machinery([c.out_channels for c in convs], bn_mode, nn.BatchNorm2d)
        self.output_dim = 512
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)  # a module, so Captum's DeepLift applies its max-pool rule

    @property
    def weighted_layers(self) -> list[nn.Module]:
        return list(self.convs)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor], bn_task: int | None = None,
                activations: list | None = None) -> torch.Tensor:
        acts = activations if activations is not None else []
        h = self.relus[0](_mask(self.bn(0, self.stem(x), bn_task), masks[0]))
        acts.append(h)
        h = self.pool(h)
        for k, shortcut in enumerate(self.shortcuts):
            a, b = 1 + 2 * k, 2 + 2 * k
            inner = self.relus[a](_mask(self.bn(a, self.convs[a](h), bn_task), masks[a]))
            acts.append(inner)
            h = self.relus[b](_mask(self.bn(b, self.convs[b](inner), bn_task) + shortcut(h), masks[b]))
            acts.append(h)
        return h.mean(dim=(2, 3))


def build_masked_backbone(name: str, input_shape, bn_mode: str) -> MaskedBackbone:
    if name == "mlp":
        return MaskedMLP(input_dim=int(torch.tensor(input_shape).prod()), bn_mode=bn_mode)
    if name == "resnet18":
        return MaskedResNet18(in_channels=input_shape[0], bn_mode=bn_mode)
    raise ValueError(f"unknown backbone {name!r} (mlp, resnet18)")
