"""Plain backbones and heads (`docs/benchmarks.md#backbones-and-heads`).

* `MLP`: 784-256-100-64, each Linear followed by [BatchNorm1d] and ReLU (the 64-d output too).
* `ResNet18`: ImageNet-style stem (7x7/2 conv, 3x3/2 max-pool) even on 32x32 inputs, four stages of two basic
  blocks with the stride on the block's *second* 3x3 conv, 1x1 shortcut convs (no bias, no BN) where the shape
  changes, convs without bias, optional BN, global average pool to 512.
* `Heads`: one linear head per task (task-incremental) or one shared head (domain-incremental).

The HAT-masked twins live in `common/hat_nets.py`; they share the layer layout and the `weighted_layers` order.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn

MLP_HIDDEN = (256, 100)
MLP_OUTPUT = 64


class MLP(nn.Module):
    """Fully connected backbone; `forward(x)` returns the last hidden feature."""

    def __init__(self, input_dim: int = 784, hidden=MLP_HIDDEN, output_dim: int = MLP_OUTPUT,
                 batch_norm: bool = False):
        super().__init__()
        dims = [input_dim, *hidden, output_dim]
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.bn = nn.ModuleList(nn.BatchNorm1d(b) for b in dims[1:]) if batch_norm else None
        self.output_dim = output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.fc):
            h = layer(h)
            if self.bn is not None:
                h = self.bn[i](h)
            h = F.relu(h)
        return h


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv1 (stride 1) -> [BN] -> ReLU -> conv2 (stride s) -> [BN] -> + shortcut -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, batch_norm: bool):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.conv2 = conv3x3(cout, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(cout) if batch_norm else nn.Identity()
        needs_projection = stride != 1 or cin != cout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


class ResNet18(nn.Module):
    """ResNet-18 as in the reference code (ImageNet stem, stride on the second conv of a block)."""

    def __init__(self, in_channels: int = 3, batch_norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64) if batch_norm else nn.Identity()
        blocks, cin = [], 64
        for cout, stride in STAGES:
            blocks += [BasicBlock(cin, cout, stride, batch_norm), BasicBlock(cout, cout, 1, batch_norm)]
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.output_dim = 512
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)  # a module, so Captum's DeepLift applies its max-pool rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(F.relu(self.bn1(self.conv1(x))))
        for block in self.blocks:
            h = block(h)
        return h.mean(dim=(2, 3))


def build_backbone(name: str, input_shape: tuple[int, ...], batch_norm: bool) -> nn.Module:
    """The plain backbone named in the config."""
    if name == "mlp":
        return MLP(input_dim=int(torch.tensor(input_shape).prod()), batch_norm=batch_norm)
    if name == "resnet18":
        return ResNet18(in_channels=input_shape[0], batch_norm=batch_norm)
    raise ValueError(f"unknown backbone {name!r} (mlp, resnet18)")


class Heads(nn.Module):
    """Output heads: one `nn.Linear` per task (til) or a single shared one (dil)."""

    def __init__(self, feature_dim: int, classes_per_task: list[int], setting: str = "til"):
        super().__init__()
        self.setting = setting
        if setting == "dil":
            if len(set(classes_per_task)) != 1:
                raise ValueError("domain-incremental learning needs the same class count in every task")
            self.heads = nn.ModuleList([nn.Linear(feature_dim, classes_per_task[0])])
        else:
            self.heads = nn.ModuleList(nn.Linear(feature_dim, c) for c in classes_per_task)

    def head(self, task_id: int) -> nn.Linear:
        """The head of 1-based task `task_id`."""
        return self.heads[0] if self.setting == "dil" else self.heads[task_id - 1]

    def forward(self, features: torch.Tensor, task_id: int) -> torch.Tensor:
        return self.head(task_id)(features)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parameter frozen (teachers, per-task networks)."""
    copy_ = copy.deepcopy(module).eval()
    for p in copy_.parameters():
        p.requires_grad_(False)
    return copy_


@contextlib.contextmanager
def bn_momentum_repeats(module: nn.Module, repeats: int):
    """Within the block, one training forward moves BN running statistics as far as `repeats` forwards of the same
    batch would: momentum m becomes 1 - (1 - m)^repeats (exact, since every repeat sees the same batch statistics)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum]
    old = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1 - (1 - m.momentum) ** repeats
    try:
        yield
    finally:
        for m, value in zip(bns, old):
            m.momentum = value
