"""Neuron-importance measures of FG-AdaHAT (`docs/fg_adahat.md#the-nine-measures`).

Each measure is one function `measure(ctx) -> [u_l]`: a raw, non-negative importance per unit of every weighted
layer, computed after the optimizer step from that step's tensors (`StepContext`). Adding a measure is one function
here, one entry in `MEASURES` and one YAML (`fg_adahat/configs/fgadahat_<name>.yaml`).

"Input weights" of unit i of layer l are W_l[i, ...]; its "output weights" are W_{l+1}[:, i, ...] of the next
weighted layer, or of the current task's head after the last layer. Activations are the step's masked post-ReLU
outputs; gradients are the already-adjusted ones (FG-AdaHAT reads them after the adjustment and the step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fg_adahat import attribution


@dataclass
class StepContext:
    algo: nn.Module                  # the FG-AdaHAT algorithm (backbone, heads)
    x: torch.Tensor                  # the step's (transformed) inputs
    y: torch.Tensor                  # labels
    masks: list[torch.Tensor]        # soft masks sigmoid(s_b e) of the measures' forwards (`measure_masks`)
    activations: list[torch.Tensor]  # the step's masked post-ReLU activations, one per weighted layer
    task_id: int

    @property
    def layers(self) -> list[nn.Module]:
        return self.algo.layers

    def next_weight(self, l: int) -> torch.Tensor:
        """Weight whose input units are layer l's units: the next weighted layer's, or the current head's."""
        return self.layers[l + 1].weight if l + 1 < len(self.layers) else self.algo.heads.head(self.task_id).weight

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The training-stage forward of this step with the context's masks (`measure_masks`) and the current head."""
        masks = [m.detach() for m in self.masks]
        return self.algo.heads(self.algo.backbone(x, masks), self.task_id)


def per_unit(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """Sum over every dim except `unit_dim` (weights and gradients: kernel dims and the other side)."""
    return t.transpose(0, unit_dim).reshape(t.shape[unit_dim], -1).sum(1)


def mean_abs_activation(h: torch.Tensor) -> torch.Tensor:
    """mean |h| over the batch (and spatial positions of conv maps), one value per unit."""
    return h.detach().abs().transpose(0, 1).reshape(h.shape[1], -1).mean(1)


# ----- measures from the step's tensors --------------------------------------------------------------------------
def input_gradient(ctx: StepContext) -> list[torch.Tensor]:
    """IG: sum |dL/dW_l[i, .]| (adjusted gradients)."""
    return [per_unit(layer.weight.grad.abs(), 0) for layer in ctx.layers]


def output_gradient(ctx: StepContext) -> list[torch.Tensor]:
    """OG: sum |dL/dW_{l+1}[., i]| (the head's gradient, unadjusted, after the last layer)."""
    out = []
    for l in range(len(ctx.layers)):
        weight = ctx.next_weight(l)
        out.append(per_unit(weight.grad.abs(), 1) if weight.grad is not None else torch.zeros_like(ctx.masks[l]))
    return out


def contribution_utility(ctx: StepContext) -> list[torch.Tensor]:
    """CU: mean|h_{l,i}| * sum |W_{l+1}[., i]| (post-step weights)."""
    return [mean_abs_activation(h) * per_unit(ctx.next_weight(l).detach().abs(), 1)
            for l, h in enumerate(ctx.activations)]


def input_contribution_utility(ctx: StepContext) -> list[torch.Tensor]:
    """ICU: mean|h_{l,i}| * sum |W_l[i, .]| (post-step weights)."""
    return [mean_abs_activation(h) * per_unit(layer.weight.detach().abs(), 0)
            for layer, h in zip(ctx.layers, ctx.activations)]


def activation_fisher(ctx: StepContext) -> list[torch.Tensor]:
    """AFI as described: mean|h_{l,i}| * sum (dL/dW_l[i, .])^2. (The paper-time code computed ICU instead; the
    algorithm's `afi_semantics: paper` reproduces that, see `FGAdaHAT`.)"""
    return [mean_abs_activation(h) * per_unit(layer.weight.grad.square(), 0)
            for layer, h in zip(ctx.layers, ctx.activations)]


# ----- feature ablation (own batched implementation) ------------------------------------------------------------
def ablation_hook(num_units: int):
    """Forward hook that turns a layer output [B, N, ...] into [N*B, N, ...] where block f has unit f set to 0."""
    def hook(module, inputs, output):
        expanded = output.unsqueeze(0).repeat(num_units, *([1] * output.dim()))  # [N, B, N, ...]
        index = torch.arange(num_units, device=output.device)
        expanded[index, :, index] = 0
        return expanded.reshape(num_units * output.shape[0], *output.shape[1:])
    return hook


@torch.no_grad()
def feature_ablation(ctx: StepContext) -> list[torch.Tensor]:
    """FA: u_{l,f} = mean_x |z(x) - z_without_f(x)|, z the target-class logit, unit f's layer output set to 0.

    The masked MLP without batch norm takes the rank-one route (`feature_ablation_mlp`); otherwise all units of a
    layer are ablated in one mega-batch of N_l * B samples that branches at the layer itself, so the layers before
    it run once (MLP). ResNet blocks add a shortcut from before the ablated conv, so there the whole input is
    repeated instead.
    """
    if plain_masked_mlp(ctx):
        return feature_ablation_mlp(ctx)
    return feature_ablation_batched(ctx)


def plain_masked_mlp(ctx: StepContext) -> bool:
    """The masked MLP with no batch norm and its own eager forward (no speed switch wrapped around it): where FA takes
    the rank-one route and II, GS, DL the all-layers pass of `fg_adahat/attribution.py`."""
    from common.hat import MaskedMLP
    net = ctx.algo.backbone
    return isinstance(net, MaskedMLP) and net.bns is None and "forward" not in vars(net)


@torch.no_grad()
def feature_ablation_mlp(ctx: StepContext) -> list[torch.Tensor]:
    """FA on the masked MLP by rank-one updates. Zeroing unit f of layer l zeroes h_{l,f} (m * 0 = 0, ReLU(0) = 0),
    so the next pre-activation becomes z_{l+1} - h_{l,f} W_{l+1}[:, f]: the ablated forward of all N_l units starts
    after layer l+1's matmul, from [N_l, B, N_{l+1}] corrected pre-activations; after the last layer the head's
    target logit itself is corrected, with no forward at all. Equal to the batched FA up to float rounding."""
    net, head = ctx.algo.backbone, ctx.algo.heads.head(ctx.task_id)
    masks = [m.detach() for m in ctx.masks]
    pre, post, h = [], [], ctx.x.flatten(1)
    for l, layer in enumerate(net.fc):
        pre.append(layer(h))
        h = net.relus[l](pre[-1] * masks[l])
        post.append(h)
    target = head(h).gather(1, ctx.y[:, None]).squeeze(1)
    batch, last = len(ctx.y), len(net.fc) - 1
    out = []
    for l in range(last + 1):
        if l == last:
            ablated = target[None, :] - post[l].t() * head.weight[ctx.y].t()  # [N, B]
        else:
            # m * (z - h_f w_f) = m z - h_f (m w_f), in chunks of units that keep the [n, B, N_{l+1}] block in cache
            masked_pre = pre[l + 1] * masks[l + 1]
            masked_weight = (net.fc[l + 1].weight * masks[l + 1][:, None]).t()
            ablated = torch.cat([_ablated_target(ctx, net, head, masks, l + 1, masked_pre, h_f, w_f)
                                 for h_f, w_f in zip(post[l].t().split(FA_CHUNK), masked_weight.split(FA_CHUNK))])
        out.append((target[None, :] - ablated).abs().mean(1))
    return out


FA_CHUNK = 32  # units ablated together in `feature_ablation_mlp`


def _ablated_target(ctx, net, head, masks, start, masked_pre, h_f, w_f) -> torch.Tensor:
    """Target logits [n, B] when each of n units of layer start - 1 is ablated, from layer `start`'s masked
    pre-activation `masked_pre` [B, N] and, per ablated unit, its activations h_f [n, B] and masked weights w_f
    [n, N]."""
    n, batch = h_f.shape
    g = torch.addcmul(masked_pre[None], h_f[:, :, None], w_f[:, None, :], value=-1).relu_().reshape(n * batch, -1)
    for k in range(start + 1, len(net.fc)):
        g = net.relus[k](net.fc[k](g) * masks[k])
    return head(g).view(n, batch, -1).gather(2, ctx.y[None, :, None].expand(n, batch, 1)).squeeze(2)


@torch.no_grad()
def feature_ablation_batched(ctx: StepContext) -> list[torch.Tensor]:
    """FA by one mega-batch per layer (any backbone; see `feature_ablation`)."""
    batch = len(ctx.y)
    target = ctx.logits(ctx.x).gather(1, ctx.y[:, None]).squeeze(1)
    out = []
    for l, layer in enumerate(ctx.layers):
        n = layer.weight.shape[0]
        if isinstance(layer, nn.Linear):
            handle = layer.register_forward_hook(ablation_hook(n))
            x = ctx.x
        else:
            handle = layer.register_forward_hook(_conv_ablation_hook(n, batch))
            x = ctx.x.repeat(n, *([1] * (ctx.x.dim() - 1)))
        try:
            ablated = ctx.logits(x).view(n, batch, -1).gather(2, ctx.y[None, :, None].expand(n, batch, 1))
        finally:
            handle.remove()
        out.append((target[None, :] - ablated.squeeze(2)).abs().mean(1))
    return out


def _conv_ablation_hook(num_units: int, batch: int):
    """For an already repeated input [N*B, ...]: zero channel f in block f of the layer output."""
    def hook(module, inputs, output):
        view = output.view(num_units, batch, *output.shape[1:]).clone()
        index = torch.arange(num_units, device=output.device)
        view[index, :, index] = 0
        return view.view_as(output)
    return hook


def feature_ablation_naive(ctx: StepContext) -> list[torch.Tensor]:
    """Reference implementation of FA, one unit at a time (for tests)."""
    with torch.no_grad():
        target = ctx.logits(ctx.x).gather(1, ctx.y[:, None]).squeeze(1)
        out = []
        for layer in ctx.layers:
            values = []
            for f in range(layer.weight.shape[0]):
                def zero_unit(module, inputs, output, f=f):
                    output = output.clone()
                    output[:, f] = 0
                    return output
                handle = layer.register_forward_hook(zero_unit)
                try:
                    z = ctx.logits(ctx.x).gather(1, ctx.y[:, None]).squeeze(1)
                finally:
                    handle.remove()
                values.append((target - z).abs().mean())
            out.append(torch.stack(values))
        return out


# ----- Captum layer attributions --------------------------------------------------------------------------------
class _LogitsModule(nn.Module):
    """The step's forward as a module (Captum's DeepLIFT needs one)."""

    def __init__(self, ctx: StepContext):
        super().__init__()
        self.backbone, self.head = ctx.algo.backbone, ctx.algo.heads.head(ctx.task_id)
        self.masks = [m.detach() for m in ctx.masks]

    def forward(self, x):
        return self.head(self.backbone(x, self.masks))


def _captum(ctx: StepContext, make, **kwargs) -> list[torch.Tensor]:
    """u_{l,i} = mean |A| over every dim but the unit dim, A the attribution of layer l's module output."""
    out = []
    for layer in ctx.layers:
        attribution = make(layer).attribute(ctx.x, target=ctx.y.long(), **kwargs)
        out.append(mean_abs_activation(attribution))
    return out


def internal_influence(ctx: StepContext) -> list[torch.Tensor]:
    """II: Captum InternalInfluence, zero baseline, 5 integration steps (every layer in one pass on the plain masked
    MLP: `fg_adahat/attribution.py`)."""
    return attribution.internal_influence_all(ctx) if plain_masked_mlp(ctx) else internal_influence_captum(ctx)


def gradient_shap(ctx: StepContext) -> list[torch.Tensor]:
    """GS: Captum LayerGradientShap with an all-zeros baseline (n_samples 5, stdevs 0); every layer in one pass on the
    plain masked MLP, with Captum's draws from numpy's and torch's generators (`fg_adahat/attribution.py`)."""
    return attribution.gradient_shap_all(ctx) if plain_masked_mlp(ctx) else gradient_shap_captum(ctx)


def deeplift(ctx: StepContext) -> list[torch.Tensor]:
    """DL: Captum LayerDeepLift on the step's forward, zero baseline, multiplied by inputs (the rescale rule written
    out for every layer at once on the plain masked MLP: `fg_adahat/attribution.py`)."""
    return attribution.deeplift_mlp(ctx) if plain_masked_mlp(ctx) else deeplift_captum(ctx)


def internal_influence_captum(ctx: StepContext) -> list[torch.Tensor]:
    """II through Captum, one layer per call (any backbone)."""
    from captum.attr import InternalInfluence
    return _captum(ctx, lambda layer: InternalInfluence(ctx.logits, layer), n_steps=attribution.II_STEPS)


def gradient_shap_captum(ctx: StepContext) -> list[torch.Tensor]:
    """GS through Captum, one layer per call (any backbone)."""
    from captum.attr import LayerGradientShap
    return _captum(ctx, lambda layer: LayerGradientShap(ctx.logits, layer), baselines=torch.zeros_like(ctx.x),
                   n_samples=attribution.GS_SAMPLES)


def deeplift_captum(ctx: StepContext) -> list[torch.Tensor]:
    """DL through Captum, one layer per call (any backbone; its max-pool rule on the ResNet)."""
    from captum.attr import LayerDeepLift
    model = _LogitsModule(ctx)
    return _captum(ctx, lambda layer: LayerDeepLift(model, layer), baselines=torch.zeros_like(ctx.x))


MEASURES = {
    "ig": input_gradient,
    "og": output_gradient,
    "cu": contribution_utility,
    "icu": input_contribution_utility,
    "afi": activation_fisher,
    "fa": feature_ablation,
    "ii": internal_influence,
    "gs": gradient_shap,
    "dl": deeplift,
}
