"""HAT machinery (`common/hat.py`), HAT, AdaHAT, its ablations and the HAT variants of the AdaHAT study, checked
against values computed by hand (`spec/algorithms.md` §1, §2, §3, §9, §10)."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adahat import METHODS
from baselines.hat import HAT
from common import benchmarks, config, engine
from helpers import spy_on_rates
from common.algorithm import Step
from common.hat import (MaskedResNet18, aggregate, anneal_scale, compensate_embedding_grads, mask_sparsity,
                        parameter_wise)

S_MAX = 400.0
NUM_BATCHES = 11  # synthetic: 400 samples -> 360 train (90/10 split), batch 32, drop_last -> 11 full batches

# ----- helpers -------------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.usefixtures("one_thread")

def make_cfg(method, tmp_path, **extra):
    cli = {"method": method, "benchmark": "synthetic", "num_tasks": 3, "epochs": 1, "batch_size": 32,
           "out_dir": str(tmp_path), "references": "none", **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)

def build(method, tmp_path, num_tasks=3, **extra):
    cfg = make_cfg(method, tmp_path, num_tasks=num_tasks, **extra)
    tasks = benchmarks.build_benchmark("synthetic", num_tasks, "data")
    torch.manual_seed(cfg["seed"])
    algo = METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
    return cfg, tasks, algo

def quiet(_message):
    pass

class FakeRecord:
    def __init__(self):
        self.messages, self.rows = [], []

    def log(self, message):
        self.messages.append(message)

    def add_task(self, task_id, row, curves, train_seconds, seconds):
        self.rows.append((task_id, row))

def train_one_task(algo, task, cfg):
    """begin_task, one epoch, end_task; returns the embeddings as they were just before end_task."""
    algo.begin_task(task)
    engine.train_task(algo, task, cfg, quiet)
    embeddings = [e.detach().clone() for e in algo.backbone.embeddings]
    algo.end_task(task)
    return embeddings


def batch(task, n=32, start=0):
    return task.transform(task.train_x[start:start + n]), task.train_y[start:start + n]

def min_pairs(units):
    """Parameter-wise min by explicit loops over (i, j) — independent of `aggregate` (first layer: the out unit)."""
    out = []
    for l, v in enumerate(units):
        if l == 0:
            w = v.double().view(-1, 1).repeat(1, 784)
        else:
            w = torch.tensor([[min(a, b) for b in units[l - 1].tolist()] for a in v.tolist()], dtype=torch.float64)
        out.append((w, v.double()))
    return out

# ----- 1. annealing --------------------------------------------------------------------------------------------------
def test_anneal_scale_zero_based_by_hand():
    # B = 5, s_max = 400: s_b = 1/400 + (400 - 1/400) (b - 1)/4
    assert anneal_scale(0, 5, S_MAX) == 1 / 400 - (400 - 1 / 400) / 4  # = 0.0025 - 99.999375 = -99.996875: inverted gate
    assert anneal_scale(0, 5, S_MAX) < 0
    assert anneal_scale(0, 5, S_MAX) == pytest.approx(-99.996875, abs=1e-12)
    assert anneal_scale(1, 5, S_MAX) == 1 / 400  # exactly: (b - 1) = 0
    assert anneal_scale(2, 5, S_MAX) == pytest.approx(0.0025 + 399.9975 / 4)
    assert anneal_scale(4, 5, S_MAX) == 1 / 400 + (400 - 1 / 400) * 3 / 4  # last batch: 300.000625, never 400
    assert anneal_scale(4, 5, S_MAX) == pytest.approx(300.000625, abs=1e-9)
    assert anneal_scale(4, 5, S_MAX) < S_MAX

def test_anneal_scale_one_based_and_edge_cases():
    # zero_based False: b runs 1..B -> first exactly 1/400, last exactly 400
    assert anneal_scale(0, 5, S_MAX, zero_based=False) == 1 / 400
    assert anneal_scale(4, 5, S_MAX, zero_based=False) == 400.0
    assert anneal_scale(2, 5, S_MAX, zero_based=False) == pytest.approx(0.0025 + 399.9975 / 2)
    # B = 1: no division by zero, the full scale
    assert anneal_scale(0, 1, S_MAX) == S_MAX
    assert anneal_scale(0, 1, S_MAX, zero_based=False) == S_MAX
    # PMNIST, 421 batches: 1/400 - 399.9975/420 = 0.0025 - 0.952375 = -0.949875 ("about -0.95")
    assert anneal_scale(0, 421, S_MAX) == pytest.approx(-0.949875, abs=1e-12)
    # the schedule restarts every epoch: it depends on the batch index only
    algo = SimpleNamespace(cfg={"s_max": S_MAX, "anneal_zero_based": True})
    assert HAT.scale(algo, Step(0, 5, 3, 2)) == anneal_scale(0, 5, S_MAX)

# ----- 2. mask sparsity regulariser ----------------------------------------------------------------------------------
def test_mask_sparsity_task_1_is_mean_mask():
    # M = 0 everywhere: R = mean of every mask value = (6 * 0.5 + 8 * 0.25) / 14 = 5/14;
    # each layer has <= 10 free units (6, 8), so both R_l are 0 although the global R is not
    masks = [torch.full((6,), 0.5), torch.full((8,), 0.25)]
    cumulative = [torch.zeros(6), torch.zeros(8)]
    reg, per_layer = mask_sparsity(masks, cumulative)
    assert reg.item() == pytest.approx(5 / 14, rel=1e-6)
    assert [r.item() for r in per_layer] == [0.0, 0.0]
    # non-uniform masks: still the plain mean over all 14 units
    masks = [torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.25, 0.75])]
    reg, _ = mask_sparsity(masks, cumulative)
    assert reg.item() == pytest.approx((2.1 + 4.0) / 14, rel=1e-6)

def test_mask_sparsity_is_global_with_cumulative_mask_and_has_gradient():
    # layer A: 24 units, 4 used (M=1), 20 free; m = 1 everywhere -> used part ignored, sum m(1-M) = 20 -> R_A = 1
    # layer B: 44 units, 4 used, 40 free; m = 1 on the used, 0.25 on the free -> sum m(1-M) = 10 -> R_B = 0.25
    # global R = (20 + 10) / (20 + 40) = 0.5, while the average of the per-layer values is (1 + 0.25)/2 = 0.625
    cum_a = torch.zeros(24)
    cum_a[:4] = 1
    cum_b = torch.zeros(44)
    cum_b[-4:] = 1
    m_a = torch.ones(24, requires_grad=True)
    m_b = torch.where(cum_b > 0, 1.0, 0.25).requires_grad_(True)
    reg, per_layer = mask_sparsity([m_a, m_b], [cum_a, cum_b])
    assert reg.item() == pytest.approx(0.5, rel=1e-7)
    assert [r.item() for r in per_layer] == pytest.approx([1.0, 0.25], rel=1e-7)
    assert reg.item() != pytest.approx(sum(r.item() for r in per_layer) / 2)
    # R_l are detached; R carries gradient: dR/dm_{l,i} = (1 - M_{l,i}) / 60
    assert all(not r.requires_grad for r in per_layer)
    reg.backward()
    assert torch.allclose(m_a.grad, (1 - cum_a) / 60, rtol=1e-6, atol=0)
    assert torch.allclose(m_b.grad, (1 - cum_b) / 60, rtol=1e-6, atol=0)
    assert m_a.grad[:4].eq(0).all() and m_b.grad[-4:].eq(0).all()

def test_mask_sparsity_free_unit_guards():
    # per layer: 12 units with 2 used -> 10 free -> R_l = 0; 13 units with 2 used -> 11 free -> R_l = 11 * 0.5 / 11
    c10, c11 = torch.zeros(12), torch.zeros(13)
    c10[:2] = 1
    c11[:2] = 1
    reg, per_layer = mask_sparsity([torch.full((12,), 0.5), torch.full((13,), 0.5)], [c10, c11])
    assert per_layer[0].item() == 0.0
    assert per_layer[1].item() == pytest.approx(0.5)
    assert reg.item() == pytest.approx((10 * 0.5 + 11 * 0.5) / 21)
    # global: 5 + 5 = 10 free units overall -> R = 0
    c1, c2 = torch.zeros(8), torch.zeros(9)
    c1[:3] = 1
    c2[:4] = 1
    reg, per_layer = mask_sparsity([torch.full((8,), 0.7), torch.full((9,), 0.7)], [c1, c2])
    assert reg.item() == 0.0 and [r.item() for r in per_layer] == [0.0, 0.0]
    # 6 + 5 = 11 free units -> R = 11 * 0.7 / 11 = 0.7 although every per-layer value is 0
    c1[2] = 0
    reg, per_layer = mask_sparsity([torch.full((8,), 0.7), torch.full((9,), 0.7)], [c1, c2])
    assert reg.item() == pytest.approx(0.7, rel=1e-6) and [r.item() for r in per_layer] == [0.0, 0.0]
    # nothing free at all: R = 0 (no division by zero)
    reg, per_layer = mask_sparsity([torch.full((8,), 0.7)], [torch.ones(8)])
    assert reg.item() == 0.0 and per_layer[0].item() == 0.0

# ----- 3. unit -> parameter aggregation ------------------------------------------------------------------------------
OUT = torch.tensor([0.25, 1.0, 0.5])  # units of layer l (3 outputs)
IN = torch.tensor([0.5, 0.75])  # units of layer l-1 (2 inputs)

def test_aggregate_linear_by_hand():
    # W[i, j] = Agg(out[i], in[j]) for a 3x2 Linear weight
    assert torch.equal(aggregate(OUT, IN, (3, 2), "min"), torch.tensor([[0.25, 0.25], [0.5, 0.75], [0.5, 0.5]]))
    assert torch.equal(aggregate(OUT, IN, (3, 2), "max"), torch.tensor([[0.5, 0.75], [1.0, 1.0], [0.5, 0.75]]))
    # mean = (a + b)/2: (0.25+0.5)/2 = 0.375, (0.25+0.75)/2 = 0.5, (1+0.5)/2 = 0.75, (1+0.75)/2 = 0.875, ...
    assert torch.equal(aggregate(OUT, IN, (3, 2), "mean"), torch.tensor([[0.375, 0.5], [0.75, 0.875], [0.5, 0.625]]))
    # first weighted layer: every weight takes its out unit's value
    assert torch.equal(aggregate(OUT, None, (3, 2)), torch.tensor([[0.25, 0.25], [1.0, 1.0], [0.5, 0.5]]))
    with pytest.raises(ValueError):
        aggregate(OUT, IN, (3, 2), "median")

def test_aggregate_conv_broadcasts_over_kernel():
    value = aggregate(OUT, IN, (3, 2, 3, 3), "min")
    assert value.shape == (3, 2, 3, 3)
    expected = torch.tensor([[0.25, 0.25], [0.5, 0.75], [0.5, 0.5]])
    for kh in range(3):
        for kw in range(3):
            assert torch.equal(value[:, :, kh, kw], expected)
    first = aggregate(OUT, None, (3, 2, 7, 7))
    assert torch.equal(first, OUT.view(3, 1, 1, 1).expand(3, 2, 7, 7))
    # the result is a fresh tensor, not a view of the unit values
    value[0, 0, 0, 0] = 9.0
    assert OUT[0] == 0.25

def test_parameter_wise_layers_and_biases():
    layers = [nn.Linear(4, 2), nn.Linear(2, 3)]
    units = [IN, OUT]
    (w0, b0), (w1, b1) = parameter_wise(units, layers, "min")
    assert torch.equal(w0, torch.tensor([[0.5] * 4, [0.75] * 4]))  # first layer: out unit only
    assert torch.equal(b0, IN)
    assert torch.equal(w1, torch.tensor([[0.25, 0.25], [0.5, 0.75], [0.5, 0.5]]))
    assert torch.equal(b1, OUT)  # bias takes its own unit's value
    (_, _), (w1, _) = parameter_wise(units, layers, "max")
    assert torch.equal(w1, torch.tensor([[0.5, 0.75], [1.0, 1.0], [0.5, 0.75]]))
    # conv layers without bias still get a bias-shaped (N_l) entry
    convs = [nn.Conv2d(1, 2, 3, bias=False), nn.Conv2d(2, 3, 3, bias=False)]
    (cw0, cb0), (cw1, cb1) = parameter_wise(units, convs, "min")
    assert cw0.shape == (2, 1, 3, 3) and cw1.shape == (3, 2, 3, 3)
    assert torch.equal(cw1[:, :, 1, 2], torch.tensor([[0.25, 0.25], [0.5, 0.75], [0.5, 0.5]]))
    assert torch.equal(cb1, OUT) and torch.equal(cb0, IN)

# ----- 4. embedding gradient compensation -----------------------------------------------------------------------------
def compensation_factor(e, s, s_max=400.0, clamp=50.0):
    return (s_max / s) * (math.cosh(max(-clamp, min(clamp, s * e))) + 1) / (math.cosh(e) + 1)

@pytest.mark.parametrize("s", [2.0, -2.0])
def test_compensate_embedding_grads_by_hand(s):
    # e = (0.5, -1, 30): s e = (1, -2, 60 -> clipped to 50) for s = 2; (-1, 2, -60 -> -50) for s = -2
    # factor(e) = (400/s) (cosh(clip(s e, -50, 50)) + 1) / (cosh(e) + 1); for s = 2:
    #   0.5: 200 (cosh 1 + 1)/(cosh 0.5 + 1) = 200 * 2.54308/2.12763 = 239.05...
    #   30:  200 (cosh 50 + 1)/(cosh 30 + 1) ~ 200 e^20 ~ 9.70e10 (without the clamp: 200 cosh 60 / cosh 30 ~ 1e15)
    values = [0.5, -1.0, 30.0]
    e = nn.Parameter(torch.tensor(values))
    e.grad = torch.tensor([1.0, -2.0, 0.5])
    untouched = nn.Parameter(torch.tensor([0.3]))  # no gradient: skipped
    compensate_embedding_grads([e, untouched], s, 400.0, 50.0)
    expected = torch.tensor([g * compensation_factor(v, s) for g, v in zip([1.0, -2.0, 0.5], values)],
                            dtype=torch.float64)
    assert torch.allclose(e.grad.double(), expected, rtol=1e-5, atol=0)
    assert compensation_factor(0.5, 2.0) == pytest.approx(200 * (math.cosh(1) + 1) / (math.cosh(0.5) + 1))
    assert compensation_factor(30.0, 2.0) == pytest.approx(200 * (math.cosh(50) + 1) / (math.cosh(30) + 1))
    assert compensation_factor(30.0, 2.0) < 1e11  # the clamp acted
    if s < 0:  # negative scale: the factor is negative (sign flip of the gradient)
        assert (e.grad * torch.tensor([1.0, -2.0, 0.5]) < 0).all()
    assert untouched.grad is None
    assert torch.equal(e.detach(), torch.tensor(values))  # only the gradient changes

# ----- 5./6. HAT on the synthetic benchmark ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hat_run(tmp_path_factory):
    """HAT on 2 synthetic tasks through `run_continual`; snapshot of the parameters and task-1 predictions taken
    at the start of task 2 (= after task 1)."""
    cfg, tasks, algo = build("hat", tmp_path_factory.mktemp("hat"), num_tasks=2)
    x1 = tasks[0].transform(tasks[0].test_x)
    snap = {}
    original_begin = algo.begin_task

    def begin_task(task):
        if task.id == 2:
            algo.eval()
            snap["pred"] = algo.predict(x1, 1).clone()
            snap["params"] = [(l.weight.detach().clone(), l.bias.detach().clone()) for l in algo.layers]
            snap["masks"] = [m.clone() for m in algo.task_masks[1]]
        original_begin(task)

    algo.begin_task = begin_task
    record = FakeRecord()
    matrix = engine.run_continual(algo, tasks, cfg, record)
    algo.eval()
    return SimpleNamespace(cfg=cfg, tasks=tasks, algo=algo, x1=x1, snap=snap, matrix=matrix, record=record)

def test_hat_protects_task_1_parameters(hat_run):
    algo, snap = hat_run.algo, hat_run.snap
    assert [len(r) for r in hat_run.matrix] == [1, 2] and [t for t, _ in hat_run.record.rows] == [1, 2]
    m1 = snap["masks"]
    assert all(torch.equal(a, b) for a, b in zip(m1, algo.task_masks[1]))  # stored mask untouched by task 2
    assert all(0 < int(m.sum()) < m.numel() for m in m1)  # some used, some free units in every layer
    changed_free = 0
    for l, (layer, (w_before, b_before)) in enumerate(zip(algo.layers, snap["params"])):
        used_out = m1[l].bool()
        used_in = m1[l - 1].bool() if l > 0 else torch.ones(layer.weight.shape[1], dtype=torch.bool)
        protected = used_out.view(-1, 1) & used_in.view(1, -1)  # min(M_i, M_j) = 1 (first layer: M_i = 1)
        assert torch.equal(layer.weight.detach()[protected], w_before[protected]), l
        assert torch.equal(layer.bias.detach()[used_out], b_before[used_out]), l
        changed_free += int((layer.weight.detach()[~protected] != w_before[~protected]).sum())
        changed_free += int((layer.bias.detach()[~used_out] != b_before[~used_out]).sum())
    assert changed_free > 0
    # task-1 predictions (binary task-1 mask, task-1 head) are bit-identical after task 2
    assert torch.equal(algo.predict(hat_run.x1, 1), snap["pred"])
    assert hat_run.matrix[1][0] == hat_run.matrix[0][0]

def test_hat_test_masks_are_binary_and_cumulative_is_union(hat_run):
    algo = hat_run.algo
    for l in range(3):
        m1, m2 = algo.task_masks[1][l], algo.task_masks[2][l]
        assert set(m1.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(algo.cumulative[l], torch.maximum(m1, m2))
        assert torch.equal(m2, (algo.backbone.embeddings[l].detach() > 0).float())

def test_hat_capacity_task_1_exactly_one_and_task_2_by_hand(hat_run):
    algo = hat_run.algo
    rows = algo.extra_records()["capacity"]
    assert [r["step"] for r in rows] == list(range(1, 2 * NUM_BATCHES + 1))
    assert [r["task"] for r in rows] == [1] * NUM_BATCHES + [2] * NUM_BATCHES
    assert all(r["capacity"] == 1.0 for r in rows[:NUM_BATCHES])
    # task 2: frozen = weights with both end units in M (= m^1) and biases of used units;
    # with n_l used units: frozen = n1*784 + n1 + n2*n1 + n2 + n3*n2 + n3; total = sum |W_l| + N_l
    n1, n2, n3 = (int(m.sum()) for m in hat_run.snap["masks"])
    total = 784 * 256 + 256 + 256 * 100 + 100 + 100 * 64 + 64
    assert algo.num_adjusted == total == 233124
    frozen = n1 * 784 + n1 + n2 * n1 + n2 + n3 * n2 + n3
    # independently via loops over (i, j) of the stored masks
    by_loops = sum(float((1 - w).sum() + (1 - b).sum()) for w, b in min_pairs(hat_run.snap["masks"]))
    assert by_loops == total - frozen
    for r in rows[NUM_BATCHES:]:
        assert r["capacity"] == pytest.approx((total - frozen) / total, rel=1e-6)

# ----- 6. AdaHAT capacity on task 1 ----------------------------------------------------------------------------------
def test_adahat_capacity_task_1_within_one_ulp(tmp_path):
    cfg, tasks, algo = build("adahat", tmp_path, num_tasks=1)
    train_one_task(algo, tasks[0], cfg)
    rows = algo.extra_records()["capacity"]
    assert len(rows) == NUM_BATCHES
    # every rate is r / (0 + r); see test_adahat_rate_is_exactly_one_on_unused_parameters for the exact check
    assert all(abs(r["capacity"] - 1.0) <= 2 ** -23 for r in rows)

def test_adahat_capacity_task_1_exactly_one(tmp_path):
    cfg, tasks, algo = build("adahat", tmp_path, num_tasks=1)
    train_one_task(algo, tasks[0], cfg)
    assert all(r["capacity"] == 1.0 for r in algo.extra_records()["capacity"])

# ----- 7. AdaHAT rates -----------------------------------------------------------------------------------------------
def layer_sparsity_by_hand(masks, cumulative):
    """R_l = sum m (1 - M) / sum (1 - M) in float64 (0 if <= 10 free units)."""
    out = []
    for m, c in zip(masks, cumulative):
        free = float((1 - c.double()).sum())
        out.append(float((m.double() * (1 - c.double())).sum()) / free if free > 10 else 0.0)
    return out

def test_adahat_rates_after_two_tasks(tmp_path, monkeypatch):
    cfg, tasks, algo = build("adahat", tmp_path, num_tasks=3)
    alpha, eps = cfg["alpha"], cfg["epsilon"]
    assert (alpha, eps, cfg["semantics"]) == (1e-6, 0.1, "current")
    calls = spy_on_rates(algo, monkeypatch)
    e1 = train_one_task(algo, tasks[0], cfg)
    e2 = train_one_task(algo, tasks[1], cfg)
    # task 1 and task 2 steps: rates r/(0 + r) on task 1 (within one float32 ulp of 1, see test_adahat_rate_is_exactly_one_on_unused_parameters)
    for call in calls[:NUM_BATCHES]:
        for w, b in call.rates:
            assert (w - 1).abs().max() <= 2 ** -23 and (b - 1).abs().max() <= 2 ** -23
    # independent masks: m^t = 1[e > 0] at task end; M = max, S = sum
    m1 = [(e > 0).double() for e in e1]
    m2 = [(e > 0).double() for e in e2]
    M = [torch.maximum(a, b) for a, b in zip(m1, m2)]
    S = [a + b for a, b in zip(m1, m2)]
    assert all((s == 2).any() and (s == 1).any() and (s == 0).any() for s in S)
    assert all(torch.equal(s.float(), mine) for s, mine in zip(S, algo.summative))

    algo.begin_task(tasks[2])
    e3 = [e.detach().clone() for e in algo.backbone.embeddings]
    x, y = batch(tasks[2])
    del calls[:]
    algo.train_step(x, y, Step(3, NUM_BATCHES, 0, 3))
    (call,) = calls
    # s at batch 3 of 11 (0-based index in the 1-based formula): 0.0025 + 399.9975 * 2/10 = 0.0025 + 79.9995 = 80.002
    s = 1 / 400 + (400 - 1 / 400) * 2 / 10
    assert s == pytest.approx(80.002) and algo.scale(Step(3, NUM_BATCHES, 0, 3)) == s
    masks = [torch.sigmoid(s * e) for e in e3]
    R = layer_sparsity_by_hand(masks, M)
    assert all(0 < v < 1 for v in R)
    r = [alpha / (eps + v) for v in R]
    for l, ((rw, rb), (ws, bs)) in enumerate(zip(call.rates, min_pairs(S))):
        assert torch.allclose(rw.double(), r[l] / (ws + r[l]), rtol=1e-5, atol=0), l
        assert torch.allclose(rb.double(), r[l] / (bs + r[l]), rtol=1e-5, atol=0), l
        # the gradient is multiplied by exactly these rates (Adam sees the adjusted gradient)
        (gw, gb), (aw, ab) = call.before[l], call.after[l]
        assert torch.equal(aw, gw * rw) and torch.equal(ab, gb * rb)
        # where min(S_i, S_j) = 0 the gradient is kept (a = 1 up to one float32 ulp)
        free = ws == 0
        assert ((rw[free] - 1).abs() <= 2 ** -23).all()

    # a few chosen weights of layer 2 (fc[1], 100 x 256), one per importance 0, 1, 2, with a nonzero raw gradient
    gw, aw = call.before[1][0], call.after[1][0]
    for importance in (0, 1, 2):
        candidates = ((torch.minimum(S[1].view(-1, 1), S[0].view(1, -1)) == importance) & (gw != 0)).nonzero()
        i, j = candidates[0].tolist()
        assert min(S[1][i], S[0][j]) == importance
        a = r[1] / (importance + r[1])  # e.g. importance 1: r ~ 1e-6/(0.1 + R_2) ~ 2e-6, a ~ r
        assert aw[i, j].item() == pytest.approx(gw[i, j].item() * a, rel=1e-5)
    # first layer: a_{1,ij} = r_1 / (S_{1,i} + r_1) for every input j
    gw0, aw0 = call.before[0][0], call.after[0][0]
    i = int(((S[0] == 2) & (gw0 != 0).any(1)).nonzero()[0])
    nz = gw0[i] != 0
    assert torch.allclose(aw0[i][nz].double(), gw0[i][nz].double() * r[0] / (2 + r[0]), rtol=1e-5, atol=0)
    # capacity = mean rate over the 233124 adjusted entries
    total = sum(float(w.double().sum() + b.double().sum()) for w, b in call.rates)
    assert call.capacity.item() == pytest.approx(total / 233124, rel=1e-6)

def test_adahat_rate_is_exactly_one_on_unused_parameters(tmp_path):
    # task 1 (S = 0) with R_l = 0.375 in every layer (all units free, soft mask 0.375 everywhere):
    # r = 1e-6 / 0.475; a = r / (0 + r) must be exactly 1 (spec §3.3, §3.5, §9)
    cfg, tasks, algo = build("adahat", tmp_path, num_tasks=1)
    algo.begin_task(tasks[0])
    masks = [torch.full((n,), 0.375) for n in algo.backbone.units]
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    assert [float(v) for v in layer_sparsity] == [0.375] * 3
    rates = algo.adjustment_rates(masks, layer_sparsity, Step(0, 1, 0, 1))
    for w, b in rates:
        assert torch.equal(w, torch.ones_like(w)) and torch.equal(b, torch.ones_like(b))

def constructed_state(algo, task_id=3):
    """M and S by hand: layer 1 (256): units 0-19 used (S = 2 on 0-9, 1 on 10-19); layer 2 (100): units 0-4 used
    (S = 1); layer 3 (64): every unit used (S = 3). Soft masks: layer 1 m = 1 on units 0-4, 0 on 5-19, 0.25 on free;
    layer 2 m = 0.2 everywhere; layer 3 m = 0.5 everywhere."""
    S = [torch.zeros(256), torch.zeros(100), torch.full((64,), 3.0)]
    S[0][:10], S[0][10:20], S[1][:5] = 2, 1, 1
    algo.summative = [s.clone() for s in S]
    algo.cumulative = [(s > 0).float() for s in S]
    algo.begin_task(SimpleNamespace(id=task_id))
    m0 = torch.full((256,), 0.25)
    m0[:5], m0[5:20] = 1.0, 0.0
    masks = [m0, torch.full((100,), 0.2), torch.full((64,), 0.5)]
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    return S, masks, layer_sparsity

def test_adahat_paper2024_network_sparsity_by_hand(tmp_path):
    cfg, _, algo = build("adahat", tmp_path, semantics="paper2024")
    S, masks, layer_sparsity = constructed_state(algo)
    # free term: layer 1: 236 free, m = 0.25 -> 0.25; layer 2: 95 free, m = 0.2 -> 0.2; layer 3: 0 free -> 0
    assert [float(v) for v in layer_sparsity] == pytest.approx([0.25, 0.2, 0.0], rel=1e-6)
    # reuse term 1 - sum(m M)/sum(M): layer 1: 1 - 5/20 = 0.75; layer 2: 5 <= 10 used units -> 1;
    # layer 3: 1 - 32/64 = 0.5
    # R_l = average: (0.25 + 0.75)/2 = 0.5; (0.2 + 1)/2 = 0.6; (0 + 0.5)/2 = 0.25
    R = [float(v) for v in algo.network_sparsity(masks, layer_sparsity)]
    assert R == pytest.approx([0.5, 0.6, 0.25], rel=1e-6)
    r = [1e-6 / (0.1 + v) for v in (0.5, 0.6, 0.25)]  # 1.6667e-6, 1.4286e-6, 2.8571e-6
    assert algo.layer_intensity(masks, layer_sparsity) == pytest.approx(r, rel=1e-6)
    rates = algo.adjustment_rates(masks, layer_sparsity, Step(5, 10, 0, 3))
    # layer 2 weight (unit 0 of layer 2: S = 1; unit 3 of layer 1: S = 2) -> min 1 -> r2 / (1 + r2)
    assert rates[1][0][0, 3].item() == pytest.approx(r[1] / (1 + r[1]), rel=1e-5)
    # layer 2 weight from input unit 15 (S = 1) to unit 2 (S = 1): r2/(1 + r2); to unit 50 (S = 0): ~1
    assert rates[1][0][2, 15].item() == pytest.approx(r[1] / (1 + r[1]), rel=1e-5)
    assert rates[1][0][50, 15].item() == pytest.approx(1.0, abs=2 ** -23)
    # layer 1 (first): weight row 4 (S = 2) -> r1 / (2 + r1); bias 12 (S = 1) -> r1 / (1 + r1)
    assert torch.allclose(rates[0][0][4].double(), torch.full((784,), r[0] / (2 + r[0]), dtype=torch.float64),
                          rtol=1e-5, atol=0)
    assert rates[0][1][12].item() == pytest.approx(r[0] / (1 + r[0]), rel=1e-5)
    # layer 3: units all S = 3, inputs 0-4 of layer 2 have S = 1 -> min 1; other inputs S = 0
    assert rates[2][0][7, 4].item() == pytest.approx(r[2] / (1 + r[2]), rel=1e-5)
    assert rates[2][1][7].item() == pytest.approx(r[2] / (3 + r[2]), rel=1e-5)
    # current semantics on the same state: R_l is the free term alone
    algo.cfg = {**algo.cfg, "semantics": "current"}
    assert [float(v) for v in algo.network_sparsity(masks, layer_sparsity)] == pytest.approx([0.25, 0.2, 0.0])
    assert rates[2][0][7, 4].item() != pytest.approx(
        algo.adjustment_rates(masks, layer_sparsity, Step(5, 10, 0, 3))[2][0][7, 4].item(), rel=1e-3)

def test_adahat_paper2024_reuse_term_guard(tmp_path):
    # layer with exactly 10 used units -> second term 1; with 11 used units -> 1 - sum(m M)/11
    cfg, _, algo = build("adahat", tmp_path, semantics="paper2024")
    S = [torch.zeros(256), torch.zeros(100), torch.zeros(64)]
    S[0][:10] = 1
    S[1][:11] = 1
    algo.summative = S
    algo.cumulative = [(s > 0).float() for s in S]
    masks = [torch.zeros(256), torch.full((100,), 0.5), torch.zeros(64)]
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    # layer 1: free term 0, reuse 1 -> 0.5; layer 2: free 0.5, reuse 1 - 5.5/11 = 0.5 -> 0.5;
    # layer 3: 0 used units -> reuse 1, free term 0 -> 0.5
    assert [float(v) for v in algo.network_sparsity(masks, layer_sparsity)] == pytest.approx([0.5, 0.5, 0.5])

def test_adahat_no_reg_rate(tmp_path):
    cfg, _, algo = build("adahat_no_reg", tmp_path)
    S, masks, layer_sparsity = constructed_state(algo)
    r = 1e-6 / 0.1  # R_l := 0 -> r = alpha / epsilon = 1e-5 in every layer
    assert algo.layer_intensity(masks, layer_sparsity) == pytest.approx([r] * 3)
    rates = algo.adjustment_rates(masks, layer_sparsity, Step(0, 10, 0, 3))
    assert rates[0][1][3].item() == pytest.approx(r / (2 + r), rel=1e-5)  # ~5e-6
    assert rates[1][0][0, 3].item() == pytest.approx(r / (1 + r), rel=1e-5)
    assert rates[2][1][0].item() == pytest.approx(r / (3 + r), rel=1e-5)

def test_adahat_no_sum_current_semantics(tmp_path):
    cfg, _, algo = build("adahat_no_sum", tmp_path)
    # task 1, all units free, soft masks 0.5 -> R_l = 0.5, r = 1e-6/0.6; a = r / (1 + r) on EVERY parameter
    algo.begin_task(SimpleNamespace(id=1))
    masks = [torch.full((n,), 0.5) for n in algo.backbone.units]
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    r = 1e-6 / 0.6
    for w, b in algo.adjustment_rates(masks, layer_sparsity, Step(0, 10, 0, 1)):
        assert torch.allclose(w.double(), torch.full(w.shape, r / (1 + r), dtype=torch.float64), rtol=1e-5, atol=0)
        assert torch.allclose(b.double(), torch.full(b.shape, r / (1 + r), dtype=torch.float64), rtol=1e-5, atol=0)
    # task 3 on the constructed state: r_l / (3 + r_l), free parameters included
    S, masks, layer_sparsity = constructed_state(algo, task_id=3)
    r = [1e-6 / (0.1 + v) for v in (0.25, 0.2, 0.0)]
    rates = algo.adjustment_rates(masks, layer_sparsity, Step(0, 10, 0, 3))
    for (w, b), rl in zip(rates, r):
        assert torch.allclose(w.double(), torch.full(w.shape, rl / (3 + rl), dtype=torch.float64), rtol=1e-5, atol=0)
        assert torch.allclose(b.double(), torch.full(b.shape, rl / (3 + rl), dtype=torch.float64), rtol=1e-5, atol=0)

def test_adahat_no_sum_paper2024_semantics(tmp_path):
    cfg, _, algo = build("adahat_no_sum", tmp_path, semantics="paper2024")
    S, masks, layer_sparsity = constructed_state(algo, task_id=3)
    r = [1e-6 / (0.1 + v) for v in (0.5, 0.6, 0.25)]  # paper2024 R_l of the constructed state
    rates = algo.adjustment_rates(masks, layer_sparsity, Step(0, 10, 0, 3))
    # protected (P = min(M_i, M_j) = 1): r / (t - 1 + r) = r / (2 + r); free: exactly 1
    for (w, b), (pw, pb), rl in zip(rates, min_pairs([(s > 0).float() for s in S]), r):
        value = rl / (2 + rl)
        assert torch.allclose(w[pw == 1].double(), torch.full_like(w[pw == 1], value, dtype=torch.float64),
                              rtol=1e-5, atol=0)
        assert torch.equal(w[pw == 0], torch.ones_like(w[pw == 0]))
        assert torch.allclose(b[pb == 1].double(), torch.full_like(b[pb == 1], value, dtype=torch.float64),
                              rtol=1e-5, atol=0)
        assert torch.equal(b[pb == 0], torch.ones_like(b[pb == 0]))

def test_adahat_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError):
        build("adahat", tmp_path, semantics="legacy")
    with pytest.raises(ValueError):
        build("adahat", tmp_path, alpha=0.0)

# ----- 8. HAT variants -----------------------------------------------------------------------------------------------
def variant_rates_on_real_step(method, tmp_path, monkeypatch):
    """Task 1 trained; one step of task 2; returns (rates, P pairs, gradients before/after) of that step."""
    cfg, tasks, algo = build(method, tmp_path, num_tasks=2)
    train_one_task(algo, tasks[0], cfg)
    P = min_pairs(algo.task_masks[1])
    calls = spy_on_rates(algo, monkeypatch)
    algo.begin_task(tasks[1])
    x, y = batch(tasks[1])
    algo.train_step(x, y, Step(2, NUM_BATCHES, 0, 2))
    (call,) = calls
    return cfg, call, P

def test_hat_rates_are_one_minus_protection(tmp_path, monkeypatch):
    _, call, P = variant_rates_on_real_step("hat", tmp_path, monkeypatch)
    for (w, b), (pw, pb), (gw, gb), (aw, ab) in zip(call.rates, P, call.before, call.after):
        assert torch.equal(w.double(), 1 - pw) and torch.equal(b.double(), 1 - pb)
        assert torch.equal(aw[pw == 1], torch.zeros_like(aw[pw == 1]))
        assert torch.equal(aw[pw == 0], gw[pw == 0]) and torch.equal(ab[pb == 0], gb[pb == 0])

def test_hat_const_1_rates_are_all_one(tmp_path, monkeypatch):
    _, call, _ = variant_rates_on_real_step("hat_const_1", tmp_path, monkeypatch)
    for (w, b), (gw, gb), (aw, ab) in zip(call.rates, call.before, call.after):
        assert torch.equal(w, torch.ones_like(w)) and torch.equal(b, torch.ones_like(b))
        assert torch.equal(aw, gw) and torch.equal(ab, gb)
    assert call.capacity.item() == 1.0

def test_hat_const_alpha_rates(tmp_path, monkeypatch):
    cfg, call, P = variant_rates_on_real_step("hat_const_alpha", tmp_path, monkeypatch)
    alpha = cfg["alpha"]
    assert alpha == 1e-6
    alpha32 = torch.tensor(alpha, dtype=torch.float32)
    for (w, b), (pw, pb) in zip(call.rates, P):
        assert (pw == 1).any() and (pw == 0).any()
        assert (w[pw == 1] == alpha32).all() and (w[pw == 0] == 1).all()
        assert (b[pb == 1] == alpha32).all() and (b[pb == 0] == 1).all()

def test_hat_random_rates(tmp_path, monkeypatch):
    _, call, P = variant_rates_on_real_step("hat_random", tmp_path, monkeypatch)
    for (w, b), (pw, pb) in zip(call.rates, P):
        protected = w[pw == 1]
        assert ((protected >= 0) & (protected < 1)).all()
        assert protected.unique().numel() > protected.numel() // 2  # fresh per element
        assert 0.4 < protected.double().mean().item() < 0.6  # U(0, 1)
        assert (w[pw == 0] == 1).all() and (b[pb == 0] == 1).all()
        assert ((b[pb == 1] >= 0) & (b[pb == 1] < 1)).all()

# ----- 9. masked ResNet-18 -------------------------------------------------------------------------------------------
def test_masked_resnet18_layout_and_masks():
    torch.manual_seed(0)
    net = MaskedResNet18(in_channels=3)
    layers = net.weighted_layers
    assert len(layers) == 17 and len(net.embeddings) == 17  # stem + 8 blocks x 2 convs
    assert layers[0] is net.stem
    shortcut_convs = [s for s in net.shortcuts if isinstance(s, nn.Conv2d)]
    assert len(shortcut_convs) == 3  # first block of stages 2, 3, 4
    assert all(all(s is not l for l in layers) for s in shortcut_convs)
    assert net.units == [64] + [64] * 4 + [128] * 4 + [256] * 4 + [512] * 4
    # stride on the second conv of a block's pair
    assert [c.stride for c in layers[1:5]] == [(1, 1)] * 4
    assert layers[3].stride == (1, 1) and layers[6].stride == (2, 2) and layers[5].stride == (1, 1)
    # parameter_wise fits the channel counts (each conv's predecessor = previous weighted layer)
    pairs = parameter_wise([torch.ones(n) for n in net.units], layers)
    assert all(w.shape == l.weight.shape for (w, _), l in zip(pairs, layers))
    x = torch.randn(2, 3, 32, 32)
    ones = [torch.ones(n) for n in net.units]
    with torch.no_grad():
        out = net(x, ones)
        assert out.shape == (2, 512)
        assert (out >= 0).all() and (out > 0).any()
        zero_last = ones[:-1] + [torch.zeros(512)]
        assert torch.equal(net(x, zero_last), torch.zeros(2, 512))
        # a zero mask on channel 5 of the last layer zeroes exactly that feature
        half = ones[:-1] + [torch.ones(512)]
        half[-1][5] = 0
        feat = net(x, half)
        assert torch.equal(feat[:, 5], torch.zeros(2)) and torch.equal(feat[:, 6], out[:, 6])

def test_hat_resnet18_capacity_counts_bias_entries_and_leaves_shortcuts_free(tmp_path):
    cfg = config.resolve({"method": "hat", "benchmark": "synthetic_rgb", "batch_norm": "false",
                          "out_dir": str(tmp_path), "references": "none"}, METHODS)
    assert cfg["backbone"] == "resnet18"
    torch.manual_seed(0)
    algo = METHODS["hat"](cfg, [4, 4], (3, 32, 32))
    # |W|: stem 64*3*49 = 9408; stage 1: 4 * 64*64*9 = 147456; stage 2: 64*128*9 + 3 * 128*128*9 = 516096;
    # stage 3: 128*256*9 + 3 * 256*256*9 = 2064384; stage 4: 256*512*9 + 3 * 512*512*9 = 8257536 -> 10994880
    # bias entries (bias-free convs, still counted): 64 + 4*64 + 4*128 + 4*256 + 4*512 = 3904
    assert algo.num_adjusted == 10994880 + 3904
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    algo.train()
    algo.begin_task(SimpleNamespace(id=1))
    algo.train_step(x, y, Step(1, 2, 0, 1))
    assert algo.capacity_log[-1][1].item() == 1.0
    # everything protected: weighted convs get zero gradients and stay put, shortcut convs still train
    algo.cumulative = [torch.ones(n) for n in algo.backbone.units]
    algo.begin_task(SimpleNamespace(id=2))
    convs = [c.weight.detach().clone() for c in algo.layers]
    shortcuts = [s.weight.detach().clone() for s in algo.backbone.shortcuts if isinstance(s, nn.Conv2d)]
    algo.train_step(x, y, Step(1, 2, 0, 2))
    assert algo.capacity_log[-1][1].item() == 0.0
    assert all(torch.equal(c.weight.grad, torch.zeros_like(c.weight)) for c in algo.layers)
    assert all(torch.equal(c.weight, w) for c, w in zip(algo.layers, convs))
    moved = [s for s, w in zip((s for s in algo.backbone.shortcuts if isinstance(s, nn.Conv2d)), shortcuts)
             if not torch.equal(s.weight, w)]
    assert len(moved) == 3

# ----- 10. batch-norm modes ------------------------------------------------------------------------------------------
def test_independent_batch_norm_per_task_copies(tmp_path):
    cfg, tasks, algo = build("hat", tmp_path, num_tasks=2, hat_batch_norm="independent")
    net = algo.backbone
    assert net.bn_mode == "independent" and len(net.bns) == 3
    initial = copy.deepcopy(net.bns.state_dict())
    x1 = tasks[0].transform(tasks[0].test_x)
    train_one_task(algo, tasks[0], cfg)
    algo.eval()
    pred_1 = algo.predict(x1, 1).clone()
    assert set(net.task_bns) == {1} and not net.task_bns[1].training
    assert not torch.equal(net.task_bns[1][0].running_mean, initial["0.running_mean"])  # it learned statistics
    bn1_state = copy.deepcopy(net.task_bns[1].state_dict())
    algo.begin_task(tasks[1])
    # the working BN is reset to its initial state at the task start
    for k, v in net.bns.state_dict().items():
        assert torch.equal(v, initial[k]), k
    engine.train_task(algo, tasks[1], cfg, quiet)
    algo.end_task(tasks[1])
    algo.eval()
    assert set(net.task_bns) == {1, 2}
    for k, v in net.task_bns[1].state_dict().items():
        assert torch.equal(v, bn1_state[k]), k
    assert not torch.equal(net.task_bns[2][0].running_mean, net.task_bns[1][0].running_mean)
    # task 1 is tested with its own BN copy and protected weights: unchanged predictions
    assert torch.equal(algo.predict(x1, 1), pred_1)

def test_shared_batch_norm_runs(tmp_path):
    cfg, tasks, algo = build("hat", tmp_path, num_tasks=2, hat_batch_norm="shared")
    record = FakeRecord()
    matrix = engine.run_continual(algo, tasks, cfg, record)
    assert [len(r) for r in matrix] == [1, 2]
    assert algo.backbone.task_bns == {} and len(algo.backbone.bns) == 3
    x1 = tasks[0].transform(tasks[0].test_x[:8])
    algo.eval()
    assert torch.isfinite(algo.predict(x1, 1)).all()

def test_invalid_batch_norm_settings(tmp_path):
    with pytest.raises(ValueError, match="independent"):
        build("hat", tmp_path, num_tasks=1, hat_batch_norm="per_task")
    with pytest.raises(ValueError, match="hat_batch_norm"):
        build("hat", tmp_path, num_tasks=1, batch_norm="true")

# ----- stored-mask switch --------------------------------------------------------------------------------------------
def test_stored_masks_soft_and_binary(tmp_path):
    for mode in ("binary", "soft"):
        cfg, tasks, algo = build("hat", tmp_path, num_tasks=1, stored_masks=mode)
        e = train_one_task(algo, tasks[0], cfg)
        # binary: 1[e > 0]; soft: sigmoid(s_max e) (the original HAT / 2024 AdaHAT code)
        expected = [(v > 0).float() if mode == "binary" else torch.sigmoid(400.0 * v) for v in e]
        for stored, cum, want in zip(algo.task_masks[1], algo.cumulative, expected):
            assert torch.equal(stored, want) and torch.equal(cum, want)
    with pytest.raises(ValueError, match="stored_masks"):
        build("hat", tmp_path, num_tasks=1, stored_masks="hard")
