"""FG-AdaHAT's forward-based measures (FA, II, GS, DL; `fg_adahat/importance.py`): closed-form values on a linear
toy network, FA against Captum's `LayerFeatureAblation`, the masks their forwards use (`measure_masks`), Captum's
max-pool rule on the ResNet and the numpy seed GS depends on."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.algorithm import Step
from common.hat import anneal_scale
from common.runner import seed_generators
from fg_adahat.importance import (StepContext, deeplift, deeplift_captum, feature_ablation_batched,
                                  feature_ablation_mlp, gradient_shap, gradient_shap_captum, internal_influence,
                                  internal_influence_captum, plain_masked_mlp)
from test_fgadahat import NUM_BATCHES, batch, build, capture_contexts

pytestmark = pytest.mark.usefixtures("one_thread")


# ----- closed forms on a linear network -------------------------------------------------------------------------------
class LinearNet(nn.Module):
    """x -> (W1 x + b1) m1 -> (W2 . + b2) m2: no nonlinearity, so every attribution has a closed form."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])

    def forward(self, x, masks):
        for layer, m in zip(self.fc, masks):
            x = layer(x) * m
        return x


class OneHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3)

    def head(self, task_id):
        return self.linear

    def forward(self, features, task_id):
        return self.linear(features)


def linear_context():
    torch.manual_seed(3)
    net, heads = LinearNet(), OneHead()
    masks = [torch.tensor([1.0, 0.5, 0.25, 0.0]), torch.tensor([0.8, 0.3])]
    algo = SimpleNamespace(layers=list(net.fc), backbone=net, heads=heads)
    x, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 2, 0])
    return StepContext(algo, x, y, masks, None, task_id=0)


def closed_forms(ctx):
    """Per layer, float64: g = dz_y/da (constant in x), a(x) - a(0) and a(x) (a the layer's module output)."""
    (l1, l2), head = ctx.layers, ctx.algo.heads.linear
    m1, m2 = (m.double() for m in ctx.masks)
    W1, b1, W2, b2, H = (t.detach().double() for t in (l1.weight, l1.bias, l2.weight, l2.bias, head.weight))
    x = ctx.x.double()
    g2 = H[ctx.y] * m2                       # [B, 2]
    g1 = (g2 @ W2) * m1                      # [B, 4]
    a1 = x @ W1.t() + b1
    a2 = (a1 * m1) @ W2.t() + b2
    delta1, delta2 = x @ W1.t(), (x @ W1.t() * m1) @ W2.t()
    return [(g1, delta1, a1), (g2, delta2, a2)]


def test_internal_influence_is_the_layer_gradient_on_a_linear_net():
    """II integrates dz/da along the path; on a linear net dz/da is constant and the weights sum to 1: u = mean|g|."""
    ctx = linear_context()
    for got, (g, _, _) in zip(internal_influence(ctx), closed_forms(ctx)):
        assert torch.allclose(got.double(), g.abs().mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("measure", [deeplift, gradient_shap], ids=["dl", "gs"])
def test_deeplift_and_gradient_shap_are_delta_times_gradient_on_a_linear_net(measure):
    """Zero input baseline: DL = (a(x) - a(0)) dz/da exactly; GS averages g at random points between 0 and x times
    a(x) - a(0), and g is constant: the same value whatever numpy draws."""
    ctx = linear_context()
    np.random.seed(0)
    for got, (g, delta, _) in zip(measure(ctx), closed_forms(ctx)):
        expected = (delta * g).abs().mean(0)
        assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got.double(), g.abs().mean(0), rtol=1e-2)  # not II's value


def test_feature_ablation_is_activation_times_gradient_on_a_linear_net():
    """Zeroing unit f of a (bias included) changes z_y by a_f g_f."""
    ctx = linear_context()
    for got, (g, _, a) in zip(feature_ablation_batched(ctx), closed_forms(ctx)):
        assert torch.allclose(got.double(), (a * g).abs().mean(0), rtol=1e-5, atol=1e-6)


# ----- FA against Captum -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fa_step(tmp_path_factory):
    """One step of FG-AdaHAT (FA) on the masked MLP, 16 samples; its StepContext."""
    _, tasks, algo = build("fgadahat_fa", tmp_path_factory.mktemp("fa"), num_tasks=1)
    seen = capture_contexts(algo, compute=False)
    algo.train()
    algo.begin_task(tasks[0])
    x, y = batch(tasks[0], n=16)
    algo.train_step(x, y, Step(3, NUM_BATCHES, 0, 1))
    return seen[0].ctx


@pytest.mark.parametrize("route", [feature_ablation_mlp, feature_ablation_batched], ids=["rank_one", "batched"])
def test_feature_ablation_equals_captum_layer_feature_ablation(fa_step, route):
    from captum.attr import LayerFeatureAblation
    assert plain_masked_mlp(fa_step)
    ours = route(fa_step)
    for layer, u in zip(fa_step.layers, ours):
        attribution = LayerFeatureAblation(fa_step.logits, layer).attribute(
            fa_step.x, target=fa_step.y)
        theirs = attribution.abs().mean(0)
        assert theirs.shape == u.shape and (theirs > 0).any()
        assert torch.allclose(u, theirs, rtol=1e-4, atol=1e-5 * float(theirs.abs().max()))


# ----- II, GS, DL: the all-layers pass against Captum's per-layer calls ------------------------------------------------
@pytest.mark.parametrize("ours, captum", [(internal_influence, internal_influence_captum),
                                          (gradient_shap, gradient_shap_captum), (deeplift, deeplift_captum)],
                         ids=["ii", "gs", "dl"])
def test_all_layers_pass_equals_captum_per_layer(fa_step, ours, captum):
    """On the plain masked MLP the measures take one pass for all layers; Captum's per-layer calls give the same values
    (float rounding), and GS leaves numpy's and torch's generators exactly where Captum leaves them."""
    assert plain_masked_mlp(fa_step)
    results, states = [], []
    for route in (ours, captum):
        seed_generators(7)
        results.append(route(fa_step))
        states.append((np.random.get_state()[1].copy(), torch.get_rng_state()))
    for u, theirs in zip(*results):
        assert theirs.shape == u.shape and (theirs > 0).any()
        assert torch.allclose(u, theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))
    assert np.array_equal(states[0][0], states[1][0]) and torch.equal(states[0][1], states[1][1])


# ----- which masks the forwards use --------------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["post_step", "step"])
def test_measure_masks_post_step_embeddings_or_the_steps(tmp_path, choice):
    """post_step (default): sigmoid(s_b e) of the embeddings after the optimizer step; step: of those before it.
    The mask factor of Eq. (6) is the step's own mask either way."""
    extra = {} if choice == "post_step" else {"measure_masks": "step"}
    _, tasks, algo = build("fgadahat_fa", tmp_path, num_tasks=1, **extra)
    assert algo.cfg["measure_masks"] == choice
    seen = capture_contexts(algo)
    algo.train()
    algo.begin_task(tasks[0])
    before = [e.detach().clone() for e in algo.backbone.embeddings]
    step = Step(4, NUM_BATCHES, 0, 1)
    algo.train_step(*batch(tasks[0], n=16), step)
    s = anneal_scale(4, NUM_BATCHES, 400.0)
    pre = [torch.sigmoid(s * e) for e in before]
    post = [torch.sigmoid(s * e.detach()) for e in algo.backbone.embeddings]
    assert not all(torch.allclose(a, b) for a, b in zip(pre, post))  # the step moved the embeddings
    expected = post if choice == "post_step" else pre
    assert all(torch.allclose(m, e, rtol=0, atol=1e-7) for m, e in zip(seen[0].ctx.masks, expected))
    for acc, u, m in zip(algo.step_importance, seen[0].raw, pre):
        assert torch.allclose(acc, (u - u.min()) / (u.max() - u.min() + 1e-8) * m, rtol=1e-6, atol=1e-7)


# ----- ResNet max pool and DeepLIFT --------------------------------------------------------------------------------
class FunctionalPool(nn.Module):
    """The stem's pool as a call of F.max_pool2d inside another module (what Captum's DeepLift cannot see)."""

    def forward(self, h):
        return F.max_pool2d(h, 3, stride=2, padding=1)


def test_resnet_pool_is_a_module_same_forward_and_deeplift_applies_its_rule(tmp_path, monkeypatch):
    """The stem's pool gives F.max_pool2d's numbers, and Captum's DeepLift runs its max-pool rule on it (it does not
    for the functional pool)."""
    from captum.attr._core import deep_lift
    calls = []
    rule = deep_lift.SUPPORTED_NON_LINEAR[nn.MaxPool2d]
    monkeypatch.setitem(deep_lift.SUPPORTED_NON_LINEAR, nn.MaxPool2d,
                        lambda *args, **kwargs: calls.append(1) or rule(*args, **kwargs))
    _, tasks, algo = build("fgadahat_dl", tmp_path, num_tasks=1, benchmark="synthetic_rgb", batch_size=4)
    seen = capture_contexts(algo, compute=False)
    algo.train()
    algo.begin_task(tasks[0])
    algo.train_step(*batch(tasks[0], n=2), Step(2, 90, 0, 1))
    ctx, net = seen[0].ctx, algo.backbone
    assert isinstance(net.pool, nn.MaxPool2d)
    with torch.no_grad():
        module_out = ctx.logits(ctx.x)
    counts = {}
    for name, pool in (("module", net.pool), ("functional", FunctionalPool())):
        net.pool = pool
        with torch.no_grad():
            assert torch.equal(ctx.logits(ctx.x), module_out)
        calls.clear()
        deeplift(ctx)
        counts[name] = len(calls)
    assert counts["module"] > 0 == counts["functional"], counts


# ----- numpy seed --------------------------------------------------------------------------------------------------
def test_seed_generators_makes_gradient_shap_reproducible(fa_step):
    """GS draws its points from numpy's global generator: equal after the same run seed, different otherwise."""
    runs = {}
    for seed in (1, 1, 2):
        seed_generators(seed)
        runs.setdefault(seed, []).append(torch.cat(gradient_shap(fa_step)))
    assert torch.equal(runs[1][0], runs[1][1])
    assert not torch.equal(runs[1][0], runs[2][0])
