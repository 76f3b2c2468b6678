"""WSN: straight-through scores, exact top-c masks, frozen earlier subnetworks, packed masks, run records."""

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import baselines
from baselines import METHODS
from baselines.wsn import WSN, TopKSelector, TopKStraightThrough, kept_count, pack_mask, topk_mask, unpack_mask
from common import benchmarks, config, engine, records, runner
from helpers import tiny_cfg, tiny_method
from common.config import ConfigError

PACKAGE = Path(baselines.__file__).parent


def make_cfg(tmp_path, **extra):
    return tiny_cfg("wsn", METHODS, tmp_path, **extra)


def build(tmp_path, num_tasks=2, benchmark="synthetic", **extra):
    cfg = make_cfg(tmp_path, num_tasks=num_tasks, benchmark=benchmark, **extra)
    tasks, algo = tiny_method(WSN, cfg, benchmark, num_tasks)
    return cfg, tasks, algo


def train(algo, task, cfg):
    algo.begin_task(task)
    engine.train_task(algo, task, cfg, lambda message: None)
    algo.end_task(task)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_straight_through_step_by_hand():
    """Toy layer y = (theta * m) x, m = top-3 of |rho|, L = c . y; gradients worked out on paper."""
    theta = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], requires_grad=True)
    rho = torch.tensor([[0.3, -0.9, 0.1], [0.8, -0.2, 0.5]], requires_grad=True)
    x, c = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([1.0, -2.0])
    mask = TopKStraightThrough.apply(rho.abs(), 3)
    assert torch.equal(mask, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))
    loss = c @ ((theta * mask) @ x)
    assert loss.item() == -7.0  # y = (-4, 1.5)
    loss.backward()
    # dL/dW = c x^T = [[1, 2, -1], [-2, -4, 2]]; dL/dm = dL/dW * theta; dL/drho = sign(rho) dL/dm (every entry)
    assert torch.equal(rho.grad, torch.tensor([[1.0, 4.0, -3.0], [-1.0, 16.0, -2.0]]))
    assert torch.equal(theta.grad, torch.tensor([[0.0, 2.0, 0.0], [-2.0, 0.0, 2.0]]))  # dL/dW * m
    with torch.no_grad():  # one SGD step of lr 0.1 moves the scores, and so the mask
        rho -= 0.1 * rho.grad
    assert torch.allclose(rho, torch.tensor([[0.2, -1.3, 0.4], [0.9, -1.8, 0.7]]))
    assert torch.equal(TopKStraightThrough.apply(rho.abs(), 3), torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]))  # 1.8, 1.3, 0.9


def test_threshold_selector_picks_the_topk_set_step_after_step(monkeypatch):
    """The threshold search must give torch.topk's set at every step: drifting scores, ties at the k-th value (where
    only the fallback can agree), a layer of equal scores, and a k of 1 and of all but one."""
    import baselines.wsn as wsn_module
    fallbacks = []
    monkeypatch.setattr(wsn_module, "topk_mask", lambda scores, k: fallbacks.append(k) or topk_mask(scores, k))
    gen = torch.Generator().manual_seed(0)
    for numel, k in [(1000, 100), (5000, 2500), (300, 1), (300, 299)]:
        selector, scores = TopKSelector(k), torch.randn(numel, generator=gen)
        fallbacks.clear()
        for step in range(40):
            scores = scores + 1e-3 * torch.randn(numel, generator=gen)
            if step % 10 == 5:  # a tie straddling the k-th largest value
                order = scores.argsort(descending=True)
                scores[order[k - 1]] = scores[order[k]]
            expected = topk_mask(scores, k)[0]
            chosen = selector(scores)
            assert chosen.sum() == k and torch.equal(chosen, expected), (numel, k, step)
        assert 1 <= len(fallbacks) <= 12, (numel, k, len(fallbacks))  # the first step and the ties, not every step
    equal = torch.zeros(50)
    assert torch.equal(TopKSelector(10)(equal), topk_mask(equal, 10)[0])


def test_pack_unpack_round_trip():
    g = torch.Generator().manual_seed(0)
    for shape in [(3,), (5, 7), (4, 3, 3, 3)]:
        mask = torch.rand(shape, generator=g) > 0.5
        packed = pack_mask(mask)
        assert packed.dtype == torch.uint8 and packed.numel() == -(-mask.numel() // 8)
        assert torch.equal(unpack_mask(packed, mask.shape), mask)


@pytest.mark.parametrize("capacity", [0.1, 0.37, 0.5])
def test_masks_keep_exactly_c(tmp_path, capacity, one_thread):
    cfg, tasks, algo = build(tmp_path, wsn_capacity=capacity, train_subset=64)
    for task in tasks:
        train(algo, task, cfg)
    for task in tasks:
        for packed, w in zip(algo.task_masks[task.id], algo.weights):
            assert int(unpack_mask(packed, w.shape).sum()) == kept_count(w.numel(), capacity) == round(capacity * w.numel())
    assert [w.numel() for w in algo.weights] == [784 * 256, 256 * 100, 100 * 64]


def test_scores_receive_gradients_and_change(tmp_path, one_thread):
    cfg, tasks, algo = build(tmp_path, train_subset=64)
    before = [s.detach().clone() for s in algo.scores]
    algo.begin_task(tasks[0])
    x, y = tasks[0].transform(tasks[0].train_x[:32]), tasks[0].train_y[:32]
    algo.train_step(x, y, engine.Step(0, 1, 0, 1))
    for s, b in zip(algo.scores, before):
        assert s.grad is not None and s.grad.abs().sum() > 0
        assert not torch.equal(s.detach(), b)
    # unselected weights get no gradient, selected ones do
    masks = [m.bool() for m in algo.current_masks()]
    algo.optimizer.zero_grad()
    F.cross_entropy(algo.heads(algo.masked_features(x, algo.current_masks()), 1), y).backward()
    for w, m in zip(algo.weights, masks):
        assert torch.all(w.grad[~m] == 0) and w.grad[m].abs().sum() > 0


def test_earlier_subnetworks_frozen_and_outputs_exactly_kept(tmp_path, one_thread):
    cfg, tasks, algo = build(tmp_path, num_tasks=3, train_subset=128)
    train(algo, tasks[0], cfg)
    algo.eval()
    x1 = tasks[0].transform(tasks[0].test_x)
    logits1 = algo.predict(x1, 1).clone()
    weights1 = [w.detach().clone() for w in algo.weights]
    used1 = [u.clone() for u in algo.used]
    scores1 = [s.detach().clone() for s in algo.scores]
    for task in tasks[1:]:
        train(algo, task, cfg)
    algo.eval()
    assert torch.equal(algo.predict(x1, 1), logits1)
    for w, w1, u in zip(algo.weights, weights1, used1):
        assert torch.equal(w.detach()[u], w1[u])  # exactly zero update on task 1's subnetwork
        assert not torch.equal(w.detach()[~u], w1[~u])  # free weights did train
    assert any(not torch.equal(s.detach(), s1) for s, s1 in zip(algo.scores, scores1))
    assert all(not b.requires_grad and torch.all(b == 0) for n, b in algo.backbone.named_parameters() if b.dim() == 1)


def test_run_record_capacity_and_exact_retention(tmp_path, one_thread):
    cfg = make_cfg(tmp_path, num_tasks=3, train_subset=64, wsn_capacity=0.3)
    folder = runner.run(cfg, METHODS)
    acc = records.read_acc(folder)
    for j in range(3):  # every earlier task's accuracy is the same after every later task
        assert len({row[j] for row in acc[j:]}) == 1
    assert records.read_record(folder)["metrics"]["bwt"] == 0.0
    capacity = read_csv(folder / "capacity.csv")
    steps_per_task = len(capacity) // 3
    by_task = {int(r["task"]): float(r["capacity"]) for r in capacity}
    assert [int(r["step"]) for r in capacity] == list(range(1, len(capacity) + 1)) and steps_per_task == 2
    subnetworks = read_csv(folder / "subnetworks.csv")
    total = int(subnetworks[0]["weights"])
    assert by_task[1] == 1.0
    for t in (2, 3):
        assert by_task[t] == pytest.approx(1 - int(subnetworks[t - 2]["used_total"]) / total)
    assert by_task[1] > by_task[2] > by_task[3]
    assert int(subnetworks[0]["kept"]) == int(subnetworks[0]["used_total"]) == sum(
        round(0.3 * n) for n in (784 * 256, 256 * 100, 100 * 64))
    assert int(subnetworks[0]["mask_bytes"]) == sum(-(-n // 8) for n in (784 * 256, 256 * 100, 100 * 64))


def test_resnet18_exact_retention(tmp_path, one_thread):
    cfg = make_cfg(tmp_path, benchmark="synthetic_rgb", train_subset=32, wsn_capacity=0.2)
    assert cfg["backbone"] == "resnet18"
    folder = runner.run(cfg, METHODS)
    acc = records.read_acc(folder)
    assert [len(r) for r in acc] == [1, 2] and acc[0][0] == acc[1][0]
    assert (folder / "capacity.csv").is_file()


@pytest.mark.parametrize("extra, words", [({"batch_norm": "true"}, "batch norm"), ({"setting": "dil"}, "til"),
                                          ({"wsn_capacity": "0"}, "wsn_capacity"),
                                          ({"weight_decay": "1e-4"}, "weight decay")])
def test_rejected_settings(tmp_path, extra, words):
    with pytest.raises(ConfigError, match=words):  # at configuration time, before any data loads
        make_cfg(tmp_path, **extra)


def test_listed_in_help(capsys):
    runner.main(["--help"], METHODS, PACKAGE)
    assert "wsn" in capsys.readouterr().out


@pytest.mark.realdata
def test_pmnist_command(tmp_path, mnist_dir):
    argv = ["method=wsn", "benchmark=pmnist", "num_tasks=3", "epochs=1", "threads=1", "train_subset=1024",
            f"data_dir={mnist_dir}", f"out_dir={tmp_path}"]
    assert runner.main(argv, METHODS, PACKAGE) == 0
    folder = tmp_path / "baselines" / "default" / "pmnist-3" / "wsn" / "seed1"
    metrics = records.read_record(folder)["metrics"]
    assert metrics["bwt"] == 0.0 and metrics["fr"] is not None and metrics["aa"] > 0.15  # chance is 0.1
