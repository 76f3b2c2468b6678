"""AmnesiacHAT, the Amnesiac baselines, Independent unlearning and the unlearning protocol end to end."""

import copy
import json
import math

import pytest
import torch

from amnesiachat import METHODS
from amnesiachat.backups import routed_forward
from common import benchmarks, config, engine, records, runner
from common.hat import parameter_wise
from common.replay import ReplayBatch
from common.unlearning import UnlearningProtocol, task_seed

QUICK = {"benchmark": "synthetic", "num_tasks": "5", "epochs": "1", "threads": "1", "train_subset": "96"}


def quiet(_message):
    pass


def make_cfg(method, tmp_path, **extra):
    cli = {"method": method, **QUICK, "out_dir": str(tmp_path), "unlearning_requests": "published", **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)


@pytest.fixture(scope="module")
def tasks():
    return benchmarks.build_benchmark("synthetic", 5, train_subset=96)


def build(method, tmp_path, tasks, **extra):
    cfg = make_cfg(method, tmp_path, **extra)
    torch.manual_seed(cfg["seed"])
    return cfg, METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)


def learn(algo, cfg, tasks, upto, protocol=None, unlearned=None, unlearn=True):
    """What the unlearning engine does, for tasks 1..upto; returns the unlearned ids."""
    protocol = protocol or UnlearningProtocol.from_config(cfg)
    unlearned = [] if unlearned is None else unlearned
    for task in tasks[len(algo_trained(algo)):upto]:
        torch.manual_seed(task_seed(cfg["seed"], task.id))
        state = protocol.state(task.id, set(unlearned))
        algo.set_unlearning_state(state)
        algo.begin_task(task)
        engine.train_task(algo, task, cfg, quiet)
        algo.end_task(task)
        algo.trained_ids.append(task.id)
        if unlearn and state.requests:
            algo.unlearn(state.requests)
            unlearned += state.requests
    return unlearned


def algo_trained(algo):
    if not hasattr(algo, "trained_ids"):
        algo.trained_ids = []
    return algo.trained_ids


def backbone_state(algo):
    return {k: v.clone() for k, v in algo.backbone.state_dict().items()}


# ----- update deletion ------------------------------------------------------------------------------------------------
def test_update_records_sum_to_the_live_network_and_unlearning_subtracts_exactly_one(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiachat", tmp_path, tasks, backup_compensation="false", replay_repair="false")
    learn(algo, cfg, tasks, 2, unlearn=False)
    store = algo.updates
    for k, v in algo.backbone.state_dict().items():  # theta^(0) + sum of the updates == live parameters
        torch.testing.assert_close(store.base["backbone"][k] + store.delta(1)["backbone"][k]
                                   + store.delta(2)["backbone"][k], v)
    kept = copy.deepcopy(store.updates[2])
    before = backbone_state(algo)
    delta1 = store.delta(1)["backbone"]
    algo.unlearn([1])
    assert sorted(store.updates) == [2]
    for k, stored in kept["backbone"].items():  # the other task's record is untouched
        assert torch.equal(store.updates[2]["backbone"][k].dense(), stored.dense())
    for k, v in algo.backbone.state_dict().items():  # without compensation or repair: exactly theta - Delta^(1)
        torch.testing.assert_close(v, before[k] - delta1[k])
        torch.testing.assert_close(v, store.base["backbone"][k] + store.delta(2)["backbone"][k])


def test_compensation_writes_only_the_overlap_of_the_unlearned_and_later_tasks(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiachat", tmp_path, tasks, replay_repair="false")
    learn(algo, cfg, tasks, 3, unlearn=False)
    expected = {k: v - algo.updates.delta(2)["backbone"][k] for k, v in backbone_state(algo).items()}
    algo.task_id = 3
    algo.unlearn([2])  # affected task: 3 (backup (2, 3) was trained during task 3)
    overlap = [a * b for a, b in zip(algo.task_masks[3], algo.task_masks[2])]
    selected = parameter_wise(overlap, algo.layers, "min")
    state = algo.backbone.state_dict()
    changed = 0
    for l, (sel_w, sel_b) in enumerate(selected):
        for key, sel in ((f"fc.{l}.weight", sel_w), (f"fc.{l}.bias", sel_b)):
            outside = sel == 0
            assert torch.equal(state[key][outside], expected[key][outside])  # theta0 + remaining updates there
            saved = algo.backup_states[(2, 3)][f"layers.{l}.{key.split('.')[-1]}"]
            assert torch.equal(state[key][~outside], saved[~outside])  # the backup's values inside
            changed += int((~outside).sum())
    assert changed > 0


@pytest.mark.parametrize("backup_unlearned", [True, False])
def test_backups_are_built_for_unlearnable_earlier_tasks_with_delete_init(tmp_path, tasks, one_thread,
                                                                          backup_unlearned):
    cfg, algo = build("amnesiachat", tmp_path, tasks, backup_unlearned=str(backup_unlearned).lower())
    unlearned = learn(algo, cfg, tasks, 2)  # task 1 unlearned after task 2
    protocol = UnlearningProtocol.from_config(cfg)
    algo.set_unlearning_state(protocol.state(3, set(unlearned)))
    main_before = backbone_state(algo)
    delta2 = algo.updates.delta(2)["backbone"]
    algo.begin_task(tasks[2])
    # reference: every unlearnable task but the current one, the unlearned task 1 too (a copy of the live weights)
    assert list(algo.backups) == (["1", "2"] if backup_unlearned else ["2"])
    backup = algo.backups["2"]
    torch.testing.assert_close(backup.layers[0].weight, main_before["fc.0.weight"] - delta2["fc.0.weight"])
    assert any(p is backup.layers[0].weight for g in algo.optimizer.param_groups for p in g["params"])
    if backup_unlearned:
        for key, v in algo.backups["1"].state_dict().items():
            assert torch.equal(v, main_before[f"fc.{key.split('.')[1]}.{key.split('.')[2]}"])


@pytest.mark.parametrize("backup_unlearned", [True, False])
def test_backup_loss_is_the_mean_over_the_backup_set_unlearned_tasks_included(tmp_path, tasks, one_thread,
                                                                              backup_unlearned):
    cfg, algo = build("amnesiachat", tmp_path, tasks, replay="false", backup_unlearned=str(backup_unlearned).lower())
    unlearned = learn(algo, cfg, tasks, 2)
    algo.set_unlearning_state(UnlearningProtocol.from_config(cfg).state(3, set(unlearned)))
    algo.begin_task(tasks[2])
    x, y = tasks[2].transform(tasks[2].train_x[:32]), tasks[2].train_y[:32]
    masks = algo.task_masks[2]  # any masks serve as the current ones here
    with torch.no_grad():
        loss = algo.extra_loss(x, y, engine.Step(0, 1, 0, 3), masks, torch.zeros(32, 2))
        # backup 1 is a copy of the live weights, so its routed path is the main network's own forward
        ce1 = torch.nn.functional.cross_entropy(algo.heads(algo.backbone(x, masks), 3), y)
        ce2 = torch.nn.functional.cross_entropy(
            algo.heads(routed_forward(algo.backbone, algo.backups["2"], x, algo.task_masks[2], masks), 3), y)
    assert not torch.isclose(ce1, ce2)
    torch.testing.assert_close(loss, (ce1 + ce2) / 2 if backup_unlearned else ce2)


@pytest.mark.parametrize("method", ["amnesiac_der", "amnesiac_derpp", "clpu_derpp", "amnesiachat"])
def test_buffer_slots_freed_by_unlearning_go_to_the_next_examples_at_once(method, tmp_path, tasks, one_thread):
    _, algo = build(method, tmp_path, tasks, buffer_size=20)  # reference default refill_freed_slots: true
    width = tasks[0].num_classes
    for task_id in (1, 2):
        algo.buffer.add(torch.randn(30, 4), torch.zeros(30, dtype=torch.long), torch.zeros(30, width), task_id)
    algo.buffer.delete_task(1)
    freed = 20 - len(algo.buffer)
    assert freed > 0
    algo.buffer.add(torch.randn(freed, 4), torch.zeros(freed, dtype=torch.long), torch.zeros(freed, width), 3)
    assert len(algo.buffer) == 20 and algo.buffer.task_counts()[3] == freed


def test_backup_weights_are_never_adjusted_and_main_path_gradient_is(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiachat", tmp_path, tasks, architecture="HAT")
    learn(algo, cfg, tasks, 1)
    algo.set_unlearning_state(UnlearningProtocol.from_config(cfg).state(2, set()))
    algo.begin_task(tasks[1])
    x, y = tasks[1].transform(tasks[1].train_x[:32]), tasks[1].train_y[:32]
    backup_before = [p.clone() for p in algo.backups["1"].parameters()]
    protected = parameter_wise(algo.task_masks[1], algo.layers, "min")
    weight_before = algo.layers[1].weight.detach().clone()
    algo.train()
    algo.train_step(x, y, engine.Step(1, 3, 0, 2))
    assert any(not torch.equal(p, q) for p, q in zip(algo.backups["1"].parameters(), backup_before))
    frozen = protected[1][0] == 1  # HAT: weights between two units of task 1 stay exactly as they were
    assert frozen.any() and torch.equal(algo.layers[1].weight[frozen], weight_before[frozen])


def test_unlearned_task_leaves_the_buffer(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiachat", tmp_path, tasks)
    learn(algo, cfg, tasks, 2, unlearn=False)
    assert 1 in algo.buffer.task_counts()
    algo.unlearn([1])
    assert 1 not in algo.buffer.task_counts() and 2 in algo.buffer.task_counts()


@pytest.mark.parametrize("recycle, free_after", [("after_next_task", 4), ("next_task", 3)])
def test_freed_units_leave_the_cumulative_mask_when_the_setting_says(tmp_path, tasks, recycle, free_after,
                                                                    one_thread):
    cfg, algo = build("amnesiachat", tmp_path, tasks, recycle=recycle, replay_repair="false")
    protocol = UnlearningProtocol({3: [1]}, 4, 5)
    unlearned = learn(algo, cfg, tasks, 3, protocol)
    only_1 = [m1 * (1 - torch.maximum(m2, m3)) for m1, m2, m3 in
              zip(algo.task_masks[1], algo.task_masks[2], algo.task_masks[3])]
    assert sum(o.sum() for o in only_1) > 0

    def free_now():
        return all(torch.all(c[o == 1] == 0) for c, o in zip(algo.cumulative, only_1))

    assert free_now() == (free_after == 3)  # seen by task 4 (its protection is computed at its start) or not
    learn(algo, cfg, tasks, 4, protocol, unlearned)
    only_1 = [o * (1 - m4) for o, m4 in zip(only_1, algo.task_masks[4])]  # task 4 may have taken some of them
    assert free_now()  # from the end of task 4 on, in both settings: task 5 sees them free
    assert all(s[o == 1].min() >= 1 for s, o in zip(algo.summative, only_1))  # AdaHAT's summative mask keeps them


def test_repair_moves_only_weights_between_unlearned_and_replayed_units(tmp_path, tasks, one_thread):
    """Task 2 unlearned at task 3, backup compensation off: without repair the network is exactly theta - Delta^(2);
    repair (replayed task: 3) then moves weighted-layer entries between two units of both task 2 and task 3 and no
    other (a fresh Adam, so no moments left from the task move the others), nearly all of those, the replayed
    task's head but no other head, and it lowers the replay loss on every stored task-3 example."""
    cfg, algo = build("amnesiachat", tmp_path, tasks, backup_compensation="false", repair_steps="5")
    learn(algo, cfg, tasks, 3, unlearn=False)
    algo.task_id = 3
    expected = {k: v - algo.updates.delta(2)["backbone"][k] for k, v in backbone_state(algo).items()}
    algo.optimizer = torch.optim.Adam(algo.parameters(), lr=1e-3)  # no momentum left: only real gradients move
    unrepaired = copy.deepcopy(algo)
    unrepaired.cfg = {**cfg, "replay_repair": False}
    unrepaired.unlearn([2])
    algo.unlearn([2])
    for k, v in unrepaired.backbone.state_dict().items():
        assert torch.equal(v, expected[k]), k

    allowed = parameter_wise([torch.minimum(a, b) for a, b in zip(algo.task_masks[2], algo.task_masks[3])],
                             algo.layers, "min")
    before = dict(unrepaired.named_parameters())
    moved = {name: p != before[name] for name, p in algo.named_parameters()}
    moved_allowed = total_allowed = 0
    for l, (sel_w, sel_b) in enumerate(allowed):
        for suffix, sel in (("weight", sel_w), ("bias", sel_b)):
            changed = moved[f"backbone.fc.{l}.{suffix}"]
            assert not changed[sel == 0].any(), f"fc.{l}.{suffix} moved outside the allowed entries"
            assert changed[sel == 1].any(), f"fc.{l}.{suffix}: repair moved none of its allowed entries"
            moved_allowed, total_allowed = moved_allowed + int(changed.sum()), total_allowed + int(sel.sum())
    assert moved_allowed >= 0.9 * total_allowed, (moved_allowed, total_allowed)
    assert {name for name, m in moved.items() if m.any() and not name.startswith("backbone.fc.")} == \
        {"heads.heads.2.weight", "heads.heads.2.bias"}  # task 3's head; embeddings and the other heads stay

    buffer = algo.buffer
    stored = buffer.task_ids == 3
    assert sorted(buffer.task_counts()) == [1, 3] and int(stored.sum()) > 20
    batch = ReplayBatch(buffer.x[stored], buffer.y[stored], buffer.logits[stored], buffer.task_ids[stored],
                        buffer.widths[stored])
    with torch.no_grad():
        loss_before, loss_after = unrepaired.replay_term(batch).item(), algo.replay_term(batch).item()
    assert loss_after < loss_before - 1e-3, (loss_before, loss_after)


def test_amnesiac_finetuning_unlearning_is_update_deletion_and_ewc_forgets_its_fisher(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiac_finetuning", tmp_path, tasks)
    learn(algo, cfg, tasks, 2, unlearn=False)
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    delta = algo.updates.delta(1)
    algo.unlearn([1])
    for k, v in algo.backbone.state_dict().items():
        torch.testing.assert_close(v, before[f"backbone.{k}"] - delta["backbone"][k])
    head1 = algo.heads.head(1)
    torch.testing.assert_close(head1.weight, algo.updates.base["heads"]["heads.0.weight"])  # back to its init

    cfg, ewc = build("amnesiac_ewc", tmp_path, tasks)
    learn(ewc, cfg, tasks, 3, unlearn=False)
    fisher3 = [f.clone() for f in ewc.per_task[3][0]]
    ewc.unlearn([2])
    assert sorted(ewc.per_task) == [1, 3] and ewc.num_fishers == 2
    for total, f1, f3 in zip(ewc.fisher_sum, ewc.per_task[1][0], fisher3):
        torch.testing.assert_close(total, f1 + f3)


@pytest.mark.parametrize("method", ["amnesiac_finetuning", "amnesiachat"])
@pytest.mark.parametrize("alias", [True, False])
def test_deleting_an_update_also_moves_the_current_head_only_with_the_reference_alias(method, alias, tmp_path, tasks,
                                                                                       one_thread):
    extra = {"backup_compensation": "false", "replay_repair": "false"} if method == "amnesiachat" else {}
    cfg, algo = build(method, tmp_path, tasks, delete_from_current_head=str(alias).lower(), **extra)
    learn(algo, cfg, tasks, 3, unlearn=False)
    assert algo.task_id == 3
    head3 = {k: v.clone() for k, v in algo.heads.head(3).state_dict().items()}
    own2 = {k: algo.updates.delta(2)["heads"][f"heads.1.{k}"] for k in head3}  # task 2's change of its own head
    own3 = {k: algo.updates.delta(3)["heads"][f"heads.2.{k}"] for k in head3}
    assert all(own2[k].abs().sum() > 0 for k in own2)
    algo.unlearn([2])
    for k, v in algo.heads.head(3).state_dict().items():  # head 3 did not exist for task 2's record but for the alias
        torch.testing.assert_close(v, head3[k] - own2[k] if alias else head3[k])
    algo.unlearn([3])  # the current task itself: its own update once, whatever the alias
    for k, v in algo.heads.head(3).state_dict().items():
        torch.testing.assert_close(v, (head3[k] - own2[k] if alias else head3[k]) - own3[k])


def test_the_current_head_alias_does_nothing_with_one_shared_head(tmp_path, tasks, one_thread):
    cfg, algo = build("amnesiac_finetuning", tmp_path, tasks, setting="dil")
    learn(algo, cfg, tasks, 3, unlearn=False)
    before = {k: v.clone() for k, v in algo.heads.head(3).state_dict().items()}
    delta2 = algo.updates.delta(2)["heads"]
    algo.unlearn([2])
    for k, v in algo.heads.head(3).state_dict().items():
        torch.testing.assert_close(v, before[k] - delta2[f"heads.0.{k}"])


# ----- the protocol end to end --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["independent", "amnesiac_finetuning", "amnesiac_lwf", "amnesiac_ewc",
                                    "amnesiac_der", "amnesiac_derpp", "clpu_derpp", "amnesiachat"])
def test_every_unlearning_method_runs_with_both_references(method, tmp_path, one_thread):
    cfg = make_cfg(method, tmp_path)
    folder = runner.run(cfg, METHODS)
    metrics = records.read_record(folder)["metrics"]
    assert metrics["unlearned"] == [1, 2, 5]
    for key in ("aa", "aa_remaining", "dd", "dd_euclidean", "dd_cosine", "dd_manhattan", "ag"):
        assert metrics[key] is not None, key
    assert sorted(metrics["dd_per_task"]) == ["1", "2", "3", "4", "5"]
    refs = sorted(p.name.split("-")[1] for p in folder.parent.parent.iterdir() if p.name.startswith("ref-"))
    assert refs == ["original", "retrain"]
    retrain = next(p for p in folder.parent.parent.iterdir() if p.name.startswith("ref-retrain"))
    acc = records.read_acc(retrain / "seed1")
    assert len(acc) == 2 and all(math.isnan(a) for a in acc[-1][:2])  # only tasks 3 and 4 trained; 1, 2 are NaN
    assert (retrain / "seed1" / "features.pt").is_file()


@pytest.mark.parametrize("task_seeding", ["per_task", "per_run"])
def test_independent_unlearning_is_exact_dd_zero_and_ag_zero(tmp_path, one_thread, task_seeding):
    cfg = make_cfg("independent", tmp_path, task_seeding=task_seeding)
    metrics = records.read_record(runner.run(cfg, METHODS))["metrics"]
    if task_seeding == "per_run":  # the paper's code: the retrain reference draws other numbers, DD is seed noise
        assert metrics["dd"] > 0.01
        return
    # the per-task seeds make task 3 and 4 draw the same numbers in the run and in its retrain reference
    assert metrics["dd"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["dd_euclidean"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["ag"] == 0.0 and all(metrics["ag_per_task"][t] == 0.0 for t in ("3", "4"))


def test_references_are_shared_by_variants_that_differ_only_in_how_they_unlearn(tmp_path):
    a = make_cfg("amnesiachat", tmp_path)
    b = make_cfg("amnesiachat", tmp_path, replay_repair="false", run_name="no_repair")
    c = make_cfg("amnesiachat", tmp_path, buffer_size="20")
    folder = lambda cfg, kind: records.run_folder(runner.unlearning_reference_config(cfg, kind, METHODS))
    assert folder(a, "retrain") == folder(b, "retrain") != folder(c, "retrain")
    assert folder(a, "original") != folder(a, "retrain")


def test_a_method_that_cannot_unlearn_is_refused(tmp_path):
    # refused when the configuration is resolved, before any data or reference run
    with pytest.raises(config.ConfigError, match="cannot unlearn"):
        make_cfg("finetuning", tmp_path)
    with pytest.raises(config.ConfigError, match="no longer unlearnable"):
        make_cfg("amnesiachat", tmp_path, unlearning_requests="5:1")
    assert not any(tmp_path.iterdir())


def test_main_run_metrics_json_is_strict(tmp_path, one_thread):
    cfg = make_cfg("amnesiac_finetuning", tmp_path)
    folder = runner.run(cfg, METHODS)
    payload = json.loads((folder / "metrics.json").read_text())
    assert payload["metrics"]["update_store_peak_mb"] > 0


@pytest.mark.parametrize("method", ["amnesiac_derpp", "amnesiachat"])
def test_domain_incremental_runs_unlearn_through_the_shared_head(method, tmp_path, one_thread):
    cfg = make_cfg(method, tmp_path, setting="dil")
    algo_cls = METHODS[method]
    torch.manual_seed(cfg["seed"])
    algo = algo_cls(cfg, [4] * 5, (1, 28, 28))
    assert len(algo.heads.heads) == 1
    metrics = records.read_record(runner.run(cfg, METHODS))["metrics"]
    assert metrics["unlearned"] == [1, 2, 5] and metrics["dd"] is not None and metrics["ag"] is not None


def test_amnesiachat_on_resnet18_routes_backups_and_unlearns(tmp_path, one_thread):
    cfg = make_cfg("amnesiachat", tmp_path, benchmark="synthetic_rgb", num_tasks=3, train_subset=64,
                   unlearning_requests="3:2", repair_steps=2, batch_size=32)
    assert cfg["backbone"] == "resnet18"
    metrics = records.read_record(runner.run(cfg, METHODS))["metrics"]
    assert metrics["unlearned"] == [2] and 0.0 <= metrics["dd"] <= 1.0
    assert metrics["backup_states_mb"] > 0  # backups of task 1 and 2 were trained and saved


def test_a_reference_made_before_an_unlearning_only_setting_existed_is_reused(tmp_path):
    cfg = runner.unlearning_reference_config(make_cfg("clpu_derpp", tmp_path), "retrain", METHODS)
    folder = tmp_path / "ref"
    folder.mkdir()
    old = {k: v for k, v in cfg.items() if k != "replay_temporary"}  # written before the key existed
    (folder / "config.yaml").write_text(config.dump(old))
    records.check_same_config(folder, cfg)  # the reference never unlearns: the key cannot have changed it
    main = make_cfg("clpu_derpp", tmp_path)
    (folder / "config.yaml").write_text(config.dump({k: v for k, v in main.items() if k != "replay_temporary"}))
    with pytest.raises(records.RecordError, match="replay_temporary"):
        records.check_same_config(folder, main)  # a main run does unlearn: it must be retrained


@pytest.mark.parametrize("setting", ["til", "dil"])
def test_a_run_made_before_a_task_incremental_only_setting_existed_is_reused_outside_til(tmp_path, setting):
    cfg = make_cfg("amnesiac_derpp", tmp_path, setting=setting)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(config.dump({k: v for k, v in cfg.items() if k != "delete_from_current_head"}))
    if setting == "dil":  # one shared head: the key does nothing there
        records.check_same_config(folder, cfg)
    else:
        with pytest.raises(records.RecordError, match="delete_from_current_head"):
            records.check_same_config(folder, cfg)


class _Record:
    """The two calls of a run record that the engine's task loop makes."""

    def log(self, _message):
        pass

    def add_task(self, *_args):
        pass


@pytest.mark.parametrize("head_init", ["upfront", "on_arrival"])
def test_head_init_redraws_a_task_head_only_on_arrival(tmp_path, tasks, one_thread, head_init):
    cfg, algo = build("independent", tmp_path, tasks, head_init=head_init, task_seeding="per_run")
    built = [copy.deepcopy(algo.heads.head(t).state_dict()) for t in range(1, 6)]
    at_start = {}
    begin = algo.begin_task

    def spy(task):  # the head of the task as it is when the task starts training
        at_start[task.id] = copy.deepcopy(algo.heads.head(task.id).state_dict())
        begin(task)

    algo.begin_task = spy
    engine.run_continual_unlearning(algo, tasks[:3], cfg, _Record(), UnlearningProtocol.from_config(cfg))
    for t in (1, 2, 3):
        same = all(torch.equal(built[t - 1][k], at_start[t][k]) for k in built[t - 1])
        assert same == (head_init == "upfront"), t
    assert all(torch.equal(built[4][k], algo.heads.head(5).state_dict()[k]) for k in built[4])  # not arrived yet
