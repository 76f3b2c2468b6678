"""FG-AdaHAT (`fg_adahat/`, `spec/algorithms.md` §4): the importance measures on hand-made tensors, the batched
feature ablation against its naive loop, the Captum measures, the per-step accumulation, the task-end summing, the
adjustment rate, the task-1 equivalence with AdaHAT and the per-measure configs, checked against values computed by
hand in the comments."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from common import benchmarks, config, engine
from helpers import spy_on_rates
from common.algorithm import Step
from common.hat import anneal_scale, mask_sparsity
from common.runner import apply_study
from fg_adahat import METHODS
from fg_adahat.fgadahat import FGAdaHAT
from fg_adahat.importance import (MEASURES, StepContext, activation_fisher, contribution_utility, deeplift,
                                  feature_ablation, feature_ablation_naive, gradient_shap, input_contribution_utility,
                                  input_gradient, internal_influence, mean_abs_activation, output_gradient, per_unit)

NUM_BATCHES = 11  # synthetic: 400 samples -> 360 train (90/10 split), batch 32, drop_last -> 11 full batches
ALL_MEASURES = ("ig", "og", "cu", "icu", "afi", "fa", "ii", "gs", "dl")


# ----- helpers -------------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.usefixtures("one_thread")


def make_cfg(method, tmp_path, benchmark="synthetic", **extra):
    cli = {"method": method, "benchmark": benchmark, "epochs": 1, "out_dir": str(tmp_path), "references": "none",
           **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)


def build(method, tmp_path, num_tasks=3, benchmark="synthetic", **extra):
    cfg = make_cfg(method, tmp_path, benchmark=benchmark, num_tasks=num_tasks, **extra)
    tasks = benchmarks.build_benchmark(benchmark, num_tasks, "data")
    torch.manual_seed(cfg["seed"])
    algo = METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
    return cfg, tasks, algo


def quiet(_message):
    pass


def batch(task, n=32, start=0):
    return task.transform(task.train_x[start:start + n]), task.train_y[start:start + n]


def capture_contexts(algo, compute=True):
    """Wrap `algo.measure` to keep every StepContext it is called with (and the raw importances). With
    `compute=False` the real measure is skipped (IG is returned instead), e.g. to keep FA off a ResNet step."""
    seen = []
    original = algo.measure

    def spy(ctx):
        raw = original(ctx) if compute else input_gradient(ctx)
        seen.append(SimpleNamespace(ctx=ctx, raw=[r.clone() for r in raw]))
        return raw

    algo.measure = spy
    return seen


def minmax64(u):
    """Min-max normalisation of §4.2 in float64: (u - min u) / (max u - min u + 1e-8)."""
    u = u.double()
    return (u - u.min()) / (u.max() - u.min() + 1e-8)


def min_pairs(units, first_inputs):
    """Parameter-wise min by explicit loops over (i, j) (first layer: the out unit only), float64."""
    out = []
    for l, v in enumerate(units):
        if l == 0:
            w = v.double().view(-1, 1).repeat(1, first_inputs)
        else:
            w = torch.tensor([[min(a, b) for b in units[l - 1].tolist()] for a in v.tolist()], dtype=torch.float64)
        out.append((w, v.double()))
    return out


# ----- 1. cheap measures on a hand-made two-layer setting -----------------------------------------------------------
def tiny_linear_context():
    """Two Linear layers (3 -> 2 -> 2) and a 2-class head, with set weights, gradients and activations (batch 2).

    W1 = [[1, -2, 3], [0, 4, -1]]      dW1 = [[0.5, -1, 2], [-3, 0, 1]]
    W2 = [[2, -1], [-3, 5]]            dW2 = [[1, -2], [0.5, 4]]
    H  = [[1, 2], [-1, -3]]            dH  = [[-2, 1], [3, -0.5]]
    h1 = [[1, 0], [3, 2]] -> mean|h1| = [2, 1]       h2 = [[0, 4], [2, 0]] -> mean|h2| = [1, 2]
    """
    l1, l2, head = nn.Linear(3, 2), nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        l1.weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.0, 4.0, -1.0]]))
        l2.weight.copy_(torch.tensor([[2.0, -1.0], [-3.0, 5.0]]))
        head.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, -3.0]]))
    l1.weight.grad = torch.tensor([[0.5, -1.0, 2.0], [-3.0, 0.0, 1.0]])
    l2.weight.grad = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    head.weight.grad = torch.tensor([[-2.0, 1.0], [3.0, -0.5]])
    heads = SimpleNamespace(head=lambda task_id: head)
    algo = SimpleNamespace(layers=[l1, l2], heads=heads, backbone=None)
    acts = [torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[0.0, 4.0], [2.0, 0.0]])]
    masks = [torch.full((2,), 0.5), torch.full((2,), 0.5)]
    return StepContext(algo, None, None, masks, acts, task_id=1), head


def values(tensors):
    return [t.tolist() for t in tensors]


def test_input_gradient_by_hand():
    ctx, _ = tiny_linear_context()
    # IG_l,i = sum_j |dW_l[i, j]|: layer 1: 0.5 + 1 + 2 = 3.5, 3 + 0 + 1 = 4; layer 2: 1 + 2 = 3, 0.5 + 4 = 4.5
    assert values(input_gradient(ctx)) == [[3.5, 4.0], [3.0, 4.5]]


def test_output_gradient_by_hand():
    ctx, head = tiny_linear_context()
    # OG_l,i = sum_k |dW_{l+1}[k, i]|: layer 1 -> columns of dW2: 1 + 0.5 = 1.5, 2 + 4 = 6;
    # layer 2 (last) -> columns of the head gradient: 2 + 3 = 5, 1 + 0.5 = 1.5
    assert values(output_gradient(ctx)) == [[1.5, 6.0], [5.0, 1.5]]
    # a head without a gradient gives zeros (shaped like the layer's mask)
    head.weight.grad = None
    assert values(output_gradient(ctx)) == [[1.5, 6.0], [0.0, 0.0]]


def test_contribution_utility_by_hand():
    ctx, _ = tiny_linear_context()
    # CU_l,i = mean|h_l,i| * sum_k |W_{l+1}[k, i]|: layer 1: 2 * (2 + 3) = 10, 1 * (1 + 5) = 6;
    # layer 2 with the head: 1 * (1 + 1) = 2, 2 * (2 + 3) = 10
    assert values(contribution_utility(ctx)) == [[10.0, 6.0], [2.0, 10.0]]


def test_input_contribution_utility_by_hand():
    ctx, _ = tiny_linear_context()
    # ICU_l,i = mean|h_l,i| * sum_j |W_l[i, j]|: layer 1: 2 * (1 + 2 + 3) = 12, 1 * (0 + 4 + 1) = 5;
    # layer 2: 1 * (2 + 1) = 3, 2 * (3 + 5) = 16
    assert values(input_contribution_utility(ctx)) == [[12.0, 5.0], [3.0, 16.0]]


def test_activation_fisher_described_by_hand():
    ctx, _ = tiny_linear_context()
    # AFI_l,i = mean|h_l,i| * sum_j dW_l[i, j]^2: layer 1: 2 * (0.25 + 1 + 4) = 10.5, 1 * (9 + 0 + 1) = 10;
    # layer 2: 1 * (1 + 4) = 5, 2 * (0.25 + 16) = 32.5
    assert values(activation_fisher(ctx)) == [[10.5, 10.0], [5.0, 32.5]]


def test_measures_are_read_from_the_current_tensors():
    ctx, _ = tiny_linear_context()
    # doubling W2 doubles CU of layer 1 and ICU of layer 2 only; gradients and activations untouched
    with torch.no_grad():
        ctx.layers[1].weight.mul_(2)
    assert values(contribution_utility(ctx)) == [[20.0, 12.0], [2.0, 10.0]]
    assert values(input_contribution_utility(ctx)) == [[12.0, 5.0], [6.0, 32.0]]
    assert values(input_gradient(ctx)) == [[3.5, 4.0], [3.0, 4.5]]


def test_per_unit_and_mean_abs_activation_on_conv_shapes():
    w = torch.arange(24.0).view(2, 3, 2, 2)  # [out, in, kh, kw]
    # unit dim 0: out 0 holds 0..11 -> 66; out 1 holds 12..23 -> 210
    assert per_unit(w, 0).tolist() == [66.0, 210.0]
    # unit dim 1: in channel c holds (4c .. 4c+3) and (12 + 4c .. 12 + 4c + 3) -> 16c + 6 + 16c + 54 = 32c + 60
    assert per_unit(w, 1).tolist() == [60.0, 92.0, 124.0]  # total 276 = 66 + 210
    h = torch.arange(16.0).view(2, 2, 2, 2) - 4  # [B, C, H, W]
    # channel 0: sample 0 holds -4..-1 (|.| sum 10), sample 1 holds 4..7 (22) -> 32 / 8 = 4
    # channel 1: sample 0 holds 0..3 (6), sample 1 holds 8..11 (38) -> 44 / 8 = 5.5
    assert mean_abs_activation(h).tolist() == [4.0, 5.5]
    # dense [B, N]: plain mean of |h| over the batch
    assert mean_abs_activation(torch.tensor([[-1.0, 2.0], [3.0, 0.0]])).tolist() == [2.0, 1.0]


def test_cheap_measures_on_conv_layers_by_hand():
    # conv 3 -> 2 (2x2 kernel), conv 2 -> 3 (1x1), head 3 -> 2; activations of layer 1: [2, 2, 2, 2] as above
    c1, c2, head = nn.Conv2d(3, 2, 2, bias=False), nn.Conv2d(2, 3, 1, bias=False), nn.Linear(3, 2)
    with torch.no_grad():
        c1.weight.copy_(torch.arange(24.0).view(2, 3, 2, 2) - 12)  # |.| sums per out channel: 78 (-12..-1), 66 (0..11)
        c2.weight.copy_(torch.arange(6.0).view(3, 2, 1, 1) - 2)  # [[-2, -1], [0, 1], [2, 3]]: |.| column sums 4, 5
        head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]))
    c1.weight.grad = torch.arange(24.0).view(2, 3, 2, 2) / 2  # k/2 for k = 0..23
    c2.weight.grad = torch.arange(6.0).view(3, 2, 1, 1)  # [[0, 1], [2, 3], [4, 5]]: column sums 6, 9
    head.weight.grad = torch.tensor([[1.0, -1.0, 2.0], [0.0, 3.0, -2.0]])  # |.| column sums 1, 4, 4
    h1 = torch.arange(16.0).view(2, 2, 2, 2) - 4  # mean |h1| = [4, 5.5]
    h2 = torch.ones(2, 3, 1, 1) * torch.tensor([1.0, 2.0, 0.0]).view(1, 3, 1, 1)  # mean |h2| = [1, 2, 0]
    algo = SimpleNamespace(layers=[c1, c2], heads=SimpleNamespace(head=lambda t: head), backbone=None)
    ctx = StepContext(algo, None, None, [torch.ones(2), torch.ones(3)], [h1, h2], task_id=1)
    # IG layer 1: sum_{k<12} k/2 = 33, sum_{12<=k<24} k/2 = 105; layer 2: rows of |dW2|: 1, 5, 9
    assert values(input_gradient(ctx)) == [[33.0, 105.0], [1.0, 5.0, 9.0]]
    # OG layer 1: columns of dW2 (over out and kernel): 6, 9; layer 2: columns of the head gradient: 1, 4, 4
    assert values(output_gradient(ctx)) == [[6.0, 9.0], [1.0, 4.0, 4.0]]
    # CU layer 1: [4 * 4, 5.5 * 5] = [16, 27.5]; layer 2: |H| column sums 4, 2, 1.5 -> [1 * 4, 2 * 2, 0 * 1.5]
    assert values(contribution_utility(ctx)) == [[16.0, 27.5], [4.0, 4.0, 0.0]]
    # ICU layer 1: [4 * 78, 5.5 * 66] = [312, 363]; layer 2: |W2| rows 3, 1, 5 -> [1 * 3, 2 * 1, 0 * 5]
    assert values(input_contribution_utility(ctx)) == [[312.0, 363.0], [3.0, 2.0, 0.0]]
    # AFI layer 1: sum_{k<12} (k/2)^2 = 506/4 = 126.5, sum_{12<=k<24} (k/2)^2 = (4324 - 506)/4 = 954.5
    #   -> [4 * 126.5, 5.5 * 954.5] = [506, 5249.75]; layer 2: rows of dW2^2: 1, 13, 41 -> [1, 26, 0]
    assert values(activation_fisher(ctx)) == [[506.0, 5249.75], [1.0, 26.0, 0.0]]


def test_measure_registry_and_afi_semantics(tmp_path):
    assert set(MEASURES) == set(ALL_MEASURES)
    expected = {"ig": input_gradient, "og": output_gradient, "cu": contribution_utility,
                "icu": input_contribution_utility, "afi": input_contribution_utility, "fa": feature_ablation,
                "ii": internal_influence, "gs": gradient_shap, "dl": deeplift}
    for m, fn in expected.items():
        _, _, algo = build(f"fgadahat_{m}", tmp_path, num_tasks=1)
        assert algo.measure is fn, m
    # AFI: paper semantics (the default) = ICU (paper-time code, §4.6); described = squared gradient x activation
    _, _, paper = build("fgadahat_afi", tmp_path, num_tasks=1)
    assert paper.cfg["afi_semantics"] == "paper" and paper.measure is input_contribution_utility
    _, _, described = build("fgadahat_afi", tmp_path, num_tasks=1, afi_semantics="described")
    assert described.measure is activation_fisher
    # the switch only concerns AFI
    _, _, icu = build("fgadahat_icu", tmp_path, num_tasks=1, afi_semantics="described")
    assert icu.measure is input_contribution_utility
    with pytest.raises(ValueError, match="afi_semantics"):
        build("fgadahat_afi", tmp_path, num_tasks=1, afi_semantics="head")


# ----- 2. feature ablation: batched == naive loop ---------------------------------------------------------------------
def test_feature_ablation_batched_equals_naive_on_mlp(tmp_path):
    cfg, tasks, algo = build("fgadahat_fa", tmp_path, num_tasks=1)
    assert cfg["importance"] == "fa" and algo.measure is feature_ablation
    seen = capture_contexts(algo)
    algo.train()
    algo.begin_task(tasks[0])
    x, y = batch(tasks[0], n=16)
    algo.train_step(x, y, Step(1, NUM_BATCHES, 0, 1))  # s = 1/400: soft masks ~0.5, every unit active
    (step,) = seen
    naive = feature_ablation_naive(step.ctx)
    batched = feature_ablation(step.ctx)
    assert [v.shape for v in batched] == [(256,), (100,), (64,)] == [v.shape for v in naive]
    for b, n, r in zip(batched, naive, step.raw):
        assert torch.allclose(b, n, rtol=1e-4, atol=1e-6 * float(n.abs().max()))
        assert torch.equal(b, r)  # the step's own FA used the same post-step weights
        assert (n > 0).any() and (n >= 0).all()


def test_feature_ablation_batched_equals_naive_on_resnet(tmp_path):
    cfg, tasks, algo = build("fgadahat_fa", tmp_path, num_tasks=2, benchmark="synthetic_rgb", batch_size=4)
    assert cfg["backbone"] == "resnet18"
    seen = capture_contexts(algo, compute=False)  # FA over all 17 convs would be slow: measure IG in the step
    algo.train()
    algo.begin_task(tasks[0])
    x, y = batch(tasks[0], n=3)
    algo.train_step(x, y, Step(2, 90, 0, 1))  # s ~ 4.5: masks spread over (0, 1)
    (step,) = seen
    # the first three weighted convs: stem (64), block 1 conv1 (64), block 1 conv2 (64, added to the shortcut)
    sliced = StepContext(SimpleNamespace(layers=algo.layers[:3], heads=algo.heads, backbone=algo.backbone),
                         step.ctx.x, step.ctx.y, step.ctx.masks, step.ctx.activations, step.ctx.task_id)
    naive = feature_ablation_naive(sliced)
    batched = feature_ablation(sliced)
    assert [v.shape for v in batched] == [(64,)] * 3
    for b, n in zip(batched, naive):
        assert (n > 0).any() and (n >= 0).all()
        # float32 cancellation in (loss - ablated loss) leaves about 1e-9 absolute error on this CPU's kernels
        assert torch.allclose(b, n, rtol=1e-4, atol=3e-4 * float(n.abs().max()))


# ----- 3. Captum measures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_step(tmp_path_factory):
    """One step of FG-AdaHAT (IG) on the MLP; its StepContext."""
    cfg, tasks, algo = build("fgadahat_ig", tmp_path_factory.mktemp("captum"), num_tasks=1)
    seen = capture_contexts(algo)
    algo.train()
    algo.begin_task(tasks[0])
    x, y = batch(tasks[0], n=16)
    algo.train_step(x, y, Step(3, NUM_BATCHES, 0, 1))
    return seen[0].ctx


@pytest.mark.parametrize("measure", [internal_influence, gradient_shap, deeplift], ids=["ii", "gs", "dl"])
def test_captum_measures_one_finite_nonnegative_value_per_unit(mlp_step, measure):
    torch.manual_seed(0)  # GS draws its interpolation points
    grads = [p.grad.clone() for p in mlp_step.layers[0].parameters()]
    out = measure(mlp_step)
    assert [tuple(v.shape) for v in out] == [(256,), (100,), (64,)]
    for v in out:
        assert torch.isfinite(v).all() and (v >= 0).all() and (v > 0).any()
    # the extra passes leave the step's (adjusted) gradients on .grad untouched
    assert all(torch.equal(p.grad, g) for p, g in zip(mlp_step.layers[0].parameters(), grads))


@pytest.mark.parametrize("method", ["fgadahat_ii", "fgadahat_gs", "fgadahat_dl"])
def test_captum_measures_through_a_training_step(method, tmp_path):
    _, tasks, algo = build(method, tmp_path, num_tasks=1)
    algo.train()
    algo.begin_task(tasks[0])
    for b in range(2):
        x, y = batch(tasks[0], n=8, start=8 * b)
        algo.train_step(x, y, Step(b + 1, NUM_BATCHES, 0, 1))
    assert algo.num_steps == 2
    for acc in algo.step_importance:
        assert torch.isfinite(acc).all() and (acc >= 0).all() and (acc > 0).any()


def test_deeplift_on_resnet(tmp_path):
    _, tasks, algo = build("fgadahat_dl", tmp_path, num_tasks=2, benchmark="synthetic_rgb", batch_size=4)
    seen = capture_contexts(algo, compute=False)
    algo.train()
    algo.begin_task(tasks[0])
    x, y = batch(tasks[0], n=2)
    algo.train_step(x, y, Step(2, 90, 0, 1))
    out = deeplift(seen[0].ctx)
    assert [v.shape[0] for v in out] == algo.backbone.units
    for v in out:
        assert v.dim() == 1 and torch.isfinite(v).all() and (v >= 0).all()
    assert (out[0] > 0).any()


# ----- 4. per-step accumulation (§4.2) --------------------------------------------------------------------------------
def fake_step(algo, task_id, raw, masks):
    """`after_step` with a measure that returns `raw` (one tensor per layer)."""
    algo.measure = lambda ctx: [r.clone() for r in raw]
    algo.after_step(None, None, SimpleNamespace(task_id=task_id), masks, None, None)


def padded(head, n):
    """A length-n vector starting with the values `head`, zeros after."""
    v = torch.zeros(n)
    v[:len(head)] = torch.tensor(head)
    return v


def test_after_step_minmax_times_soft_mask_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=1)
    units = algo.backbone.units
    algo.begin_task(SimpleNamespace(id=1))
    # step 1: u = [2, 1, 0, ...] -> u^ = [1, 0.5, 0, ...]; m = 0.5 except m[1] = 1 -> [0.5, 0.5, 0, ...]
    m1 = [torch.full((n,), 0.5) for n in units]
    for m in m1:
        m[1] = 1.0
    fake_step(algo, 1, [padded([2.0, 1.0], n) for n in units], m1)
    for acc in algo.step_importance:
        assert acc[:3].tolist() == pytest.approx([0.5, 0.5, 0.0], rel=1e-7) and (acc[3:] == 0).all()
    # step 2: u = [0, 3, 0, ...] -> u^ = [0, 1, 0, ...]; m = 0.25 -> adds [0, 0.25, 0, ...]
    fake_step(algo, 1, [padded([0.0, 3.0], n) for n in units], [torch.full((n,), 0.25) for n in units])
    assert algo.num_steps == 2
    for acc in algo.step_importance:
        assert acc[:3].tolist() == pytest.approx([0.5, 0.75, 0.0], rel=1e-7) and (acc[3:] == 0).all()


def test_after_step_without_mask_factor(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=1, step_multiply_training_mask=False)
    units = algo.backbone.units
    algo.begin_task(SimpleNamespace(id=1))
    # u = [2, 1, 0, ...] -> u^ = [1, 0.5, 0, ...], the soft mask (0.5) is not applied
    fake_step(algo, 1, [padded([2.0, 1.0], n) for n in units], [torch.full((n,), 0.5) for n in units])
    for acc in algo.step_importance:
        assert acc[:3].tolist() == pytest.approx([1.0, 0.5, 0.0], rel=1e-7) and (acc[3:] == 0).all()


def test_minmax_denominator_has_plus_1e_8(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=1, step_multiply_training_mask=False)
    units = algo.backbone.units
    algo.begin_task(SimpleNamespace(id=1))
    # u = [0, 1e-8, 2e-8, 0, ...]: (u - 0) / (2e-8 + 1e-8) = [0, 1/3, 2/3] (without the +1e-8: [0, 0.5, 1])
    fake_step(algo, 1, [padded([0.0, 1e-8, 2e-8], n) for n in units], [torch.ones(n) for n in units])
    for acc in algo.step_importance:
        assert acc[:3].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3], rel=1e-5)
    # a constant u (max = min): 0 / (0 + 1e-8) = 0 everywhere, no NaN
    algo.begin_task(SimpleNamespace(id=1))
    fake_step(algo, 1, [torch.full((n,), 7.0) for n in units], [torch.ones(n) for n in units])
    assert all(torch.equal(acc, torch.zeros_like(acc)) for acc in algo.step_importance)


@pytest.mark.parametrize("multiply", [True, False])
def test_after_step_recomputed_for_one_real_step(tmp_path, multiply):
    cfg, tasks, algo = build("fgadahat_ig", tmp_path, num_tasks=1, step_multiply_training_mask=multiply)
    algo.train()
    algo.begin_task(tasks[0])
    e = [emb.detach().clone() for emb in algo.backbone.embeddings]
    x, y = batch(tasks[0])
    step = Step(4, NUM_BATCHES, 0, 1)
    algo.train_step(x, y, step)
    # s at 0-based batch 4 of 11: 1/400 + (400 - 1/400) * 3/10 = 120.00175; m = sigmoid(s e) of the pre-step e
    s = anneal_scale(4, NUM_BATCHES, 400.0)
    assert s == pytest.approx(120.00175)
    masks = [torch.sigmoid(s * v) for v in e]
    assert all((m > 0.01).any() and (m < 0.99).any() for m in masks)
    for l, (acc, layer) in enumerate(zip(algo.step_importance, algo.layers)):
        u = layer.weight.grad.abs().sum(dim=1)  # IG of the step (task 1: rates 1, adjusted = raw gradient)
        expected = minmax64(u) * (masks[l].double() if multiply else 1.0)
        assert torch.allclose(acc.double(), expected, rtol=1e-5, atol=1e-7), l
    assert algo.num_steps == 1


# ----- 5. task end and summing over tasks (§4.2 end, §4.4) ------------------------------------------------------------
B_I = 1e-8


def three_hand_tasks(algo, set_embeddings=None):
    """Task 1: steps u = [2, 1, 0..] with m = 0.5 and u = [0, 3, 0..] with m = 1:
        acc = [0.5, 0.25, 0] + [0, 1, 0] = [0.5, 1.25, 0] -> I^1 = acc / 2 + b_I = [0.25, 0.625, 0, 0..] + b_I
    Task 2: one step u = [0, 0, 5] with m = 0.5 -> I^2 = [0, 0, 0.5, 0..] + b_I
    Task 3: one step u = [1, 0, 0] with m = 1 -> I^3 = [1, 0, 0, 0..] + b_I
    Returns importance_sum after each task (the same pattern in every layer)."""
    units = algo.backbone.units
    sums = []
    plan = {1: [([2.0, 1.0], 0.5), ([0.0, 3.0], 1.0)], 2: [([0.0, 0.0, 5.0], 0.5)], 3: [([1.0], 1.0)]}
    for t, steps in plan.items():
        task = SimpleNamespace(id=t)
        algo.begin_task(task)
        for head, m in steps:
            fake_step(algo, t, [padded(head, n) for n in units], [torch.full((n,), m) for n in units])
        if set_embeddings is not None:
            set_embeddings(algo)
        algo.end_task(task)
        sums.append([s.clone() for s in algo.importance_sum])
    return sums


def test_task_importance_is_step_mean_plus_base(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=3)
    assert all(torch.equal(s, torch.zeros_like(s)) for s in algo.importance_sum)  # I^{<1} = 0
    three_hand_tasks(algo)
    assert len(algo.task_importances) == 3
    i1, i2, i3 = ([layer[:4].tolist() for layer in imp] for imp in algo.task_importances)
    for l in range(3):
        assert i1[l] == pytest.approx([0.25 + B_I, 0.625 + B_I, B_I, B_I], rel=1e-6)
        assert i2[l] == pytest.approx([B_I, B_I, 0.5 + B_I, B_I], rel=1e-6)
        assert i3[l] == pytest.approx([1 + B_I, B_I, B_I, B_I], rel=1e-6)
    # the base importance is added once per task (not per step): free units hold exactly b_I
    assert all(float(imp[-1]) == pytest.approx(B_I, rel=1e-6) for imp in algo.task_importances[0])


def test_add_all_weights_older_tasks_more(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=3)
    assert algo.cfg["importance_summing"] == "add_all"
    s1, s2, s3 = three_hand_tasks(algo)
    I1, I2, I3 = algo.task_importances
    for l in range(3):
        # I^{<2} = I^1; I^{<3} = 2 I^1 + I^2; I^{<4} = 3 I^1 + 2 I^2 + I^3 (weights t - tau)
        assert torch.allclose(s1[l], I1[l], rtol=1e-6, atol=0)
        assert torch.allclose(s2[l], 2 * I1[l] + I2[l], rtol=1e-6, atol=0)
        assert torch.allclose(s3[l], 3 * I1[l] + 2 * I2[l] + I3[l], rtol=1e-6, atol=0)
        # by hand: after task 2: [0.5, 1.25, 0.5, 0..] + 3 b_I; after task 3: [1.75, 1.875, 1.0, 0..] + 6 b_I
        assert s2[l][:4].tolist() == pytest.approx([0.5, 1.25, 0.5, 3 * B_I], rel=1e-6)
        assert s3[l][:4].tolist() == pytest.approx([1.75, 1.875, 1.0, 6 * B_I], rel=1e-6)
        assert float(s3[l][-1]) == pytest.approx(6 * B_I, rel=1e-6)


def test_add_latest_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=3, importance_summing="add_latest")
    s1, s2, s3 = three_hand_tasks(algo)
    for l in range(3):
        # I^{<k+1} = I^{<k} + I^k: after task 2: [0.25, 0.625, 0.5, 0..] + 2 b_I; after 3: [1.25, 0.625, 0.5] + 3 b_I
        assert s2[l][:4].tolist() == pytest.approx([0.25, 0.625, 0.5, 2 * B_I], rel=1e-6)
        assert s3[l][:4].tolist() == pytest.approx([1.25, 0.625, 0.5, 3 * B_I], rel=1e-6)


def test_add_average_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=3, importance_summing="add_average")
    s1, s2, s3 = three_hand_tasks(algo)
    for l in range(3):
        # I^{<k+1} = I^{<k} + (1/k) sum_{tau<=k} I^tau:
        # after 2: I^1 + (I^1 + I^2)/2 = [0.25 + 0.125, 0.625 + 0.3125, 0.25] + 2 b_I = [0.375, 0.9375, 0.25]
        # after 3: + (I^1 + I^2 + I^3)/3 = + [1.25/3, 0.625/3, 0.5/3] = [0.7916667, 1.1458333, 0.4166667] + 3 b_I
        assert s2[l][:4].tolist() == pytest.approx([0.375, 0.9375, 0.25, 2 * B_I], rel=1e-6)
        assert s3[l][:4].tolist() == pytest.approx([0.375 + 1.25 / 3, 0.9375 + 0.625 / 3, 0.25 + 0.5 / 3, 3 * B_I],
                                                   rel=1e-6)


def test_filter_unmasked_importance_uses_the_stored_binary_mask(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, num_tasks=3, filter_unmasked_importance=True)

    def set_embeddings(a):
        # stored mask 1[e > 0] = [1, 0, 1, 0, 0, ...] in every layer
        with torch.no_grad():
            for e in a.backbone.embeddings:
                e.fill_(-1.0)
                e[0], e[2] = 1.0, 0.5

    s1, s2, _ = three_hand_tasks(algo, set_embeddings)
    I1, I2, _ = algo.task_importances
    for l in range(3):
        assert torch.equal(algo.task_masks[1][l][:4], torch.tensor([1.0, 0.0, 1.0, 0.0]))
        # I^1 = [0.25, 0.625, 0, 0..] + b_I times [1, 0, 1, 0..] = [0.25 + b_I, 0, b_I, 0, ...]
        assert I1[l][:4].tolist() == pytest.approx([0.25 + B_I, 0.0, B_I, 0.0], rel=1e-6)
        assert I2[l][:4].tolist() == pytest.approx([B_I, 0.0, 0.5 + B_I, 0.0], rel=1e-6)
        assert int((I1[l] != 0).sum()) == 2
        assert s2[l][:4].tolist() == pytest.approx([0.5 + 3 * B_I, 0.0, 0.5 + 3 * B_I, 0.0], rel=1e-6)


# ----- 6. adjustment rate (§4.1) --------------------------------------------------------------------------------------
ALPHA = 1.5e-7


def constructed_task_2(algo, aggregation_check=False):
    """Task 2 with a hand-made state:
    importance I^{<2}: layer 1 (256): I[3] = 2e-7, I[12] = 1e-7, rest 1e-8; layer 2 (100): I[0] = 3e-7, rest 1e-8;
    layer 3 (64): I[7] = 5e-7, rest 1e-8.
    cumulative M: layer 1 units 0-19, layer 2 units 0-4, layer 3 every unit.
    soft masks: layer 1 0.25 on free units (1 on used), layer 2 0.2, layer 3 0.5.
    R_l = sum m (1 - M) / sum (1 - M): 236 * 0.25 / 236 = 0.25; 95 * 0.2 / 95 = 0.2; layer 3: no free unit -> 0."""
    I = [torch.full((256,), 1e-8), torch.full((100,), 1e-8), torch.full((64,), 1e-8)]
    I[0][3], I[0][12], I[1][0], I[2][7] = 2e-7, 1e-7, 3e-7, 5e-7
    M = [torch.zeros(256), torch.zeros(100), torch.ones(64)]
    M[0][:20], M[1][:5] = 1, 1
    algo.importance_sum = [i.clone() for i in I]
    algo.cumulative = [m.clone() for m in M]
    algo.begin_task(SimpleNamespace(id=2))
    m0 = torch.where(M[0] > 0, 1.0, 0.25)
    masks = [m0, torch.full((100,), 0.2), torch.full((64,), 0.5)]
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    assert [float(r) for r in layer_sparsity] == pytest.approx([0.25, 0.2, 0.0], rel=1e-6)
    return algo.adjustment_rates(masks, layer_sparsity, Step(0, 10, 0, 2))


def test_rate_linear_sparsity_reg_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path)
    assert (algo.cfg["alpha"], algo.cfg["base_linear"], algo.cfg["base_sparsity_reg"]) == (ALPHA, 5.0, 0.1)
    (w1, b1), (w2, b2), (w3, b3) = constructed_task_2(algo)
    # c_l = (t + b_L)(R_l + b_R) with t = 2: c_1 = 7 * 0.35 = 2.45, c_2 = 7 * 0.3 = 2.1, c_3 = 7 * 0.1 = 0.7
    # a = alpha / (c I + alpha) = 1.5 / (c I / 1e-7 + 1.5)
    # layer 1 (first layer: out unit only): row 3 -> 1.5 / (2.45 * 2 + 1.5) = 1.5 / 6.4 = 0.234375 for every input
    assert torch.allclose(w1[3], torch.full((784,), 0.234375), rtol=1e-5, atol=0)
    assert b1[12].item() == pytest.approx(1.5 / (2.45 + 1.5), rel=1e-5)  # 0.3797468
    assert w1[40, 5].item() == pytest.approx(1.5 / (0.245 + 1.5), rel=1e-5)  # free unit: I = b_I -> 0.8595989
    # layer 2: min(I2[0] = 3e-7, I1[3] = 2e-7) = 2e-7 -> 1.5 / (2.1 * 2 + 1.5) = 1.5 / 5.7 = 0.2631579
    assert w2[0, 3].item() == pytest.approx(1.5 / 5.7, rel=1e-5)
    assert w2[0, 12].item() == pytest.approx(1.5 / 3.6, rel=1e-5)  # min(3e-7, 1e-7) = 1e-7 -> 0.4166667
    assert w2[50, 3].item() == pytest.approx(1.5 / 1.71, rel=1e-5)  # min(1e-8, 2e-7) = 1e-8 -> 0.8771930
    assert b2[0].item() == pytest.approx(1.5 / (2.1 * 3 + 1.5), rel=1e-5)  # bias: its own unit, 3e-7 -> 0.1923077
    # layer 3: min(I3[7] = 5e-7, I2[0] = 3e-7) = 3e-7 -> 1.5 / (0.7 * 3 + 1.5) = 1.5 / 3.6; bias 7: 1.5 / (3.5 + 1.5)
    assert w3[7, 0].item() == pytest.approx(1.5 / 3.6, rel=1e-5)
    assert b3[7].item() == pytest.approx(0.3, rel=1e-5)
    # every parameter is damped from task 2 on (§4.1): a < 1 everywhere
    assert all((w < 1).all() and (b < 1).all() for w, b in ((w1, b1), (w2, b2), (w3, b3)))


def test_rate_sparsity_reg_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, importance_scheduler="sparsity_reg")
    (w1, b1), (w2, _), (_, b3) = constructed_task_2(algo)
    # c_l = R_l + b_R: 0.35, 0.3, 0.1 (no (t + b_L) factor)
    assert algo.importance_scale([0.25, 0.2, 0.0], 2) == pytest.approx([0.35, 0.3, 0.1])
    assert torch.allclose(w1[3], torch.full((784,), 1.5 / (0.35 * 2 + 1.5)), rtol=1e-5, atol=0)  # 0.6818182
    assert w2[0, 3].item() == pytest.approx(1.5 / (0.3 * 2 + 1.5), rel=1e-5)  # 0.7142857
    assert b3[7].item() == pytest.approx(1.5 / (0.1 * 5 + 1.5), rel=1e-5)  # 0.75


def test_rate_with_the_2024_network_sparsity_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, semantics="paper2024")
    (w1, _), (w2, _), (_, b3) = constructed_task_2(algo)
    # R_l = (free term + reuse term 1 - sum(m M)/sum(M)) / 2: layer 1: (0.25 + (1 - 20/20)) / 2 = 0.125;
    # layer 2: 5 <= 10 used units -> reuse term 1 -> (0.2 + 1) / 2 = 0.6; layer 3: (0 + (1 - 32/64)) / 2 = 0.25
    # c_l = 7 (R_l + 0.1) = 1.575, 4.9, 2.45
    assert torch.allclose(w1[3], torch.full((784,), 1.5 / (1.575 * 2 + 1.5)), rtol=1e-5, atol=0)  # 0.3225806
    assert w2[0, 3].item() == pytest.approx(1.5 / (4.9 * 2 + 1.5), rel=1e-5)  # 0.1327434
    assert b3[7].item() == pytest.approx(1.5 / (2.45 * 5 + 1.5), rel=1e-5)  # 0.1090909


def test_rate_max_aggregation_by_hand(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, aggregation="max")
    (w1, _), (w2, b2), _ = constructed_task_2(algo)
    # max(3e-7, 2e-7) = 3e-7 -> 1.5 / (2.1 * 3 + 1.5) = 1.5 / 7.8; max(1e-8, 2e-7) = 2e-7 -> 1.5 / 5.7
    assert w2[0, 3].item() == pytest.approx(1.5 / 7.8, rel=1e-5)
    assert w2[50, 3].item() == pytest.approx(1.5 / 5.7, rel=1e-5)
    assert w1[3, 0].item() == pytest.approx(0.234375, rel=1e-5)  # first layer: still the out unit alone


def test_filter_by_cumulative_mask(tmp_path):
    _, _, algo = build("fgadahat_ig", tmp_path, filter_by_cumulative_mask=True)
    (w1, b1), (w2, b2), (w3, b3) = constructed_task_2(algo)
    # importance kept only where min(M_i, M_j) = 1 (first layer: M_i): a = alpha / (0 + alpha) = 1 exactly elsewhere
    assert torch.allclose(w1[3], torch.full((784,), 0.234375), rtol=1e-5, atol=0)  # M1[3] = 1: unchanged
    assert torch.equal(w1[30], torch.ones(784)) and b1[30].item() == 1.0  # free unit of layer 1
    assert w2[0, 3].item() == pytest.approx(1.5 / 5.7, rel=1e-5)  # M2[0] = M1[3] = 1
    assert w2[50, 3].item() == 1.0 and w2[0, 30].item() == 1.0 and b2[50].item() == 1.0
    assert w3[7, 0].item() == pytest.approx(1.5 / (0.7 * 3 + 1.5), rel=1e-5)  # M3 = M2[0] = 1, min(I) = 3e-7
    assert w3[7, 4].item() == pytest.approx(1.5 / (0.7 * 0.1 + 1.5), rel=1e-5)  # M2[4] = 1, min(I) = 1e-8: 0.955414
    assert w3[7, 50].item() == 1.0  # M2[50] = 0
    assert b3[7].item() == pytest.approx(0.3, rel=1e-5)  # layer 3 fully used: bias keeps its importance
    # without the filter the same free parameters are damped (b_I-level importance)
    _, _, plain = build("fgadahat_ig", tmp_path)
    (_, _), (pw2, _), _ = constructed_task_2(plain)
    assert pw2[50, 3].item() < 1.0


def test_rates_on_a_real_task_2_step(tmp_path, monkeypatch):
    """After a real task 1: one step of task 2; rates and the IG that step measures, recomputed by hand."""
    cfg, tasks, algo = build("fgadahat_ig", tmp_path, num_tasks=2)
    calls = spy_on_rates(algo, monkeypatch)
    algo.begin_task(tasks[0])
    engine.train_task(algo, tasks[0], cfg, quiet)
    algo.end_task(tasks[0])
    # task 1: I^{<1} = 0 -> a = alpha / (0 + alpha) = 1 exactly on every parameter
    assert len(calls) == NUM_BATCHES
    assert all(torch.equal(w, torch.ones_like(w)) and torch.equal(b, torch.ones_like(b))
               for call in calls for w, b in call.rates)
    I = [s.double().clone() for s in algo.importance_sum]  # add_all after task 1: I^{<2} = I^1
    assert all(torch.equal(s, i) for s, i in zip(algo.importance_sum, algo.task_importances[0]))
    assert all((i >= B_I * 0.999).all() and (i <= 1 + B_I).all() for i in I)
    M = [c.double().clone() for c in algo.cumulative]
    del calls[:]
    algo.begin_task(tasks[1])
    e = [v.detach().clone() for v in algo.backbone.embeddings]
    x, y = batch(tasks[1])
    step = Step(3, NUM_BATCHES, 0, 2)
    algo.train_step(x, y, step)
    (call,) = calls
    s = 1 / 400 + (400 - 1 / 400) * 2 / 10  # 80.002
    masks = [torch.sigmoid(s * v).double() for v in e]
    R = [float((m * (1 - c)).sum() / (1 - c).sum()) if float((1 - c).sum()) > 10 else 0.0 for m, c in zip(masks, M)]
    assert all(0 < r < 1 for r in R)
    c = [(2 + 5.0) * (r + 0.1) for r in R]
    for l, ((rw, rb), (iw, ib)) in enumerate(zip(call.rates, min_pairs(I, 784))):
        assert torch.allclose(rw.double(), ALPHA / (c[l] * iw + ALPHA), rtol=1e-5, atol=0), l
        assert torch.allclose(rb.double(), ALPHA / (c[l] * ib + ALPHA), rtol=1e-5, atol=0), l
        (gw, gb), (aw, ab) = call.before[l], call.after[l]
        assert torch.equal(aw, gw * rw) and torch.equal(ab, gb * rb)
    # the step's IG is read from the adjusted gradients (§4.2): u = sum_j |a_ij g_ij|, min-max, times m
    for l, acc in enumerate(algo.step_importance):
        adjusted = minmax64(call.after[l][0].abs().sum(1)) * masks[l]
        raw = minmax64(call.before[l][0].abs().sum(1)) * masks[l]
        assert torch.allclose(acc.double(), adjusted, rtol=1e-5, atol=1e-7), l
        assert not torch.allclose(acc.double(), raw, rtol=1e-3, atol=1e-5), l


# ----- 7. task 1 trains exactly like AdaHAT ---------------------------------------------------------------------------
def test_task_1_bit_identical_to_adahat(tmp_path):
    states = {}
    for method in ("adahat", "fgadahat_ig"):
        cfg, tasks, algo = build(method, tmp_path, num_tasks=2)  # torch.manual_seed(1) before construction
        torch.manual_seed(7)  # the same embeddings and batch order for both
        algo.begin_task(tasks[0])
        engine.train_task(algo, tasks[0], cfg, quiet)
        algo.end_task(tasks[0])
        assert all(r["capacity"] == 1.0 for r in algo.extra_records()["capacity"])  # a = 1 exactly
        states[method] = ({k: v.clone() for k, v in algo.backbone.state_dict().items()},
                          {k: v.clone() for k, v in algo.heads.state_dict().items()},
                          [m.clone() for m in algo.task_masks[1]])
    (b_a, h_a, m_a), (b_f, h_f, m_f) = states["adahat"], states["fgadahat_ig"]
    assert b_a.keys() == b_f.keys() and h_a.keys() == h_f.keys()
    assert all(torch.equal(b_a[k], b_f[k]) for k in b_a)
    assert all(torch.equal(h_a[k], h_f[k]) for k in h_a)
    assert all(torch.equal(a, f) for a, f in zip(m_a, m_f))


# ----- 8. registry and configs ----------------------------------------------------------------------------------------
PUBLISHED = {m: (1.5e-7, 5.0) for m in ("ig", "cu", "icu", "afi", "fa", "ii")}
PUBLISHED.update({m: (1e-7, 10.0) for m in ("og", "gs", "dl")})


@pytest.mark.parametrize("measure", ALL_MEASURES)
def test_every_measure_variant_resolves_to_its_published_config(measure):
    name = f"fgadahat_{measure}"
    cls = METHODS[name]
    assert issubclass(cls, FGAdaHAT) and cls.name == name
    for benchmark in ("pmnist", "synthetic"):
        cfg = config.resolve({"method": name, "benchmark": benchmark}, METHODS)
        alpha, base_linear = PUBLISHED[measure]
        assert cfg["importance"] == measure
        assert cfg["alpha"] == alpha and cfg["base_linear"] == base_linear
        assert cfg["base_importance"] == 1e-8 and cfg["base_sparsity_reg"] == 0.1
        assert cfg["importance_summing"] == "add_all" and cfg["importance_scheduler"] == "linear_sparsity_reg"
        assert cfg["aggregation"] == "min" and cfg["step_multiply_training_mask"] is True
        assert cfg["filter_by_cumulative_mask"] is False and cfg["filter_unmasked_importance"] is False
        assert cfg["afi_semantics"] == "paper"
        # HAT settings under it
        assert (cfg["s_max"], cfg["clamp_threshold"], cfg["reg_factor"]) == (400.0, 50.0, 0.1)
        assert cfg["stored_masks"] == "binary" and cfg["batch_norm"] is False


def test_every_measure_is_an_explicit_subclass_found_by_name():
    import inspect

    from fg_adahat import measures

    for m in ALL_MEASURES:
        cls = getattr(measures, f"FGAdaHAT_{m.upper()}")
        assert METHODS[f"fgadahat_{m}"] is cls and cls.__bases__ == (FGAdaHAT,)
        assert inspect.getsourcefile(cls).endswith("fg_adahat/measures.py")
        assert f"({m.upper()})" in cls.__doc__ and "u_{l," in cls.__doc__
        assert set(vars(cls)) <= {"name", "__doc__", "__module__", "__qualname__", "__firstlineno__",
                                  "__static_attributes__"}  # only names its measure: the rest is FGAdaHAT's


def test_registry_names_and_plain_fgadahat():
    assert {f"fgadahat_{m}" for m in ALL_MEASURES} | {"fgadahat", "adahat", "hat", "finetuning", "lwf"} <= set(METHODS)
    cfg = config.resolve({"method": "fgadahat", "benchmark": "pmnist"}, METHODS)
    assert (cfg["importance"], cfg["alpha"], cfg["base_linear"]) == ("ig", 1.5e-7, 5.0)


def test_unknown_settings_raise(tmp_path):
    with pytest.raises(ValueError, match="importance"):
        build("fgadahat", tmp_path, num_tasks=1, importance="saliency")
    for key, value in (("importance_scheduler", "summative_mask_sparsity_reg"),
                       ("importance_summing", "linear_decrease"), ("aggregation", "median")):
        with pytest.raises(ValueError, match=key):
            build("fgadahat_ig", tmp_path, num_tasks=1, **{key: value})
    with pytest.raises(config.ConfigError, match="importance"):
        config.resolve({"method": "fgadahat_ig", "benchmark": "synthetic", "importance_type": "ig"}, METHODS)


def test_study_entries_resolve_to_the_published_settings():
    package = Path(__file__).resolve().parent.parent / "fg_adahat"

    def resolve(study, entry, benchmark="pmnist"):
        cli, layer = apply_study(package, {"study": study, "method": entry, "benchmark": benchmark})
        return config.resolve(cli, METHODS, layer)

    for m in ALL_MEASURES:  # the main study adds nothing to the per-measure configs
        cfg = resolve("main", f"fgadahat_{m}")
        assert (cfg["importance"], cfg["alpha"], cfg["base_linear"]) == (m, *PUBLISHED[m])
    assert resolve("main", "fgadahat_dl", "scifar100")["alpha"] == 1e-7
    with pytest.raises(config.ConfigError, match="runs only on pmnist"):
        resolve("main", "fgadahat_fa", "scifar100")
    # ablation (ICU): case 1 drops the linear term, case 2 sets b_L = 0
    case1, case2 = resolve("ablation", "case1_no_linear"), resolve("ablation", "case2_no_base_linear")
    assert (case1["method"], case1["importance"], case1["importance_scheduler"], case1["run_name"]) == (
        "fgadahat_icu", "icu", "sparsity_reg", "case1_no_linear")
    assert (case2["importance_scheduler"], case2["base_linear"], case2["alpha"]) == ("linear_sparsity_reg", 0.0, 1.5e-7)


# ----- importance report ------------------------------------------------------------------------------------------------
def test_importance_report_lines_by_hand(tmp_path):
    from fg_adahat.importance_report import layer_lines

    _, _, algo = build("fgadahat_icu", tmp_path)
    algo.importance_sum = [torch.full((256,), 0.01), torch.full((100,), 0.02), torch.full((64,), 0.3)]
    algo.importance_sum[0][:10] = 0.5
    algo.cumulative = [torch.zeros(256), torch.zeros(100), torch.ones(64)]
    algo.cumulative[0][:10] = 1
    lines = layer_lines(algo, 2)
    assert lines[0] == "  layer 1: 10/256 units used by earlier tasks, median I used 0.5, free 0.01"
    assert lines[1] == "  layer 2: 0/100 units used by earlier tasks, median I used nan, free 0.02"
    assert lines[2] == "  layer 3: 64/64 units used by earlier tasks, median I used 0.3, free nan"
    # (t + b_L) b_R = 7 * 0.1 = 0.7; 1.5e-7 / (0.7 * 0.01 + 1.5e-7) = 2.1428e-05
    assert lines[3] == "  largest rate of a median free unit of layer 1: 2.14e-05"


def test_importance_report_trains_every_task(tmp_path):
    from fg_adahat.importance_report import report

    cfg = make_cfg("fgadahat_ig", tmp_path, num_tasks=2)
    printed = []
    accuracies = report(cfg, printed.append)
    assert len(accuracies) == 2 and all(0 <= a <= 1 for a in accuracies)
    assert printed[1] == "task 2, start:" and printed[2].startswith("  layer 1: ")
    assert sum(line.startswith("  layer ") for line in printed) == 3
