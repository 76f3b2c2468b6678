"""II, GS and DL of every weighted layer at once: the numbers of Captum's per-layer attributions from one pass.

Captum attributes one layer per call, so for the L weighted layers of a step II runs L forwards and backwards of its
n_steps * B path points, GS L forwards and backwards of its n_samples * B points plus 2 L forwards for the layer
values, and DL L doubled forwards and backwards with its nonlinearity hooks. Here:

- II: one forward of the n_steps * B path points, and one `torch.autograd.grad` with every layer's output as an
  input gives every layer's gradient; then Captum's Gauss-Legendre weighting.
- GS: Captum draws from numpy's and torch's generators once per layer (baseline indices, noise of std 0, the points'
  coefficients); the same draws are made in the same order, the L layers' points go through one forward and one
  backward (each layer keeps the gradients of its own block of points), and the layer values of the inputs and the
  baselines come from one forward.
- DL: DeepLIFT's rescale rule on the masked MLP written out: the multiplier of a ReLU is
  (h(x) - h(0)) / (a(x) - a(0)), or its gradient where |a(x) - a(0)| < 1e-10, and one backward pass of multipliers
  from the target logit gives every layer's.

Used on the plain masked MLP (`importance.plain_masked_mlp`); the results equal Captum's to float rounding
(tests/test_fg_measures.py), and the generators are left in the state Captum leaves them in.
"""

from __future__ import annotations

import numpy as np
import torch

II_STEPS, GS_SAMPLES, DL_EPS = 5, 5, 1e-10


def _layer_outputs(ctx, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The step's forward (`ctx.logits`) of x, and every weighted layer's module output in it."""
    outputs, handles = [], [layer.register_forward_hook(lambda m, i, o: outputs.append(o)) for layer in ctx.layers]
    try:
        logits = ctx.logits(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, outputs


def _target_gradients(ctx, x: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """d logit_target / d output of every weighted layer, for every row of x (one forward, one backward)."""
    with torch.enable_grad():
        logits, outputs = _layer_outputs(ctx, x)
        chosen = logits.gather(1, target[:, None]).squeeze(1)
        return list(torch.autograd.grad(chosen, outputs, grad_outputs=torch.ones_like(chosen)))  # = Captum's unbind


def internal_influence_all(ctx, n_steps: int = II_STEPS) -> list[torch.Tensor]:
    """Captum `InternalInfluence` (zero baseline, Gauss-Legendre, `n_steps`) of every layer: sum_k w_k dz/dA(a_k x),
    then mean |.| over the batch."""
    from captum.attr._utils.approximation_methods import approximation_parameters
    step_sizes_of, alphas_of = approximation_parameters("gausslegendre")
    step_sizes, alphas = step_sizes_of(n_steps), alphas_of(n_steps)
    baseline, batch = 0, len(ctx.y)
    points = torch.cat([baseline + alpha * (ctx.x - baseline) for alpha in alphas], dim=0)
    weights = torch.tensor(step_sizes).view(n_steps, 1).to(ctx.x.device)
    out = []
    for grad in _target_gradients(ctx, points, ctx.y.long().repeat(n_steps)):
        weighted = grad.contiguous().view(n_steps, -1) * weights
        out.append(weighted.reshape(n_steps, batch, *grad.shape[1:]).sum(0).detach().abs().mean(0))
    return out


def _gradient_shap_draws(ctx, n_samples: int) -> list[torch.Tensor]:
    """The draws of L per-layer `LayerGradientShap` calls, in Captum's order per call: baseline indices (numpy),
    noise of std 0 (torch), the points' coefficients (numpy). Returns each layer's coefficients."""
    batch, coefficients = len(ctx.y), []
    for _ in ctx.layers:
        np.random.choice(batch, n_samples * batch)
        torch.normal(0, torch.tensor(0.0, device=ctx.x.device).repeat((batch * n_samples, *ctx.x.shape[1:])))
        coefficients.append(torch.tensor(np.random.uniform(0.0, 1.0, n_samples * batch), device=ctx.x.device,
                                         dtype=ctx.x.dtype))
    return coefficients


def gradient_shap_all(ctx, n_samples: int = GS_SAMPLES) -> list[torch.Tensor]:
    """Captum `LayerGradientShap` (all-zeros baseline, `n_samples`, stdevs 0) of every layer: mean over the samples of
    (A(x) - A(0)) dz/dA(c x + (1 - c) 0), then mean |.| over the batch."""
    batch, num_layers = len(ctx.y), len(ctx.layers)
    inputs = ctx.x.repeat_interleave(n_samples, dim=0)
    baselines = torch.zeros_like(inputs)
    coefficients = _gradient_shap_draws(ctx, n_samples)
    shape = (n_samples * batch,) + (1,) * (ctx.x.dim() - 1)
    points = torch.cat([c.view(shape) * inputs + (1.0 - c.view(shape)) * baselines for c in coefficients])
    grads = _target_gradients(ctx, points, ctx.y.long().repeat_interleave(n_samples).repeat(num_layers))
    with torch.no_grad():  # layer values of the inputs and of the (all-zero) baselines: every copy is equal
        _, values = _layer_outputs(ctx, torch.cat([ctx.x, baselines[:1]]))
    out = []
    for l, (grad, value) in enumerate(zip(grads, values)):
        at_inputs, at_baselines = value[:batch].repeat_interleave(n_samples, dim=0), value[batch:]
        own = grad[l * n_samples * batch:(l + 1) * n_samples * batch]
        attribution = ((at_inputs - at_baselines) * own).view(batch, n_samples, *own.shape[1:]).sum(1) * 1 / n_samples
        out.append(attribution.detach().abs().mean(0))
    return out


@torch.no_grad()
def deeplift_mlp(ctx) -> list[torch.Tensor]:
    """Captum `LayerDeepLift` (zero baseline, multiplied by inputs) of every layer of the masked MLP: the rescale
    multipliers from the target logit back to each layer's linear output z_l, times z_l(x) - z_l(0)."""
    net, head, batch = ctx.algo.backbone, ctx.algo.heads.head(ctx.task_id), len(ctx.y)
    masks = [m.detach() for m in ctx.masks]
    h = torch.cat([ctx.x, torch.zeros_like(ctx.x)]).flatten(1)
    zs, pre, post = [], [], []
    for l, layer in enumerate(net.fc):
        zs.append(layer(h))
        pre.append(zs[-1] * masks[l])
        h = net.relus[l](pre[-1])
        post.append(h)
    grad = head.weight[ctx.y.long()]  # d z_y / d h_L
    out = [None] * len(zs)
    for l in reversed(range(len(zs))):
        (a, a_ref), (out_x, out_ref) = pre[l].chunk(2), post[l].chunk(2)
        delta_in, delta_out = a - a_ref, out_x - out_ref
        grad = torch.where(delta_in.abs() < DL_EPS, grad * (out_x > 0), grad * delta_out / delta_in) * masks[l]
        z, z_ref = zs[l].chunk(2)
        out[l] = ((z - z_ref) * grad).abs().mean(0)
        grad = grad @ net.fc[l].weight
    return out
