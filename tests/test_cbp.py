"""CBP: contribution utility, replacement counts, what a replacement resets, long and ResNet runs, run records."""

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import baselines
from baselines import METHODS
from baselines.cbp import CBP, outgoing_magnitude
from common import benchmarks, config, engine, records, runner
from helpers import tiny_cfg, tiny_method

PACKAGE = Path(baselines.__file__).parent


def make_cfg(tmp_path, **extra):
    return tiny_cfg("cbp", METHODS, tmp_path, **extra)


def build(tmp_path, num_tasks=2, benchmark="synthetic", **extra):
    cfg = make_cfg(tmp_path, num_tasks=num_tasks, benchmark=benchmark, **extra)
    tasks, algo = tiny_method(CBP, cfg, benchmark, num_tasks)
    algo.train()
    return cfg, tasks, algo


def batch(task, n=32, start=0):
    return task.transform(task.train_x[start:start + n]), task.train_y[start:start + n]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_defaults_are_the_papers():
    cfg = config.resolve({"method": "cbp", "benchmark": "pmnist"}, METHODS)
    assert (cfg["decay_rate"], cfg["maturity_threshold"], cfg["replacement_rate"]) == (0.99, 100, 1e-4)
    assert cfg["batch_norm"] is False


def test_outgoing_magnitude_by_hand():
    w = torch.tensor([[1.0, -2.0], [3.0, 4.0], [-0.5, 0.0]])  # linear (out=3, in=2)
    assert torch.equal(outgoing_magnitude(w), torch.tensor([4.5, 6.0]))
    conv = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2) - 10  # (out=2, in=3, 2, 2)
    assert torch.equal(outgoing_magnitude(conv), torch.tensor([sum(abs(v) for v in conv[:, i].flatten().tolist())
                                                                 for i in range(3)]))


def test_utility_against_hand_computation(tmp_path, one_thread):
    cfg, tasks, algo = build(tmp_path, replacement_rate=0.0, decay_rate=0.9)
    algo.begin_task(tasks[0])
    expected = [torch.zeros(n) for n in (256, 100, 64)]
    for k in range(2):
        x, y = batch(tasks[0], start=32 * k)
        net = copy.deepcopy(algo.backbone)  # pre-step weights: the activations the step's forward sees
        h, acts = x.flatten(1), []
        for fc in net.fc:
            h = F.relu(fc(h))
            acts.append(h)
        algo.train_step(x, y, engine.Step(k, 2, 0, 1))
        outgoing = [algo.backbone.fc[1].weight, algo.backbone.fc[2].weight, algo.heads.head(1).weight]  # post-step
        for i in range(3):
            contribution = acts[i].abs().mean(0) * outgoing[i].detach().abs().sum(0)
            expected[i] = 0.9 * expected[i] + 0.1 * contribution
            assert torch.allclose(algo.utility[i], expected[i], rtol=1e-5, atol=1e-8)
            assert torch.all(algo.age[i] == k + 1)
    assert all(u.abs().sum() > 0 for u in algo.utility)


def test_replacement_count_over_known_steps(tmp_path, one_thread):
    # maturity 0: every unit is eligible after each step, so 10 steps replace 10 * n * rho units (rho = 1 / 64)
    cfg, tasks, algo = build(tmp_path, maturity_threshold=0, replacement_rate=1 / 64)
    algo.begin_task(tasks[0])
    for k in range(10):
        algo.train_step(*batch(tasks[0], start=32 * k), engine.Step(k, 10, 0, 1))
    assert [r["replaced"] for r in algo.replaced] == [40, 15, 10]  # 256/64*10, floor(100/64*10), 64/64*10
    assert algo.due == pytest.approx([0.0, 0.625, 0.0])


def test_maturity_threshold_delays_replacement(tmp_path, one_thread):
    cfg, tasks, algo = build(tmp_path, maturity_threshold=5, replacement_rate=1 / 64)
    algo.begin_task(tasks[0])
    for k in range(5):
        algo.train_step(*batch(tasks[0], start=32 * k), engine.Step(k, 6, 0, 1))
    assert [r["replaced"] for r in algo.replaced] == [0, 0, 0] and algo.due == [0.0, 0.0, 0.0]
    algo.train_step(*batch(tasks[0], start=160), engine.Step(5, 6, 0, 1))  # ages reach 6 > 5
    assert [r["replaced"] for r in algo.replaced] == [4, 1, 1]
    assert [int((a == 0).sum()) for a in algo.age] == [4, 1, 1]


def test_least_useful_mature_units_are_the_ones_replaced(tmp_path, one_thread):
    cfg, tasks, algo = build(tmp_path, maturity_threshold=5, replacement_rate=0.0)
    algo.begin_task(tasks[0])
    algo.train_step(*batch(tasks[0]), engine.Step(0, 1, 0, 1))
    algo.cfg["replacement_rate"] = 3.5 / 255  # 255 mature units: 3.5 due, 3 replaced
    algo.age[0][:] = 10
    algo.age[0][7] = 3  # immature: never replaced even with the lowest utility
    algo.utility[0][:] = torch.arange(256, dtype=torch.float) + 1
    algo.utility[0][[7, 50, 90, 200]] = torch.tensor([0.0, 0.1, 0.2, 0.3])
    algo.selective_reinit(1)
    assert set((algo.age[0] == 0).nonzero().flatten().tolist()) == {50, 90, 200}


@pytest.mark.parametrize("benchmark, batch_norm", [("synthetic", "false"), ("synthetic", "true"),
                                                   ("synthetic_rgb", "false")])
def test_replaced_units_weights_and_adam_state(tmp_path, benchmark, batch_norm, one_thread):
    cfg, tasks, algo = build(tmp_path, benchmark=benchmark, batch_norm=batch_norm, train_subset=32,
                             replacement_rate=0.0, num_tasks=2)
    algo.begin_task(tasks[0])
    algo.train_step(*batch(tasks[0], n=16), engine.Step(0, 1, 0, 1))
    algo.utility[0] += 1.0
    algo.age[0] += 7
    unit = algo.units[0]
    consumers = [unit.consumer] if unit.consumer is not None else list(algo.heads.heads)
    if benchmark == "synthetic":  # the last MLP layer: its outgoing weights are every head's
        last = algo.units[-1]
        assert last.consumer is None
        algo.reinit_units(len(algo.units) - 1, torch.tensor([3]))
        assert all(torch.all(h.weight[:, 3] == 0) for h in algo.heads.heads)
    before = {name: p.detach().clone() for name, p in algo.named_parameters()}
    state_before = {p: {k: v.clone() for k, v in s.items()} for p, s in algo.optimizer.state.items()}
    idx = torch.tensor([0, 5])
    torch.manual_seed(7)
    algo.reinit_units(0, idx)
    rest = torch.ones(unit.producer.weight.shape[0], dtype=torch.bool)
    rest[idx] = False
    w = unit.producer.weight.detach()
    fan_in = w[0].numel()
    assert not torch.equal(w[idx], before_of(algo, before, unit.producer.weight)[idx])
    assert torch.all(w[idx].abs() <= 1 / math.sqrt(fan_in))  # Kaiming-uniform, a = sqrt(5)
    torch.manual_seed(7)  # the same draw as inside reinit_units: fresh weights from the initialiser
    fresh = torch.empty_like(w)
    torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
    assert torch.equal(w[idx], fresh[idx])
    assert torch.equal(w[rest], before_of(algo, before, unit.producer.weight)[rest])
    if unit.producer.bias is not None:
        assert torch.all(unit.producer.bias[idx] == 0)
    for consumer in consumers:
        assert torch.all(consumer.weight[:, idx] == 0)
        old = before_of(algo, before, consumer.weight)
        assert torch.equal(consumer.weight.detach()[:, rest], old[:, rest])
    touched = [(unit.producer.weight, (idx,))] + [(c.weight, (slice(None), idx)) for c in consumers]
    if unit.bn is not None:
        assert torch.all(unit.bn.weight[idx] == 1) and torch.all(unit.bn.bias[idx] == 0)
        assert torch.all(unit.bn.running_mean[idx] == 0) and torch.all(unit.bn.running_var[idx] == 1)
        touched += [(unit.bn.weight, (idx,)), (unit.bn.bias, (idx,))]
    for param, index in touched:
        state = algo.optimizer.state[param]
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.all(state[key][index] == 0)
            kept = state_before[param][key].clone()
            kept[index] = 0
            assert torch.equal(state[key], kept)  # nothing else in the moments changed
    assert torch.equal(algo.utility[0][idx], torch.zeros(2)) and torch.equal(algo.age[0][idx], torch.zeros(2).long())
    assert torch.all(algo.utility[0][rest] > 0) and torch.all(algo.age[0][rest] == 8)


def before_of(algo, before, param):
    return before[next(n for n, p in algo.named_parameters() if p is param)]


def test_new_units_do_not_change_the_output(tmp_path, one_thread):
    """After a replacement the network computes what it computed with the old units removed (outgoing weights 0):
    the fresh units add nothing until their outgoing weights grow."""
    cfg, tasks, algo = build(tmp_path, replacement_rate=0.0)
    algo.begin_task(tasks[0])
    algo.train_step(*batch(tasks[0]), engine.Step(0, 1, 0, 1))
    algo.eval()
    x, idx = batch(tasks[0], n=64)[0], torch.tensor([1, 2, 3])
    for i in range(3):
        removed = copy.deepcopy(algo)
        unit = removed.units[i]
        with torch.no_grad():
            for consumer in ([unit.consumer] if unit.consumer is not None else removed.heads.heads):
                consumer.weight[:, idx] = 0.0
        expected = removed.predict(x, 1)
        algo.reinit_units(i, idx)
        assert torch.allclose(algo.predict(x, 1), expected, atol=1e-6)


@pytest.mark.parametrize("setting", ["til", "dil"])
def test_twenty_task_run(tmp_path, setting, one_thread):
    cfg = make_cfg(tmp_path, num_tasks=20, train_subset=64, setting=setting, maturity_threshold=1,
                   replacement_rate=0.05)
    folder = runner.run(cfg, METHODS)
    assert [len(r) for r in records.read_acc(folder)] == list(range(1, 21))
    rows = read_csv(folder / "replacements.csv")
    assert len(rows) == 20 * 3 and {int(r["task"]) for r in rows} == set(range(1, 21))
    assert sum(int(r["replaced"]) for r in rows) > 0


def test_resnet18_run(tmp_path, one_thread):
    cfg = make_cfg(tmp_path, benchmark="synthetic_rgb", train_subset=32, maturity_threshold=0, replacement_rate=0.05)
    assert cfg["backbone"] == "resnet18"
    folder = runner.run(cfg, METHODS)
    assert [len(r) for r in records.read_acc(folder)] == [1, 2]
    rows = read_csv(folder / "replacements.csv")
    assert len(rows) == 2 * 8 and all(int(r["replaced"]) > 0 for r in rows)


def test_listed_in_help(capsys):
    runner.main(["--help"], METHODS, PACKAGE)
    assert "cbp" in capsys.readouterr().out


@pytest.mark.realdata
def test_pmnist_command(tmp_path, mnist_dir):
    argv = ["method=cbp", "benchmark=pmnist", "num_tasks=3", "epochs=1", "threads=1", "train_subset=1024",
            f"data_dir={mnist_dir}", f"out_dir={tmp_path}"]
    assert runner.main(argv, METHODS, PACKAGE) == 0
    metrics = records.read_record(tmp_path / "baselines" / "default" / "pmnist-3" / "cbp" / "seed1")["metrics"]
    assert metrics["fr"] is not None and metrics["aa"] > 0.3
