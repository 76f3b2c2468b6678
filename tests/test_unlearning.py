"""The unlearning schedule, the unlearning state and the store of task-wise parameter updates (common/unlearning.py)."""

import pytest
import torch
from torch import nn

from common.unlearning import (
    StoredDelta,
    TaskUpdateStore,
    UnlearningConfigError,
    UnlearningProtocol,
    parse_ages,
    parse_requests,
    prune_by_magnitude,
    published_requests,
)


def test_published_schedule_for_5_and_20_tasks():
    assert published_requests(5) == {2: [1], 4: [2], 5: [5]}
    twenty = published_requests(20)
    assert twenty == {2: [1], 4: [2], 5: [5], 7: [6], 9: [7], 10: [10], 12: [11], 14: [12], 15: [15], 17: [16],
                      19: [17], 20: [20]}
    protocol = UnlearningProtocol(twenty, 4, 20)
    assert protocol.remaining_tasks == [3, 4, 8, 9, 13, 14, 18, 19]
    assert len(protocol.unlearned_tasks) == 12


def test_parse_requests_and_ages():
    assert parse_requests("2:1, 4:2+3", 5) == {2: [1], 4: [2, 3]}
    assert parse_requests("", 5) == {}
    assert parse_requests("published", 5) == published_requests(5)
    assert parse_ages("3:0,4:0") == {3: 0, 4: 0}
    assert parse_ages("published", 5) == {1: 3, 2: 3, 3: 0, 4: 0, 5: 3}
    assert parse_ages("published", 7) == {1: 3, 2: 3, 3: 0, 4: 0, 5: 3, 6: 3, 7: 3}
    for bad in ("2-1", "x:1", "2:"):
        with pytest.raises(UnlearningConfigError):
            parse_requests(bad, 5)


@pytest.mark.parametrize("requests, message", [({6: [1]}, "has 5 tasks"), ({2: [3]}, "only tasks 1..2"),
                                               ({2: [1], 3: [1]}, "twice"), ({5: [1]}, "no longer unlearnable")])
def test_impossible_schedules_are_refused(requests, message):
    with pytest.raises(UnlearningConfigError, match=message):
        UnlearningProtocol(requests, 4, 5)


def test_state_lists_unlearnable_requests_and_just_permanent_tasks():
    protocol = UnlearningProtocol(published_requests(5), 4, 5)
    s4 = protocol.state(4, {1})
    assert s4.unlearnable == [1, 2, 3, 4]  # unlearned task 1 stays listed (reference pipeline); `unlearned` says so
    assert s4.unlearned == {1} and s4.requests == [2] and s4.just_permanent == []
    s5 = protocol.state(5, {1, 2})
    assert s5.unlearnable == [2, 3, 4, 5] and s5.just_permanent == [1] and s5.requests == [5]
    assert protocol.state(2, set(), enabled=False).requests == []  # references never unlearn
    per_task = UnlearningProtocol({2: [1]}, 3, 5, ages={3: 0, 4: 0})
    assert per_task.state(4, set()).unlearnable == [2]  # tasks 3, 4 permanent from the start, task 1 aged out
    assert per_task.state(3, set()).just_permanent == [3]


def test_sparse_storage_round_trip_and_size():
    delta = torch.zeros(10, 10)
    delta[2, 3], delta[7, 1] = 0.5, -2.0
    stored = StoredDelta.from_dense(delta)
    assert stored.indices is not None and stored.nbytes() == 2 * 4 + 2 * 4  # two float32 values, two int32 indices
    assert torch.equal(stored.dense(), delta)
    dense = StoredDelta.from_dense(torch.ones(4))
    assert dense.indices is None and dense.nbytes() == 16


def test_prune_by_magnitude_drops_the_smallest_share():
    delta = torch.tensor([0.0, -4.0, 1.0, 3.0, -2.0])
    assert torch.equal(prune_by_magnitude(delta, 0.5), torch.tensor([0.0, -4.0, 0.0, 3.0, 0.0]))
    assert torch.equal(prune_by_magnitude(delta, 0.0), delta)


def test_store_theta0_plus_updates_is_the_live_network_and_subtract_removes_one_task():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    store = TaskUpdateStore({"net": net})
    theta0 = {k: v.clone() for k, v in net.state_dict().items()}
    deltas = {}
    for t in (1, 2, 3):
        store.snapshot()
        with torch.no_grad():
            before = {k: v.clone() for k, v in net.state_dict().items()}
            net[0].weight.add_(torch.randn(4, 3))
            net[0].bias[t % 4] += 1.0  # a sparse change
            net.train()(torch.randn(8, 3))  # BN running statistics and the batch counter move too
        store.record(t)
        deltas[t] = {k: net.state_dict()[k] - before[k] for k in before}
    assert store.updates[1]["net"]["0.bias"].indices is not None  # stored sparsely
    for k, v in net.state_dict().items():
        rebuilt = theta0[k] + sum(store.delta(t)["net"][k] for t in (1, 2, 3))
        torch.testing.assert_close(rebuilt, v)
    expected = {k: v - deltas[2][k] for k, v in net.state_dict().items()}
    store.subtract(2)
    assert sorted(store.updates) == [1, 3]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, expected[k])
    assert int(net[1].num_batches_tracked) == 2  # integer entries are subtracted as well
    # folding task 1 into the base keeps base + records == live network; state_before(3) = base
    store.make_permanent(1)
    assert sorted(store.updates) == [3]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(store.base["net"][k] + store.delta(3)["net"][k], v)
        torch.testing.assert_close(store.state_before(3)["net"][k], store.base["net"][k])


def test_store_memory_counts_sparse_records():
    net = nn.Linear(100, 10)
    store = TaskUpdateStore({"net": net})
    store.snapshot()
    with torch.no_grad():
        net.weight[0, :5] += 1.0
    store.record(1)
    assert store.nbytes() == 5 * 8  # weight: 5 values + 5 indices; unchanged bias: nothing
    assert store.dense_nbytes() == (1000 + 10) * 4
