"""CLPU-DER++: temporary backbones, merging when a task becomes permanent, unlearning, aggregated features."""

import copy

import pytest
import torch

from amnesiachat.clpu_derpp import CLPUDERpp
from common import benchmarks, config, engine
from common.unlearning import UnlearningProtocol, UnlearningState

REGISTRY = {"clpu_derpp": CLPUDERpp}


def quiet(_message):
    pass


@pytest.fixture(scope="module")
def tasks():
    return benchmarks.build_benchmark("synthetic", 3, train_subset=64)


def make(tmp_path, tasks, **extra):
    cli = {"method": "clpu_derpp", "benchmark": "synthetic", "num_tasks": "3", "epochs": "1", "train_subset": "64",
           "out_dir": str(tmp_path), "references": "none", "merge_num_steps": "20", "merge_batch_size": "16",
           **extra}
    cfg = config.resolve({k: str(v) for k, v in cli.items()}, REGISTRY)
    torch.manual_seed(0)
    return cfg, CLPUDERpp(cfg, [t.num_classes for t in tasks], tasks[0].input_shape)


def train(algo, task, cfg, state):
    algo.set_unlearning_state(state)
    algo.begin_task(task)
    engine.train_task(algo, task, cfg, quiet)
    algo.end_task(task)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(module, saved):
    return all(torch.equal(p, q) for p, q in zip(module.parameters(), saved))


def test_config_is_the_published_one(tmp_path, tasks):
    cfg = config.resolve({"method": "clpu_derpp", "benchmark": "synthetic"}, REGISTRY)
    assert cfg["batch_norm"] is False and cfg["buffer_size"] == 200
    assert (cfg["der_alpha"], cfg["der_beta"]) == (0.5, 0.5)
    assert (cfg["temporary_init"], cfg["merge_num_steps"], cfg["merge_batch_size"]) == ("from_main", 0, 200)
    assert CLPUDERpp.unlearnable


def test_temporary_task_trains_only_its_temporary_backbone(tmp_path, tasks, one_thread):
    cfg, algo = make(tmp_path, tasks)
    main = params(algo.backbone)
    algo.set_unlearning_state(UnlearningState(1, unlearnable=[1], requests=[], just_permanent=[]))
    algo.begin_task(tasks[0])
    assert algo.is_temporary(1) and same(algo.temporary_backbones["1"], main)  # from_main: a copy
    optimised = {id(p) for group in algo.optimizer.param_groups for p in group["params"]}
    assert optimised.isdisjoint(id(p) for p in algo.backbone.parameters())
    assert {id(p) for p in algo.temporary_backbones["1"].parameters()} <= optimised

    engine.train_task(algo, tasks[0], cfg, quiet)
    algo.end_task(tasks[0])
    assert same(algo.backbone, main)
    assert not same(algo.temporary_backbones["1"], main)
    assert algo.buffer.task_counts() == {1: 64}

    # task 1 is answered through its temporary backbone; its buffer logits come from it too
    x = tasks[0].transform(tasks[0].test_x[:8])
    algo.eval()
    expected = algo.heads(algo.temporary_backbones["1"](x), 1)
    torch.testing.assert_close(algo.predict(x, 1), expected)
    assert not torch.allclose(algo.predict(x, 1), algo.heads(algo.backbone(x), 1))


def test_from_scratch_starts_from_the_initial_weights(tmp_path, tasks, one_thread):
    cfg, algo = make(tmp_path, tasks, temporary_init="from_scratch")
    initial = params(algo.backbone)
    train(algo, tasks[0], cfg, UnlearningState(1, [], [], [1]))  # task 1 permanent: moves the main backbone
    assert not same(algo.backbone, initial) and not algo.temporary_backbones
    algo.set_unlearning_state(UnlearningState(2, [2], [], []))
    algo.begin_task(tasks[1])
    assert same(algo.temporary_backbones["2"], initial)


@pytest.mark.parametrize("replay_temporary", [True, False])
def test_unlearning_a_temporary_task_deletes_its_backbone_and_buffer_entries(tmp_path, tasks, one_thread,
                                                                             monkeypatch, replay_temporary):
    cfg, algo = make(tmp_path, tasks, replay_temporary=replay_temporary)
    protocol = UnlearningProtocol({2: [1]}, age=3, num_tasks=3, ages={2: 0})
    train(algo, tasks[0], cfg, protocol.state(1, set()))
    assert algo.is_temporary(1)

    drawn = []
    original = algo.buffer.sample
    monkeypatch.setattr(algo.buffer, "sample", lambda n, ids, **kw: drawn.append(list(ids)) or original(n, ids, **kw))
    main = params(algo.backbone)
    train(algo, tasks[1], cfg, protocol.state(2, set()))  # task 2 permanent, on the main backbone
    assert not algo.is_temporary(2) and not same(algo.backbone, main)
    # the reference code replays the temporary task 1 into the main backbone; CLPU's design never does
    assert drawn and all(ids == ([1] if replay_temporary else []) for ids in drawn)
    assert algo.buffer.task_counts() == {1: 64, 2: 64}

    algo.unlearn([1])
    assert not algo.is_temporary(1) and "1" not in algo.temporary_backbones
    assert algo.buffer.task_counts() == {2: 64} and len(algo.buffer) == 128 - 64
    x = tasks[0].transform(tasks[0].test_x[:8])
    algo.eval()
    torch.testing.assert_close(algo.predict(x, 1), algo.heads.head(1)(algo.backbone(x)))


def test_merge_at_just_permanent_moves_main_backbone_and_deletes_temporary(tmp_path, tasks, one_thread):
    # task 1 permanent (trains the main backbone), task 2 temporary from theta_0 for one task, merged at task 3;
    # no replay cross-entropy, so the merge is pure distillation of the stored (temporary-backbone) logits
    cfg, algo = make(tmp_path, tasks, epochs=4, der_beta=0.0, temporary_init="from_scratch")
    protocol = UnlearningProtocol({}, age=1, num_tasks=3, ages={1: 0, 2: 1, 3: 0})
    train(algo, tasks[0], cfg, protocol.state(1, set()))
    train(algo, tasks[1], cfg, protocol.state(2, set()))
    counts = algo.buffer.task_counts()
    assert algo.is_temporary(2) and set(counts) == {1, 2} and len(algo.buffer) == 200
    buffered = algo.buffer.sample(64, [2])
    main_before = copy.deepcopy(algo.backbone)

    def distance(backbone):
        with torch.no_grad():
            return ((algo.heads(backbone(buffered.x), 2) - buffered.logits) ** 2).mean().item()

    state = protocol.state(3, set())
    assert state.just_permanent == [2, 3] and state.unlearnable == []  # task 3 has age 0
    algo.set_unlearning_state(state)
    algo.begin_task(tasks[2])
    assert not algo.temporary_backbones
    assert not same(algo.backbone, params(main_before))
    assert distance(algo.backbone) < 0.5 * distance(main_before)  # distilled toward the temporary logits
    assert algo.buffer.task_counts() == counts  # the merged task stays, now replayed as permanent
    assert algo.replay_task_ids() == [1, 2]


def test_merge_steps_default_rule(tmp_path, tasks, monkeypatch):
    _, algo = make(tmp_path, tasks, merge_num_steps=0, batch_size=16)
    assert algo.merge_steps(tasks[1]) == 1 * (64 // 16)
    steps = []
    monkeypatch.setattr(algo, "merge", lambda tau, n: steps.append((tau, n)) or algo.temporary_backbones.pop(str(tau)))
    algo.set_unlearning_state(UnlearningState(1, [1], [], []))
    algo.begin_task(tasks[0])
    algo.set_unlearning_state(UnlearningState(2, [2], [], [1]))
    algo.begin_task(tasks[1])
    assert steps == [(1, 4)] and list(algo.temporary_backbones) == ["2"]


def test_aggregated_features_average_the_backbone_of_each_task(tmp_path, tasks, one_thread):
    cfg, algo = make(tmp_path, tasks)
    protocol = UnlearningProtocol({3: [1]}, age=3, num_tasks=3, ages={2: 0})  # tasks 1, 3 temporary
    for task in tasks:
        train(algo, task, cfg, protocol.state(task.id, set()))
    assert sorted(algo.temporary_backbones) == ["1", "3"]
    algo.eval()
    x = tasks[0].transform(tasks[0].test_x[:8])
    t1, t3, main = algo.temporary_backbones["1"](x), algo.temporary_backbones["3"](x), algo.backbone(x)
    torch.testing.assert_close(algo.aggregated_features(x), (t1 + main + t3) / 3)
    algo.unlearn([1])
    torch.testing.assert_close(algo.aggregated_features(x), (main + t3) / 2)


def test_aggregated_features_count_the_main_backbone_once_per_task(tmp_path, tasks, one_thread):
    cfg, algo = make(tmp_path, tasks)
    protocol = UnlearningProtocol({3: [3]}, age=3, num_tasks=3, ages={1: 0, 2: 0})  # only task 3 temporary
    for task in tasks:
        train(algo, task, cfg, protocol.state(task.id, set()))
    algo.eval()
    x = tasks[0].transform(tasks[0].test_x[:8])
    t3, main = algo.temporary_backbones["3"](x), algo.backbone(x)
    torch.testing.assert_close(algo.aggregated_features(x), (2 * main + t3) / 3)
    algo.unlearn([3])
    torch.testing.assert_close(algo.aggregated_features(x), main)


@pytest.mark.parametrize("state", [None, UnlearningState(1, [1], [], [], enabled=False)])
def test_without_unlearning_it_is_plain_derpp(tmp_path, tasks, state, one_thread):
    _, algo = make(tmp_path, tasks)
    if state is not None:
        algo.set_unlearning_state(state)
    algo.begin_task(tasks[0])
    assert not algo.temporary_backbones
    optimised = {id(p) for group in algo.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in algo.backbone.parameters()} <= optimised
