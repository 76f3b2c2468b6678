"""The speed paths of the HAT machinery give the same numbers as the plain computations they replace: per-unit
rates spread to weights (AdaHAT, FG-AdaHAT), the regulariser's per-task constants, HAT's per-task capacity, the
rank-one feature ablation (against the batched one and Captum's LayerFeatureAblation); and the floor benchmark."""

import pytest
import torch
from torch import nn

from common import benchmarks, config
from common.algorithm import Step
from common.hat import FreeUnits, MaskedMLP, mask_sparsity, monotone_parameter_wise, parameter_wise, rate
from fg_adahat import METHODS
from fg_adahat.importance import (StepContext, feature_ablation, feature_ablation_batched, feature_ablation_mlp,
                                  plain_masked_mlp)
from scripts import floor_pmnist, speed

pytestmark = pytest.mark.usefixtures("one_thread")


def layers(*dims):
    return [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]


@pytest.mark.parametrize("aggregation", ["min", "max"])
def test_monotone_parameter_wise_equals_rating_parameter_wise_importances(aggregation):
    torch.manual_seed(0)
    net = layers(30, 20, 12, 7)
    # counts (AdaHAT's S) and fractional importances (FG-AdaHAT's I), ties included
    for units in ([torch.randint(0, 4, (n,)).float() for n in (20, 12, 7)],
                  [torch.rand(n) * 3 + 1e-8 for n in (20, 12, 7)]):
        units[1][:3] = units[0][:3]
        for scale in ([2.1e-6, 1e-5, 0.3], [0.0, 5.5, 1e3]):  # AdaHAT's r_l; FG-AdaHAT's c_l, 0 included
            alpha = 1.5e-7
            plain = [(rate(alpha, c * iw + alpha), rate(alpha, c * ib + alpha))
                     for (iw, ib), c in zip(parameter_wise(units, net, aggregation), scale)]
            fast = monotone_parameter_wise(lambda l, k: rate(alpha, scale[l] * units[k] + alpha), net, aggregation)
            for (pw, pb), (fw, fb) in zip(plain, fast):
                assert torch.equal(pw, fw) and torch.equal(pb, fb) and fw.is_contiguous()
                assert pw.sum().item() == fw.sum().item()  # the capacity sums are bit-identical too


def test_free_units_regulariser_equals_fresh_computation():
    torch.manual_seed(1)
    for cumulative in ([torch.zeros(20), torch.zeros(12)], [(torch.rand(20) > 0.3).float(), torch.ones(12)],
                       [torch.ones(20), torch.ones(12)]):
        masks = [torch.rand(20, requires_grad=True), torch.rand(12, requires_grad=True)]
        reg, per_layer = mask_sparsity(masks, cumulative)
        reg2, per_layer2 = mask_sparsity(masks, cumulative, FreeUnits(cumulative))
        assert torch.equal(reg, reg2) and all(torch.equal(a, b) for a, b in zip(per_layer, per_layer2))
    # constants of another cumulative mask are not used
    stale = FreeUnits([torch.ones(20), torch.ones(12)])
    assert torch.equal(mask_sparsity(masks, [torch.zeros(20), torch.zeros(12)], stale)[0],
                       mask_sparsity(masks, [torch.zeros(20), torch.zeros(12)])[0])


def build(method, tmp_path, num_tasks=2, **extra):
    cli = {"method": method, "benchmark": "synthetic", "epochs": 1, "out_dir": str(tmp_path), "references": "none",
           "num_tasks": num_tasks, **extra}
    cfg = config.resolve({k: str(v) for k, v in cli.items()}, METHODS)
    tasks = benchmarks.build_benchmark("synthetic", num_tasks, "data")
    torch.manual_seed(cfg["seed"])
    return tasks, METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)


def train(algo, task, steps=3, n=32):
    algo.begin_task(task)
    algo.train()
    for b in range(steps):
        x, y = task.transform(task.train_x[b * n:(b + 1) * n]), task.train_y[b * n:(b + 1) * n]
        algo.train_step(x, y, Step(b + 1, 11, 0, task.id))


@pytest.mark.parametrize("method,extra", [("adahat", {}), ("adahat", {"semantics": "paper2024"}),
                                          ("fgadahat_ig", {}), ("fgadahat_ig", {"aggregation": "max"}),
                                          ("fgadahat_cu", {"aggregation": "mean"}),
                                          ("fgadahat_ig", {"filter_by_cumulative_mask": True})])
def test_adjustment_rates_equal_the_parameter_wise_formula_in_task_3(method, extra, tmp_path):
    tasks, algo = build(method, tmp_path, num_tasks=3, **extra)
    train(algo, tasks[0])
    algo.end_task(tasks[0])
    train(algo, tasks[1])
    algo.end_task(tasks[1])
    algo.begin_task(tasks[2])
    masks = algo.backbone.gates(37.0)
    _, layer_sparsity = mask_sparsity(masks, algo.cumulative)
    step = Step(4, 11, 0, 3)
    got = algo.adjustment_rates(masks, layer_sparsity, step)
    if method == "adahat":
        r = algo.layer_intensity(masks, layer_sparsity)
        want = [(rate(r_l, iw + r_l), rate(r_l, ib + r_l)) for (iw, ib), r_l in zip(algo.importance, r)]
    else:
        alpha = algo.cfg["alpha"]
        scale = algo.importance_scale(algo.network_sparsity(masks, layer_sparsity), 3)
        want = [(rate(alpha, c * iw + alpha), rate(alpha, c * ib + alpha))
                for (iw, ib), c in zip(algo.fg_importance, scale)]
    assert any((w != 1).any() for w, _ in want)  # task 3: the rates are not trivial
    for (gw, gb), (ww, wb) in zip(got, want):
        assert torch.equal(gw, ww) and torch.equal(gb, wb)


def test_hat_capacity_computed_once_per_task_and_equal_to_the_sum(tmp_path):
    tasks, algo = build("hat", tmp_path)
    train(algo, tasks[0])
    algo.end_task(tasks[0])
    train(algo, tasks[1])
    logged = [c for t, c in algo.capacity_log if t == 2]
    assert all(c is logged[0] for c in logged)
    assert torch.equal(logged[0], algo.capacity(algo.hat_rates)) and logged[0].item() < 1


@pytest.mark.parametrize("method", ["hat", "adahat", "fgadahat_ig"])
def test_log_capacity_off_skips_the_log_and_changes_no_weight(method, tmp_path):
    """log_capacity=false: no capacity is logged, and the weights after two tasks are those of the logging run."""
    weights = {}
    for flag in (True, False):
        tasks, algo = build(method, tmp_path, log_capacity=flag)
        for task in tasks:
            train(algo, task)
            algo.end_task(task)
        assert bool(algo.capacity_log) == flag and bool(algo.extra_records()["capacity"]) == flag  # [] writes no csv
        weights[flag] = [p.detach().clone() for p in algo.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights[True], weights[False]))


# ----- feature ablation by rank-one updates -----------------------------------------------------------------------
def toy_context(hidden=(7, 5), inputs=9, classes=4, batch=6, seed=0):
    torch.manual_seed(seed)
    net = MaskedMLP(input_dim=inputs, hidden=hidden[:-1], output_dim=hidden[-1])
    algo = nn.Module()
    algo.backbone, algo.heads = net, __import__("common.nets", fromlist=["Heads"]).Heads(hidden[-1], [classes])
    algo.layers = net.weighted_layers
    masks = [torch.sigmoid(3 * e) for e in net.embeddings]
    x, y = torch.randn(batch, inputs), torch.randint(0, classes, (batch,))
    return StepContext(algo, x, y, masks, [], task_id=1)


def test_rank_one_feature_ablation_equals_batched_on_the_paper_mlp(tmp_path):
    tasks, algo = build("fgadahat_fa", tmp_path, num_tasks=1)
    train(algo, tasks[0], steps=1)
    x, y = tasks[0].transform(tasks[0].train_x[:20]), tasks[0].train_y[:20]
    ctx = StepContext(algo, x, y, algo.backbone.gates(5.0), [], task_id=1)
    assert plain_masked_mlp(ctx) and algo.measure is feature_ablation
    fast, batched = feature_ablation_mlp(ctx), feature_ablation_batched(ctx)
    assert [v.shape for v in fast] == [(256,), (100,), (64,)]
    for f, b in zip(fast, batched):
        assert (b > 0).any()
        assert torch.allclose(f, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_rank_one_feature_ablation_equals_captum_layer_feature_ablation():
    from captum.attr import LayerFeatureAblation
    ctx = toy_context(hidden=(7, 6, 5))
    masks = [m.detach() for m in ctx.masks]

    def forward(x):
        return ctx.algo.heads(ctx.algo.backbone(x, masks), 1)

    ours = feature_ablation_mlp(ctx)
    for layer, u in zip(ctx.layers, ours):
        attribution = LayerFeatureAblation(forward, layer).attribute(ctx.x, target=ctx.y, layer_baselines=0.0)
        assert torch.allclose(u, attribution.abs().mean(0), rtol=1e-5, atol=1e-6)


def test_rank_one_only_for_the_plain_masked_mlp():
    ctx = toy_context()
    assert plain_masked_mlp(ctx)
    ctx.algo.backbone.forward = ctx.algo.backbone.forward  # a speed switch replaces the forward
    assert not plain_masked_mlp(ctx)
    bn = MaskedMLP(input_dim=9, hidden=(7,), output_dim=5, bn_mode="shared")
    ctx.algo.backbone = bn
    assert not plain_masked_mlp(ctx)


# ----- floor and speed report ------------------------------------------------------------------------------------
def test_floor_runs_and_prints_its_total(capsys):
    assert floor_pmnist.main(["--tasks", "2", "--epochs", "0", "--threads", "1"]) == 0
    assert "total" in capsys.readouterr().out


def test_speed_all_writes_the_ratio_table(tmp_path, monkeypatch):
    monkeypatch.setattr(speed, "run_floor", lambda tasks, epochs, threads: 10.0)
    monkeypatch.setattr(speed, "run_method", lambda method, args: {
        "seconds": 12.5, "seconds_per_task": [6.0, 6.5], "metrics": {"aa": 0.5}})
    monkeypatch.setattr(speed, "all_methods", lambda: ["finetuning", "hat"])
    out = tmp_path / "speed.md"
    assert speed.main(["--all", "--tasks", "2", "--epochs", "1", "--threads", "1", "--write", str(out)]) == 0
    text = out.read_text()
    assert "| hat | 12.5 | 6.25 | 10.0 | 1.25 |" in text and "threads: 1" in text and "commit:" in text
