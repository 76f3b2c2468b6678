"""Every registered method end to end on the synthetic benchmark, the reference runs, and per-method invariants."""

import copy
import csv
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from baselines import METHODS
from baselines.ewc import EWC
from baselines.lwf import LwF, distillation_loss
from common import benchmarks, config, engine, planner, records, runner
from common.algorithm import Step
from common.data import RawData

QUICK = {"benchmark": "synthetic", "num_tasks": "2", "epochs": "1", "threads": "1"}


def make_cfg(method, tmp_path, **extra):
    cli = {"method": method, **QUICK, "out_dir": str(tmp_path), "references": "none", **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def quiet(_message):
    pass


def train_one_task(algo, task, cfg):
    """What the engine does for one task, without a record."""
    algo.begin_task(task)
    engine.train_task(algo, task, cfg, quiet)
    algo.end_task(task)


def build(method, tmp_path, num_tasks=2, **extra):
    cfg = make_cfg(method, tmp_path, num_tasks=num_tasks, **extra)
    tasks = benchmarks.build_benchmark("synthetic", num_tasks, train_subset=cfg["train_subset"])
    torch.manual_seed(cfg["seed"])
    algo = METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
    return cfg, tasks, algo


# --- every registered method through the runner -------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_and_writes_a_full_record(method, tmp_path, capsys):
    cfg = make_cfg(method, tmp_path)
    folder = runner.run(cfg, METHODS)
    assert folder == records.run_folder(cfg) and folder.is_relative_to(tmp_path)
    for name in ("config.yaml", "acc.csv", "metrics.json", "log.txt", "done"):
        assert (folder / name).is_file(), name
    if method != "random":  # Random trains no epoch, so it has no train curve
        assert (folder / "train_curve.csv").is_file()
        curve = read_rows(folder / "train_curve.csv")
        assert curve[0] == ["task", "epoch", "train_loss", "val_loss", "val_acc", "seconds"]

    # acc.csv: header with N test columns; row t holds t accuracies (multi-task references: one row of N)
    rows = read_rows(folder / "acc.csv")
    assert rows[0] == ["after_training_task", "average_accuracy", "test_on_task_1", "test_on_task_2"]
    if getattr(METHODS[method], "multitask", False):
        assert [int(r[0]) for r in rows[1:]] == [2] and len(rows[1]) == 4
    else:
        assert [int(r[0]) for r in rows[1:]] == [1, 2]
        for t, row in enumerate(rows[1:], start=1):
            assert len(row) == 2 + t
            accs = [float(v) for v in row[2:]]
            assert all(0.0 <= a <= 1.0 for a in accs)
            assert float(row[1]) == pytest.approx(sum(accs) / t)
        assert records.read_acc(folder) == [[float(v) for v in r[2:]] for r in rows[1:]]

    payload = json.loads((folder / "metrics.json").read_text())
    assert payload["seconds"] > 0 and payload["peak_memory_mb"] > 0
    assert payload["environment"]["git_commit"]
    assert 0.0 <= payload["metrics"]["aa"] <= 1.0
    if not getattr(METHODS[method], "multitask", False):
        assert payload["metrics"]["fr"] is None and payload["metrics"]["fwt"] is None
        assert "references=none" in payload["notes"]["fr_fwt"]

    saved = records.read_record(folder)["config"]
    assert saved == cfg
    assert "metrics" in (folder / "log.txt").read_text()


def test_references_auto_created_then_reused(tmp_path, capsys):
    cfg = make_cfg("finetuning", tmp_path, references="auto")
    folder = runner.run(cfg, METHODS)
    out = capsys.readouterr().out
    ref_root = tmp_path / "references" / "synthetic-2" / config.reference_key(cfg)
    dones = {}
    for ref in ("joint", "independent", "random"):
        ref_folder = ref_root / ref / "seed1"
        assert records.is_done(ref_folder), ref_folder
        assert f"reference {ref}: training into" in out
        dones[ref] = (ref_folder / "done").stat().st_mtime_ns
    metrics = records.read_record(folder)["metrics"]
    for key in ("aa", "bwt", "fwt", "fr", "fr_independent"):
        assert isinstance(metrics[key], float), key

    # another method with the same reference key reuses them
    cfg_fix = make_cfg("fix", tmp_path, references="auto", batch_norm="true")
    assert config.reference_key(cfg_fix) == config.reference_key(cfg)
    runner.run(cfg_fix, METHODS)
    assert "training into" not in capsys.readouterr().out
    for ref in ("joint", "independent", "random"):
        assert (ref_root / ref / "seed1" / "done").stat().st_mtime_ns == dones[ref]
    assert isinstance(records.read_record(records.run_folder(cfg_fix))["metrics"]["fr"], float)
    assert not list(tmp_path.rglob("*.lock"))

    # metrics of the main run follow from the stored matrices
    from common.metrics import all_metrics
    refs = {r: records.read_acc(ref_root / r / "seed1") for r in ("joint", "independent", "random")}
    expected = all_metrics(records.read_acc(folder), **refs)
    assert metrics == pytest.approx(expected)


# a valid other value where "the next one the declaration allows" does not fit the key (a name, a data set)
OTHER_VALUE = {"benchmark": "rmnist", "dataset": "kmnist", "datasets": "mnist,fashion_mnist", "class_order_seed": 3,
               "device": "cuda", "data_dir": "elsewhere"}
# the constructor keys only act with their constructor
BASE_FOR = {"dataset": {"benchmark": "permuted", "dataset": "mnist"},
            "class_order_seed": {"benchmark": "split", "dataset": "mnist"},
            "datasets": {"benchmark": "combined", "datasets": "mnist,kmnist"}}


def other_value(key, value):
    """A value of engine key `key` other than `value` that its declaration allows."""
    if key in OTHER_VALUE:
        return OTHER_VALUE[key]
    spec = config.as_hparam(config.ENGINE_KEYS[key])
    if spec.choices:
        return next(c for c in spec.choices if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value - 1 if value > 1 else value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.01
    raise TypeError(f"no other value known for engine key {key!r}: add one to OTHER_VALUE")


def reference_folders(cli):
    cfg = config.resolve({k: str(v) for k, v in cli.items()}, METHODS)
    refs = planner.reference_configs(cfg, METHODS)
    assert sorted(refs) == sorted(config.REFERENCES)
    return cfg, refs, {name: records.run_folder(ref) for name, ref in refs.items()}


def later_key(monkeypatch):
    """Declare an engine key as a later commit would (no special-casing anywhere)."""
    monkeypatch.setitem(config.ENGINE_KEYS, "later_key", config.Hparam(3, "a key declared later", ge=0))
    return "later_key"


@pytest.mark.parametrize("key", [k for k in config.reference_keys() if k != "out_dir"] + ["(declared later)"])
def test_references_keyed_by_every_reference_key(key, tmp_path, monkeypatch):
    """A reference takes over every reference key of its main run; changing one that makes runs distinct moves the
    three reference folders (two main runs never share references they did not both train with), changing an
    execution key leaves them where they are (out_dir, their root, is left out)."""
    if key == "(declared later)":
        key = later_key(monkeypatch)
    base_cli = {"method": "finetuning", "benchmark": "synthetic", "out_dir": str(tmp_path), "references": "auto",
                **BASE_FOR.get(key, {})}
    base, _, before = reference_folders(base_cli)
    value = other_value(key, base[key])
    changed, refs, after = reference_folders({**base_cli, key: value})
    assert changed[key] == value != base[key]
    assert all(ref[key] == value for ref in refs.values()), key  # passed on to every reference
    for name in config.REFERENCES:
        if config.is_distinct(key):
            assert after[name] != before[name], (key, after[name])
        else:
            assert after[name] == before[name], (key, after[name])


def test_runs_differing_in_a_reference_key_train_their_own_references(tmp_path, capsys):
    cfg = make_cfg("finetuning", tmp_path, references="auto", train_subset=32)
    runner.run(cfg, METHODS)
    capsys.readouterr()
    cfg5 = make_cfg("finetuning", tmp_path, references="auto", train_subset=32, run_name="pat5", plateau_patience=5)
    runner.run(cfg5, METHODS)
    out = capsys.readouterr().out
    for ref in config.REFERENCES:
        assert f"reference {ref}: training into" in out  # not reused from the first run
        folders = [records.run_folder(config.resolve(config.reference_config(c, ref), METHODS)) for c in (cfg, cfg5)]
        assert folders[0] != folders[1] and all(records.is_done(f) for f in folders)
        assert [records.read_record(f)["config"]["plateau_patience"] for f in folders] == [10, 5]


def test_resnet18_path(tmp_path):
    cfg = config.resolve({"method": "finetuning", "benchmark": "synthetic_rgb", "train_subset": "32",
                          "out_dir": str(tmp_path), "references": "none", "threads": "1"}, METHODS)
    assert cfg["backbone"] == "resnet18" and cfg["batch_norm"] is True
    folder = runner.run(cfg, METHODS)
    assert records.is_done(folder)
    assert [len(r) for r in records.read_acc(folder)] == [1, 2]


# --- per-method invariants ----------------------------------------------------------------------------------------


def test_independent_keeps_old_task_predictions(tmp_path):
    cfg, (t1, t2), algo = build("independent", tmp_path, batch_norm="true")
    init = copy.deepcopy(algo.backbone.state_dict())
    x1 = t1.transform(t1.test_x)
    train_one_task(algo, t1, cfg)
    algo.eval()
    after_1 = algo.predict(x1, 1).clone()
    algo.begin_task(t2)
    # task 2 starts from the same initial backbone weights (and BN statistics)
    for k, v in algo.backbone.state_dict().items():
        assert torch.equal(v, init[k]), k
    engine.train_task(algo, t2, cfg, quiet)
    algo.end_task(t2)
    algo.eval()
    assert torch.equal(algo.predict(x1, 1), after_1)
    assert not torch.equal(algo.task_backbones[2].fc[0].weight, algo.task_backbones[1].fc[0].weight)


def test_fix_freezes_backbone_after_task_1(tmp_path):
    cfg, (t1, t2), algo = build("fix", tmp_path)
    assert cfg["batch_norm"] is True
    train_one_task(algo, t1, cfg)
    backbone_1 = {n: p.detach().clone() for n, p in algo.backbone.named_parameters()}
    head1 = algo.heads.head(1).weight.detach().clone()
    head2 = algo.heads.head(2).weight.detach().clone()
    train_one_task(algo, t2, cfg)
    for n, p in algo.backbone.named_parameters():
        assert torch.equal(p, backbone_1[n]), n
    assert torch.equal(algo.heads.head(1).weight, head1)
    assert not torch.equal(algo.heads.head(2).weight, head2)


def balanced_synthetic(num_tasks, data_dir, num_classes=4, n_train=200, n_test=1000):
    """Like benchmarks.synthetic, but the projection acts on the centred image, so classes are balanced."""
    g = torch.Generator().manual_seed(99)
    tasks = []
    for t in range(1, num_tasks + 1):
        x = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
        y = ((x.flatten(1).float() - 127.5) @ torch.randn(784, num_classes, generator=g)).argmax(1)
        raw = RawData(f"bal-{t}", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes, (0.5,), (0.29,))
        tasks.append(benchmarks.make_task(t, raw.name, num_classes, raw, raw.train_x, raw.train_y, raw.test_x,
                                          raw.test_y))
    return tasks


def test_random_is_near_chance(tmp_path, monkeypatch):
    # benchmarks.synthetic has very unbalanced classes (a constant guess scores 0.6-0.8), so chance level is
    # checked on a balanced variant: 4 classes -> 0.25
    monkeypatch.setitem(benchmarks.BUILDERS, "synthetic", balanced_synthetic)
    tasks = balanced_synthetic(3, "")
    for t in tasks:
        assert (torch.bincount(t.test_y, minlength=4) > 200).all()
    folder = runner.run(make_cfg("random", tmp_path, num_tasks=3), METHODS)
    (row,) = records.read_acc(folder)
    assert len(row) == 3
    aa = sum(row) / 3
    assert abs(aa - 0.25) < 0.08, row
    assert "no training" in (folder / "log.txt").read_text()


# --- EWC --------------------------------------------------------------------------------------------------------


def ce_grads(algo, x, y, task_id):
    """Gradient of the batch-mean cross-entropy w.r.t. the backbone parameters, on a copy of the model."""
    model = copy.deepcopy(algo)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, task_id), y).backward()
    return [p.grad.detach().clone() for p in model.backbone.parameters()]


def test_ewc_fisher_penalty_and_gradient(tmp_path):
    torch.manual_seed(0)
    lam = 5000.0
    cfg = config.resolve({"method": "ewc", "benchmark": "synthetic", "num_tasks": "2", "ewc_lambda": str(lam),
                          "out_dir": str(tmp_path)}, METHODS)
    algo = EWC(cfg, [4, 4], (1, 28, 28))
    algo.train()
    assert cfg["batch_norm"] is True
    assert algo.penalty().item() == 0.0  # no Fisher yet

    # task 1: two steps with batches of 8 and 4 samples; Fisher = (8 g1^2 + 4 g2^2) / 12, g at the pre-step weights
    algo.begin_task(SimpleNamespace(id=1))
    fisher = [torch.zeros_like(p) for p in algo.backbone.parameters()]
    for b, batch in enumerate((8, 4)):
        x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 4, (batch,))
        g = ce_grads(algo, x, y, 1)
        for f, gi in zip(fisher, g):
            f.add_(batch * gi.square())
        stats = algo.train_step(x, y, Step(b, 2, 0, 1))
        assert stats["loss"] == pytest.approx(stats["ce"].item())  # no penalty during task 1
    fisher = [f / 12 for f in fisher]
    algo.end_task(SimpleNamespace(id=1))
    theta_star = [p.detach().clone() for p in algo.backbone.parameters()]
    for f_expected, f in zip(fisher, algo.fisher_sum):
        torch.testing.assert_close(f, f_expected, rtol=1e-5, atol=1e-12)
    assert sum(f.sum() for f in fisher) > 0

    # at theta = theta*: penalty 0 (relative to the size of its terms, since it is computed expanded)
    scale = 0.5 * lam * sum((f * t * t).sum().item() for f, t in zip(fisher, theta_star))
    assert abs(algo.penalty().item()) <= 1e-5 * scale + 1e-6

    # perturb theta; the added gradient is lambda * F * (theta - theta*), the penalty 1/2 lambda sum F delta^2
    algo.begin_task(SimpleNamespace(id=2))
    deltas = [0.01 * torch.randn_like(p) for p in algo.backbone.parameters()]
    with torch.no_grad():
        for p, d in zip(algo.backbone.parameters(), deltas):
            p.add_(d)
    perturbed = [p.detach().clone() for p in algo.backbone.parameters()]
    expected_penalty = 0.5 * lam * sum((f * (p - t) ** 2).sum().item()
                                       for f, p, t in zip(fisher, perturbed, theta_star))
    assert algo.penalty().item() == pytest.approx(expected_penalty, rel=1e-3, abs=1e-5 * scale)

    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 4, (8,))
    g = ce_grads(algo, x, y, 2)
    stats = algo.train_step(x, y, Step(0, 1, 0, 2))
    assert stats["loss"].item() == pytest.approx(stats["ce"].item() + expected_penalty, rel=1e-3, abs=1e-5 * scale)
    for p, gi, f, pert, t in zip(algo.backbone.parameters(), g, fisher, perturbed, theta_star):
        added = p.grad - gi
        expected = lam * f * (pert - t)
        # f * theta - F theta* is computed in float32: allow rounding of the size of lam * F * |theta| * eps
        tol = 1e-5 * (lam * f * pert.abs()).max().item() + 1e-7
        torch.testing.assert_close(added, expected, rtol=1e-3, atol=tol)
        assert not torch.equal(p.detach(), pert)  # the optimizer did step


# --- LwF --------------------------------------------------------------------------------------------------------


def test_distillation_loss_hand_example():
    s3 = 3 ** 0.5
    # student logits (0, 0): softmax (1/2, 1/2) -> ^(1/2) and renormalised: still (1/2, 1/2) -> + 1e-5
    # teacher logits (log 3, 0): softmax (3/4, 1/4) -> ^(1/2): (sqrt3/2, 1/2) -> renormalised (sqrt3, 1)/(sqrt3+1)
    # loss = -(sqrt3/(sqrt3+1) + 1/(sqrt3+1)) * log(1/2 + 1e-5) = -log(0.50001)
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[torch.log(torch.tensor(3.0)).item(), 0.0]])
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(-torch.log(torch.tensor(0.50001)).item(),
                                                                            rel=1e-6)
    # swapped: student softened (sqrt3, 1)/(sqrt3+1), teacher (1/2, 1/2)
    # loss = -1/2 * (log(sqrt3/(sqrt3+1) + 1e-5) + log(1/(sqrt3+1) + 1e-5)) = 0.73036...
    p1, p2 = s3 / (s3 + 1) + 1e-5, 1 / (s3 + 1) + 1e-5
    expected = -0.5 * (torch.log(torch.tensor(p1)) + torch.log(torch.tensor(p2))).item()
    assert distillation_loss(teacher, student, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.73036, abs=1e-4)
    # a batch is the mean of its rows
    both = distillation_loss(torch.cat([student, teacher]), torch.cat([teacher, student]), 2.0)
    assert both.item() == pytest.approx((-torch.log(torch.tensor(0.50001)).item() + expected) / 2, rel=1e-6)
    # T = 1: plain soft-target cross-entropy (+1e-5 on the student's probabilities)
    s, t = torch.tensor([[1.0, -1.0, 0.5]]), torch.tensor([[0.2, 0.3, -2.0]])
    plain = -(t.softmax(1) * (s.softmax(1) + 1e-5).log()).sum()
    assert distillation_loss(s, t, 1.0).item() == pytest.approx(plain.item(), rel=1e-6)


def lwf_after_task_1(tmp_path, distill_gradient, cfg=None):
    torch.manual_seed(0)
    cfg = cfg or config.resolve({"method": "lwf", "benchmark": "synthetic", "num_tasks": "2", "out_dir": str(tmp_path),
                                 "distill_gradient": str(distill_gradient).lower()}, METHODS)
    algo = LwF(cfg, [4, 4], (1, 28, 28))
    algo.train()
    algo.begin_task(SimpleNamespace(id=1))
    for b in range(3):
        algo.train_step(torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,)), Step(b, 3, 0, 1))
    algo.end_task(SimpleNamespace(id=1))
    algo.begin_task(SimpleNamespace(id=2))
    # a step on task 2 so that student and teacher differ
    algo.train_step(torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,)), Step(0, 2, 0, 2))
    return algo


@pytest.mark.parametrize("distill_gradient", [False, True])
def test_lwf_distillation_gradient_switch(tmp_path, distill_gradient):
    algo = lwf_after_task_1(tmp_path, distill_gradient)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,))
    plain = ce_grads(algo, x, y, 2)
    stats = algo.train_step(x, y, Step(1, 2, 0, 2))
    assert stats["loss"].item() > stats["ce"].item()  # the distillation term is there (logged)
    grads = [p.grad for p in algo.backbone.parameters()]
    if distill_gradient:
        assert any(not torch.allclose(g, p, rtol=1e-4, atol=1e-7) for g, p in zip(grads, plain))
    else:
        for g, p in zip(grads, plain):
            torch.testing.assert_close(g, p, rtol=1e-6, atol=1e-9)
    # the old head never gets a gradient (detached or no_grad)
    assert algo.heads.head(1).weight.grad is None


def test_amnesiac_lwf_defaults_to_the_distillation_gradient_and_lwf_does_not(tmp_path):
    from amnesiachat import METHODS as AMNESIAC_METHODS
    common = {"benchmark": "pmnist", "num_tasks": "2", "out_dir": str(tmp_path)}
    amnesiac = config.resolve({"method": "amnesiac_lwf", **common}, AMNESIAC_METHODS)
    assert amnesiac["distill_gradient"] is True  # AmnesiacHAT reference code
    assert config.resolve({"method": "lwf", **common}, METHODS)["distill_gradient"] is False  # FG-AdaHAT reference
    algo = lwf_after_task_1(tmp_path, None, amnesiac)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,))
    plain = ce_grads(algo, x, y, 2)
    algo.train_step(x, y, Step(1, 2, 0, 2))
    assert any(not torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7) for p, g in zip(algo.backbone.parameters(), plain))


def test_lwf_bn_statistics_move_like_k_plus_1_forwards(tmp_path):
    torch.manual_seed(0)
    cfg = config.resolve({"method": "lwf", "benchmark": "synthetic", "num_tasks": "3", "out_dir": str(tmp_path)},
                         METHODS)
    assert cfg["batch_norm"] is True
    algo = LwF(cfg, [4, 4, 4], (1, 28, 28))
    algo.train()
    for t in (1, 2):
        algo.begin_task(SimpleNamespace(id=t))
        algo.train_step(torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,)), Step(0, 1, 0, t))
        algo.end_task(SimpleNamespace(id=t))
    assert len(algo.teachers) == 2
    algo.begin_task(SimpleNamespace(id=3))
    x, y = torch.randn(32, 1, 28, 28) * 2 + 1, torch.randint(0, 4, (32,))

    # reference: the backbone before the step, forwarded k + 1 = 3 times in training mode with momentum 0.1
    ref = copy.deepcopy(algo.backbone).train()
    with torch.no_grad():
        for _ in range(3):
            ref(x)
    # by hand for the first BN layer: running_mean <- 0.9 running_mean + 0.1 batch mean, three times
    with torch.no_grad():
        h = algo.backbone.fc[0](x.flatten(1))
    mean = algo.backbone.bn[0].running_mean.clone()
    var = algo.backbone.bn[0].running_var.clone()
    for _ in range(3):
        mean = 0.9 * mean + 0.1 * h.mean(0)
        var = 0.9 * var + 0.1 * h.var(0, unbiased=True)

    algo.train_step(x, y, Step(0, 1, 0, 3))
    bn0 = algo.backbone.bn[0]
    torch.testing.assert_close(bn0.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn0.running_var, var, rtol=1e-5, atol=1e-6)
    for got, want in zip(algo.backbone.bn, ref.bn):
        torch.testing.assert_close(got.running_mean, want.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.running_var, want.running_var, rtol=1e-5, atol=1e-6)
        assert got.momentum == 0.1  # restored after the step
    # the teachers are frozen copies: their statistics did not move
    assert all(not t.training for t in algo.teachers.values())


@pytest.mark.parametrize("method", ["ewc", "hat", "adahat", "fgadahat_ig"])
def test_bookkeeping_tensor_lists_follow_the_module(method, tmp_path):
    """`.to(...)` moves the plain tensor lists too (the GPU path relies on it); checked here with a dtype change."""
    from fg_adahat import METHODS as ALL
    cfg = config.resolve({"method": method, "benchmark": "synthetic", "out_dir": str(tmp_path)}, ALL)
    algo = ALL[method](cfg, [4, 4, 4], (1, 28, 28)).to(torch.float64)
    assert algo.tensor_lists
    for name in algo.tensor_lists:
        assert all(t.dtype == torch.float64 for t in getattr(algo, name)), name


@pytest.mark.parametrize("method", ["finetuning", "hat", "fgadahat_icu"])
def test_bf16_autocast_switch_keeps_hat_machinery_fp32(method, tmp_path):
    """amp_bf16 runs (here on the CPU) and leaves embeddings, their gradients and the heads in fp32."""
    from fg_adahat import METHODS as ALL
    cfg = config.resolve({"method": method, "benchmark": "synthetic", "out_dir": str(tmp_path), "num_tasks": "2",
                          "epochs": "1", "references": "none", "amp_bf16": "true"}, ALL)
    folder = runner.run(cfg, ALL)
    assert records.is_done(folder)
    algo = ALL[method](cfg, [4, 4], (1, 28, 28))
    runner.apply_speed_switches(algo, cfg)
    task = benchmarks.build_benchmark("synthetic", 1, "data")[0]
    algo.begin_task(task)
    x, y = task.transform(task.train_x[:8]), task.train_y[:8]
    algo.train_step(x, y, Step(3, 10, 0, 1))
    masks = [algo.backbone.gates(1.0)] if hasattr(algo.backbone, "gates") else []
    assert algo.backbone(x, *masks).dtype == torch.float32
    for e in getattr(algo.backbone, "embeddings", []):
        assert e.dtype == torch.float32 and e.grad.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in algo.heads.parameters())


@pytest.mark.parametrize("method", ["hat", "independent"])
def test_compile_switch_trains_like_eager(method, tmp_path):
    """compile=true (aot_eager: dynamo and AOTAutograd without code generation) gives the eager run's accuracies."""
    from fg_adahat import METHODS as ALL
    acc = {}
    for compile_ in ("false", "true"):
        cfg = config.resolve({"method": method, "benchmark": "synthetic", "out_dir": str(tmp_path / compile_),
                              "num_tasks": "2", "epochs": "1", "references": "none", "compile": compile_,
                              "compile_backend": "aot_eager"}, ALL)
        acc[compile_] = records.read_record(runner.run(cfg, ALL))["acc"]
    assert acc["true"] == acc["false"]


@pytest.mark.parametrize("switch", ["amp_bf16", "compile"])
def test_speed_switches_follow_deep_copies(switch, tmp_path):
    """A deep copy of a switched backbone (LwF teacher, Independent's per-task network) runs on its own weights."""
    cfg = make_cfg("finetuning", tmp_path, **{switch: "true", "compile_backend": "aot_eager"})
    algo = METHODS["finetuning"](cfg, [4, 4], (1, 28, 28))
    runner.apply_speed_switches(algo, cfg)
    x = torch.randn(8, 1, 28, 28)
    before = algo.backbone(x)
    copy_ = copy.deepcopy(algo.backbone)
    with torch.no_grad():
        for p in copy_.parameters():
            p.add_(1.0)
    assert torch.equal(algo.backbone(x), before)
    assert not torch.allclose(copy_(x), before)
