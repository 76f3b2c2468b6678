"""Replay buffer (reservoir, sampling, deletion, padded logits), per-sample head routing, DER and DER++ steps."""

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from baselines import METHODS
from baselines.der import DER
from common import benchmarks, config, engine
from common.algorithm import Step
from common.replay import ReplayBatch, ReplayBuffer, replay_logits, replay_losses


def offer(buffer, values, task_id=1, width=2):
    """Offer examples whose input is their value (x = value, y = value, logits = value)."""
    v = torch.as_tensor(values, dtype=torch.float32)
    buffer.add(v[:, None], v.long(), v[:, None].expand(-1, width), task_id)


def stored(buffer):
    return buffer.x[:, 0].tolist()


def fake_rand(monkeypatch, values):
    """torch.rand returns the given numbers (for the reservoir draws)."""
    def rand(n, **kw):
        assert n == len(values)
        return torch.tensor(values, dtype=kw.get("dtype", torch.float32))
    monkeypatch.setattr(torch, "rand", rand)


# --- reservoir -------------------------------------------------------------------------------------------------


def test_reservoir_fills_in_order_then_replaces_by_hand(monkeypatch):
    buffer = ReplayBuffer(3)
    offer(buffer, [10, 11])  # examples n=0, 1: free slots 0, 1
    assert stored(buffer) == [10, 11, 0] and len(buffer) == 2 and buffer.seen == 2
    # n=2 takes the last free slot; n=3: j = floor(0.0 * 4) = 0 -> slot 0; n=4: j = floor(0.7 * 5) = 3 -> rejected
    fake_rand(monkeypatch, [0.0, 0.7])
    offer(buffer, [12, 13, 14])
    assert stored(buffer) == [13, 11, 12] and len(buffer) == 3 and buffer.seen == 5
    # full: n=5: j = floor(0.3 * 6) = 1; n=6: j = floor(0.99 * 7) = 6 rejected; n=7: j = floor(0.2 * 8) = 1 (wins)
    fake_rand(monkeypatch, [0.3, 0.99, 0.2])
    offer(buffer, [15, 16, 17])
    assert stored(buffer) == [13, 17, 12] and buffer.seen == 8
    assert buffer.y.tolist() == [13, 17, 12] and buffer.logits[:, 0].tolist() == [13, 17, 12]


def test_reservoir_keeps_every_example_with_probability_capacity_over_seen():
    torch.manual_seed(0)
    capacity, total, trials = 10, 50, 400
    kept = torch.zeros(total)
    for _ in range(trials):
        buffer = ReplayBuffer(capacity)
        for start in range(0, total, 5):
            offer(buffer, list(range(start, start + 5)))
        assert len(buffer) == capacity and buffer.seen == total
        kept[buffer.x[:, 0].long()] += 1
    share = kept / trials  # each example ends in the buffer with probability 10 / 50 = 0.2
    assert share.sum().item() == pytest.approx(capacity)
    assert abs(share[:10].mean().item() - 0.2) < 0.03  # standard error about 0.006
    assert abs(share[-10:].mean().item() - 0.2) < 0.03
    assert (share - 0.2).abs().max().item() < 0.1


def test_sampling_draws_only_the_asked_tasks_with_replacement():
    torch.manual_seed(0)
    buffer = ReplayBuffer(30)
    for task in (1, 2, 3):
        offer(buffer, [100 * task + i for i in range(10)], task_id=task)
    assert buffer.task_counts() == {1: 10, 2: 10, 3: 10}
    assert buffer.sample(5, [4]) is None and buffer.sample(5, []) is None
    assert ReplayBuffer(5).sample(3, [1]) is None
    batch = buffer.sample(2000, [1, 3], limit_to_stored=False)
    assert len(batch.x) == 2000 and set(batch.task_ids.tolist()) == {1, 3}
    assert torch.equal(batch.x[:, 0].long() // 100, batch.task_ids)  # rows stay together
    counts = torch.bincount(batch.x[:, 0].long() % 100, minlength=10)
    assert counts.min() > 120  # 20 distinct examples, 100 draws each on average
    assert len(buffer.sample(64, [2]).x) == 10  # as the reference: min(n, stored)
    assert len(buffer.sample(4, [2]).x) == 4


def test_delete_task_removes_it_and_freed_slots_are_refilled_only_by_the_reservoir_draw(monkeypatch):
    torch.manual_seed(0)
    buffer = ReplayBuffer(6)
    offer(buffer, [1, 2, 3], task_id=1)
    offer(buffer, [4, 5, 6], task_id=2)
    before = stored(buffer)
    buffer.delete_task(1)
    assert len(buffer) == 3 and buffer.task_counts() == {2: 3}
    assert buffer.sample(10, [1]) is None
    assert stored(buffer)[3:] == before[3:] and stored(buffer)[:3] == [0, 0, 0]
    # n=6: j = floor(0.1 * 7) = 0 -> the freed slot 0; n=7: j = floor(0.5 * 8) = 4 -> replaces example 5
    fake_rand(monkeypatch, [0.1, 0.5])
    offer(buffer, [7, 8], task_id=3)
    assert stored(buffer) == [7, 0, 0, 4, 8, 6] and buffer.task_counts() == {2: 2, 3: 2}
    assert len(buffer) == 4 and buffer.seen == 8


def test_with_refill_freed_the_next_examples_take_the_freed_slots_without_a_draw(monkeypatch):
    torch.manual_seed(0)
    buffer = ReplayBuffer(6, refill_freed=True)
    offer(buffer, [1, 2, 3], task_id=1)
    offer(buffer, [4, 5, 6], task_id=2)
    buffer.delete_task(1)
    # 7, 8, 9 fill the freed slots in order; only 10 is drawn: n=9, j = floor(0.95 * 10) = 9 -> rejected
    fake_rand(monkeypatch, [0.95])
    offer(buffer, [7, 8, 9, 10], task_id=3)
    assert stored(buffer) == [7, 8, 9, 4, 5, 6] and buffer.task_counts() == {2: 3, 3: 3}
    assert len(buffer) == 6 and buffer.seen == 10


def test_without_deletions_both_refill_rules_store_the_same(monkeypatch):
    torch.manual_seed(0)
    buffers = [ReplayBuffer(5, refill_freed=r) for r in (False, True)]
    for buffer in buffers:
        torch.manual_seed(1)
        for start in range(0, 40, 8):
            offer(buffer, list(range(start, start + 8)), task_id=1 + start // 16)
    assert stored(buffers[0]) == stored(buffers[1]) and buffers[0].seen == buffers[1].seen == 40


def test_logits_of_different_widths_are_padded_and_compared_on_their_width():
    buffer = ReplayBuffer(4)
    buffer.add(torch.zeros(2, 1), torch.tensor([0, 1]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 1)
    buffer.add(torch.ones(2, 1), torch.tensor([2, 0]), torch.tensor([[5.0, 6.0, 7.0], [8.0, 9.0, 1.0]]), 2)
    assert buffer.logits.tolist() == [[1, 2, 0], [3, 4, 0], [5, 6, 7], [8, 9, 1]]
    assert buffer.widths.tolist() == [2, 2, 3, 3]
    batch = ReplayBatch(buffer.x, buffer.y, buffer.logits, buffer.task_ids, buffer.widths)
    student = torch.tensor([[1.5, 2.0, 0.0], [3.0, 3.0, 0.0], [5.0, 6.0, 9.0], [8.0, 9.0, 1.0]])
    mse, ce = replay_losses(student, batch)
    assert mse.item() == pytest.approx((0.25 + 1 + 4) / 10)
    expected_ce = (F.cross_entropy(student[:2, :2], batch.y[:2], reduction="sum")
                   + F.cross_entropy(student[2:], batch.y[2:], reduction="sum")) / 4
    assert ce.item() == pytest.approx(expected_ce.item())
    # equal widths: the plain losses
    same = ReplayBatch(None, batch.y[2:], batch.logits[2:], batch.task_ids[2:], batch.widths[2:])
    mse, ce = replay_losses(student[2:], same)
    assert mse.item() == pytest.approx(F.mse_loss(student[2:], batch.logits[2:]).item())
    assert ce.item() == pytest.approx(F.cross_entropy(student[2:], batch.y[2:]).item())


# --- per-sample head routing --------------------------------------------------------------------------------------


def der_cfg(tmp_path, method="der", **extra):
    cli = {"method": method, "benchmark": "synthetic", "num_tasks": "2", "epochs": "1", "train_subset": "96",
           "out_dir": str(tmp_path), "references": "none", "threads": "1", **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)


def test_replay_logits_use_each_samples_own_head(tmp_path):
    torch.manual_seed(0)
    algo = DER(der_cfg(tmp_path), [3, 5, 4], (1, 28, 28)).eval()  # eval: batch norm without batch statistics
    x, tasks = torch.randn(9, 1, 28, 28), torch.tensor([2, 1, 3, 2, 2, 1, 3, 1, 2])
    got = replay_logits(algo, x, tasks)
    assert got.shape == (9, 5)
    for i, t in enumerate(tasks.tolist()):
        alone = algo.heads.head(t)(algo.backbone(x[i:i + 1]))[0]
        torch.testing.assert_close(got[i, :len(alone)], alone, rtol=1e-5, atol=1e-6)
        assert (got[i, len(alone):] == 0).all()

    calls = []

    def per_task(xg, t):
        calls.append((t, len(xg)))
        return algo(xg, t)

    torch.testing.assert_close(replay_logits(per_task, x, tasks), got, rtol=1e-5, atol=1e-6)
    assert sorted(calls) == [(1, 3), (2, 4), (3, 2)]  # one forward per distinct task

    # gradients reach exactly the heads of the replayed tasks
    algo.zero_grad(set_to_none=True)
    replay_logits(algo, x[:3], torch.tensor([1, 1, 3])).sum().backward()
    assert algo.heads.head(1).weight.grad is not None and algo.heads.head(3).weight.grad is not None
    assert algo.heads.head(2).weight.grad is None


# --- DER and DER++ on the synthetic benchmark ---------------------------------------------------------------------


def quiet(_message):
    pass


@pytest.fixture(scope="module")
def synthetic_tasks():
    return benchmarks.build_benchmark("synthetic", 2, train_subset=96)


def spy_on_samples(algo, monkeypatch):
    drawn = []
    original = algo.buffer.sample

    def spy(n, task_ids, **kw):
        batch = original(n, task_ids, **kw)
        drawn.append((n, list(task_ids), batch))
        return batch

    monkeypatch.setattr(algo.buffer, "sample", spy)
    return drawn


@pytest.mark.parametrize("method", ["der", "derpp"])
def test_der_trains_fills_the_buffer_and_replays_only_earlier_tasks(method, tmp_path, monkeypatch, synthetic_tasks,
                                                                    one_thread):
    cfg = der_cfg(tmp_path, method, buffer_size=50)
    assert cfg["batch_norm"] is True and cfg["der_alpha"] == (1.0 if method == "der" else 0.5)
    tasks = synthetic_tasks
    torch.manual_seed(0)
    algo = METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
    drawn = spy_on_samples(algo, monkeypatch)
    for task in tasks:
        algo.begin_task(task)
        curve = engine.train_task(algo, task, cfg, quiet)
        algo.end_task(task)
        assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in curve)
    assert len(algo.buffer) == 50 and algo.buffer.seen == 2 * 96
    assert set(algo.buffer.task_counts()) == {1, 2}
    assert all(ids == [] for _, ids, _ in drawn[:3])  # task 1: nothing to replay
    replayed = [batch for _, ids, batch in drawn[3:]]
    assert all(ids == [1] for _, ids, _ in drawn[3:]) and all(b is not None for b in replayed)
    assert all((b.task_ids == 1).all() for b in replayed) and len(replayed[0].x) == 32  # the batch size


@pytest.mark.parametrize("method", ["der", "derpp"])
def test_der_loss_uses_one_replay_batch_for_both_terms(method, tmp_path, monkeypatch, one_thread):
    cfg = der_cfg(tmp_path, method)
    torch.manual_seed(0)
    algo = METHODS[method](cfg, [4, 4], (1, 28, 28)).train()
    algo.begin_task(SimpleNamespace(id=1))
    algo.buffer.add(torch.randn(40, 1, 28, 28), torch.randint(0, 4, (40,)), torch.randn(40, 4), 1)
    algo.begin_task(SimpleNamespace(id=2))
    drawn = spy_on_samples(algo, monkeypatch)

    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,))
    before = copy.deepcopy(algo)
    stats = algo.train_step(x, y, Step(0, 1, 0, 2))
    assert len(drawn) == 1  # one draw per step, for both terms
    n, ids, batch = drawn[0]
    assert n == 16 and ids == [1] and len(batch.x) == 16

    ce = F.cross_entropy(before(x, 2), y)
    student = before.heads.head(1)(before.backbone(batch.x))
    expected = ce + before.cfg["der_alpha"] * F.mse_loss(student, batch.logits)
    if method == "derpp":
        expected = expected + before.cfg["der_beta"] * F.cross_entropy(student, batch.y)
    assert stats["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert algo.heads.head(1).weight.grad is not None  # the replay terms train the old head
    # the current batch went into the buffer with this step's logits
    assert algo.buffer.task_counts() == {1: 40, 2: 16}
    new = algo.buffer.task_ids == 2
    torch.testing.assert_close(algo.buffer.logits[new], before(x, 2).detach(), rtol=1e-5, atol=1e-6)
