"""Backup backbones of AmnesiacHAT: creation, initialisation, mask-routed forward and compensation
(`docs/amnesiachat.md#training-with-backups-and-replay`, `#backup-compensation`).

A backup is a plain (unmasked) copy of the masked backbone's weighted layers and projection shortcuts:

* `Backup.layers[l]` mirrors `main.weighted_layers[l]` (MLP: `main.fc[l]`; ResNet-18: `main.convs[l]`, stem first);
* `Backup.shortcuts[k]` mirrors `main.shortcuts[k]` (a fresh 1x1 conv where main has one, `nn.Identity` elsewhere;
  empty for the MLP).

State-dict keys of a backup (and of the `backup_state` saved at task end, `save_state`):
`layers.{l}.weight`, `layers.{l}.bias` (Linear layers only; the convs have no bias) and `shortcuts.{k}.weight`
(projection shortcuts only). `backup_key_map(main)` maps every main state-dict key of these modules ('fc.0.weight',
'convs.3.weight', its alias 'stem.weight', 'shortcuts.2.weight') to the backup key; every other main key (task
embeddings, BN) has no counterpart and is ignored when loading.

Batch norm is not supported (the papers' AmnesiacHAT backbones run without BN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.hat import MaskedBackbone, MaskedResNet18, _mask, parameter_wise


class Backup(nn.Module):
    """Plain backbone mirroring a masked one; `main_keys` maps main state-dict keys to this module's keys."""

    def __init__(self, layers: list[nn.Module], shortcuts: list[nn.Module], main_keys: dict[str, str]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.shortcuts = nn.ModuleList(shortcuts)
        self.main_keys = dict(main_keys)


# ----- creation and initialisation (backup_init) --------------------------------------------------------------------
def _fresh_like(layer: nn.Module) -> nn.Module:
    """A newly initialised layer (PyTorch default init) of the same kind, shape, device and dtype."""
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=bias, **factory)
    if isinstance(layer, nn.Conv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                         padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias,
                         padding_mode=layer.padding_mode, **factory)
    raise TypeError(f"cannot mirror a {type(layer).__name__} in a backup")


def _shortcuts(main: MaskedBackbone) -> list[nn.Module]:
    return list(main.shortcuts) if isinstance(main, MaskedResNet18) else []


def backup_key_map(main: MaskedBackbone) -> dict[str, str]:
    """{main state-dict key: backup state-dict key} for every parameter a backup mirrors (aliases included)."""
    targets = {id(layer): f"layers.{l}" for l, layer in enumerate(main.weighted_layers)}
    targets.update({id(s): f"shortcuts.{k}" for k, s in enumerate(_shortcuts(main)) if not isinstance(s, nn.Identity)})
    out = {}
    for name, module in main.named_modules(remove_duplicate=False):
        if id(module) in targets:
            for p, _ in module.named_parameters(recurse=False):
                out[f"{name}.{p}"] = f"{targets[id(module)]}.{p}"
    return out


def make_backup(main: MaskedBackbone) -> Backup:
    """A fresh plain backbone with the weighted-layer and shortcut shapes of `main` (BN not supported)."""
    if main.bn_mode != "none":
        raise NotImplementedError(f"backup backbones support only hat_batch_norm='none', got {main.bn_mode!r}")
    layers = [_fresh_like(layer) for layer in main.weighted_layers]
    shortcuts = [nn.Identity() if isinstance(s, nn.Identity) else _fresh_like(s) for s in _shortcuts(main)]
    return Backup(layers, shortcuts, backup_key_map(main))


@torch.no_grad()
def load_weights(backup: Backup, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Copy `tensors` (keyed by MAIN state-dict keys) into the backup, non-strict: keys without a backup counterpart
    (embeddings, BN) are ignored. Returns the backup keys that received no value. Shapes must match exactly."""
    params = dict(backup.named_parameters())
    loaded = set()
    for key, value in tensors.items():
        target = backup.main_keys.get(key)
        if target is None:
            continue
        if params[target].shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} does not fit backup {target} "
                             f"{tuple(params[target].shape)}")
        params[target].copy_(value)
        loaded.add(target)
    return sorted(set(params) - loaded)


def save_state(backup: Backup) -> dict[str, torch.Tensor]:
    """The `backup_state` kept at task end (docs/amnesiachat.md#task-end): a detached copy of every entry."""
    return {k: v.detach().clone() for k, v in backup.state_dict().items()}


# ----- routed forward -----------------------------------------------------------------------------------------------
def _route(mb: torch.Tensor, backup_out: torch.Tensor, main_out: torch.Tensor) -> torch.Tensor:
    """m^b * backup output + (1 - m^b) * main output, unit-wise (channels for conv outputs)."""
    return _mask(backup_out, mb) + _mask(main_out, 1 - mb)


def _routed_layer(main: MaskedBackbone, backup: Backup, l: int, x: torch.Tensor, mb) -> torch.Tensor:
    """z_l: the routed pre-activation of weighted layer l (before the current mask)."""
    return _route(mb[l], backup.layers[l](x), main.weighted_layers[l](x))


def _routed_mlp(main, backup, x, mb, mt) -> torch.Tensor:
    h = x.flatten(1)
    for l in range(len(main.fc)):
        h = main.relus[l](_mask(_routed_layer(main, backup, l, h, mb), mt[l]))
    return h


def _routed_resnet(main, backup, x, mb, mt) -> torch.Tensor:
    h = main.relus[0](_mask(_routed_layer(main, backup, 0, x, mb), mt[0]))
    h = F.max_pool2d(h, 3, stride=2, padding=1)
    for k, main_shortcut in enumerate(main.shortcuts):
        a, b = 1 + 2 * k, 2 + 2 * k
        inner = main.relus[a](_mask(_routed_layer(main, backup, a, h, mb), mt[a]))
        if isinstance(main_shortcut, nn.Identity):
            skip = h
        else:
            skip = _route(mb[b], backup.shortcuts[k](h), main_shortcut(h))
        h = main.relus[b](_mask(_routed_layer(main, backup, b, inner, mb) + skip, mt[b]))
    return h.mean(dim=(2, 3))


def routed_forward(main: MaskedBackbone, backup: Backup, x: torch.Tensor, backup_masks: list[torch.Tensor],
                   current_masks: list[torch.Tensor]) -> torch.Tensor:
    """Features of backup b's parallel path (docs/amnesiachat.md#training-with-backups-and-replay):
    z_l = m^b_l * Backup_l(x_{l-1}) + (1 - m^b_l) * Main_l(x_{l-1}),  x_l = ReLU(m^t_l * z_l).

    `backup_masks` = task b's stored binary masks, `current_masks` = the current soft masks (their gradient to the
    embeddings is kept). ResNet-18: a block's shortcut is routed with the m^b of its last conv and added before the
    current mask and ReLU. All-zero m^b gives main's own forward, all-one m^b the backup's weights everywhere.
    """
    if main.bns is not None:
        raise NotImplementedError("routed forward does not support batch norm")
    if isinstance(main, MaskedResNet18):
        return _routed_resnet(main, backup, x, backup_masks, current_masks)
    return _routed_mlp(main, backup, x, backup_masks, current_masks)


# ----- compensation -------------------------------------------------------------------------------------------------
def overlap(masks_a: list[torch.Tensor], masks_b: list[torch.Tensor]) -> list[torch.Tensor]:
    """O_l = m^a_l AND m^b_l for binary unit masks, as float 0/1 tensors."""
    return [((a > 0) & (b > 0)).float() for a, b in zip(masks_a, masks_b)]


def compensation_selector(overlap_units: list[torch.Tensor], layers: list[nn.Module]):
    """[(weight selector, bias selector)] as bool tensors: w_{l,ij} is selected iff units i (layer l) and j
    (layer l-1) are both in the overlap (first layer: unit i); bias b_{l,i} iff unit i (`min` aggregation)."""
    values = parameter_wise([o.float() for o in overlap_units], layers, "min")
    return [(w > 0, b > 0) for w, b in values]


@torch.no_grad()
def compensate(main: MaskedBackbone, backup_state: dict[str, torch.Tensor],
               overlap_units: list[torch.Tensor]) -> int:
    """Copy the saved backup weights and biases into main's weighted layers where the min-aggregated overlap
    selects them (docs/amnesiachat.md#backup-compensation); shortcuts, BN, embeddings and heads are untouched.

    `backup_state`: a `save_state` result, keyed 'layers.{l}.weight' / 'layers.{l}.bias' (l = index in
    `main.weighted_layers`) and 'shortcuts.{k}.weight'. Returns the number of parameter entries overwritten.
    """
    layers = main.weighted_layers
    changed = 0
    for l, (layer, (sel_w, sel_b)) in enumerate(zip(layers, compensation_selector(overlap_units, layers))):
        for name, param, sel in (("weight", layer.weight, sel_w), ("bias", layer.bias, sel_b)):
            if param is None:
                continue
            sel = sel.to(param.device)
            param.copy_(torch.where(sel, backup_state[f"layers.{l}.{name}"].to(param), param))
            changed += int(sel.sum())
    return changed
