"""Benchmark constructors (permuted, rotated, split, combined over any registered dataset): the fixed names build
bit-identical tasks to the code they replaced, bad combinations fail at configuration time, run folders and
reference runs name the dataset while the fixed names keep theirs (`docs/benchmark_constructors.md`)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from baselines import METHODS
from common import benchmark_config, benchmarks, config, data, records, runner
from common.data import COMBINED, RawData, load_source
from test_combined import synthetic_dir  # noqa: F401  (fixture: every dataset in its real on-disk format)

TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "mean", "std", "permutation")


@pytest.fixture
def root(synthetic_dir, monkeypatch):  # noqa: F811
    monkeypatch.setattr(data.sources, "EXPECTED_SIZES", {})  # the synthetic files are smaller than the real datasets
    return str(synthetic_dir[0])


# --- the builders as they were before the constructors (frozen copies, the reference for bit-identity) ---------------


def legacy_task(task_id, name, num_classes, raw, train_x, train_y, test_x, test_y, permutation=None):
    tr, va = benchmarks.split_indices(len(train_y))
    return benchmarks.Task(task_id, name, num_classes, train_x[tr], train_y[tr], train_x[va], train_y[va], test_x,
                           test_y, torch.tensor(raw.mean), torch.tensor(raw.std), permutation)


def legacy_permuted_mnist(num_tasks, data_dir):
    raw = load_source("mnist", data_dir)
    base = legacy_task(1, "pmnist-1", 10, raw, raw.train_x, raw.train_y, raw.test_x, raw.test_y)
    return [replace(base, id=t, name=f"pmnist-{t}", permutation=benchmarks.pmnist_permutation(t, 784))
            for t in range(1, num_tasks + 1)]


def legacy_rotated_mnist(num_tasks, data_dir):
    raw = load_source("mnist", data_dir)
    angles = [180.0 * k / num_tasks for k in range(num_tasks)]
    return [legacy_task(t, f"rmnist-{a:g}deg", 10, raw, benchmarks.rotate(raw.train_x, a), raw.train_y,
                        benchmarks.rotate(raw.test_x, a), raw.test_y) for t, a in enumerate(angles, start=1)]


def legacy_class_split(source, num_tasks, data_dir, prefix):
    raw = load_source(source, data_dir)
    per_task = raw.num_classes // num_tasks
    tasks = []
    for t in range(1, num_tasks + 1):
        first = (t - 1) * per_task
        train = (raw.train_y >= first) & (raw.train_y < first + per_task)
        test = (raw.test_y >= first) & (raw.test_y < first + per_task)
        tasks.append(legacy_task(t, f"{prefix}-{t}", per_task, raw, raw.train_x[train], raw.train_y[train] - first,
                                 raw.test_x[test], raw.test_y[test] - first))
    return tasks


def legacy_combined(benchmark, num_tasks, data_dir):
    shape, members = COMBINED[benchmark]
    tasks = []
    for t, name in enumerate(members[:num_tasks], start=1):
        raw = load_source(name, data_dir, shape=shape)
        if raw.val_x is not None:
            tasks.append(benchmarks.Task(t, name, raw.num_classes, raw.train_x, raw.train_y, raw.val_x, raw.val_y,
                                         raw.test_x, raw.test_y, torch.tensor(raw.mean), torch.tensor(raw.std)))
        else:
            tasks.append(legacy_task(t, name, raw.num_classes, raw, raw.train_x, raw.train_y, raw.test_x,
                                     raw.test_y))
    return tasks


def legacy_synthetic(num_tasks, image_shape=(1, 28, 28), num_classes=4, n_train=400, n_test=100):
    g = torch.Generator().manual_seed(1234)
    tasks = []
    for t in range(1, num_tasks + 1):
        x = torch.randint(0, 256, (n_train + n_test, *image_shape), generator=g, dtype=torch.uint8)
        proj = torch.randn(x[0].numel(), num_classes, generator=g)
        y = ((x.flatten(1).float() - 127.5) @ proj).argmax(1)
        raw = RawData(f"synthetic-{t}", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes,
                      (0.5,) * image_shape[0], (0.29,) * image_shape[0])
        tasks.append(legacy_task(t, raw.name, num_classes, raw, raw.train_x, raw.train_y, raw.test_x, raw.test_y))
    return tasks


def assert_same_tasks(new, old, names=True):
    assert len(new) == len(old)
    for a, b in zip(new, old):
        assert (a.id, a.num_classes) == (b.id, b.num_classes)
        if names:
            assert a.name == b.name
        for key in TENSORS:
            x, y = getattr(a, key), getattr(b, key)
            assert (x is None) == (y is None), key
            if x is not None:
                assert x.dtype == y.dtype and torch.equal(x, y), (a.name, key)


LEGACY = {
    "pmnist": (3, lambda n, d: legacy_permuted_mnist(n, d)),
    "rmnist": (5, lambda n, d: legacy_rotated_mnist(n, d)),
    "smnist": (5, lambda n, d: legacy_class_split("mnist", n, d, "smnist")),
    "scifar10": (5, lambda n, d: legacy_class_split("cifar10", n, d, "scifar10")),
    "scifar100": (5, lambda n, d: legacy_class_split("cifar100", n, d, "scifar100")),
    "combined20": (20, lambda n, d: legacy_combined("combined20", n, d)),
    "combined5": (5, lambda n, d: legacy_combined("combined5", n, d)),
}
CONSTRUCTED = {"pmnist": ("permuted", {"dataset": "mnist"}), "rmnist": ("rotated", {"dataset": "mnist"}),
               "smnist": ("split", {"dataset": "mnist"}), "scifar10": ("split", {"dataset": "cifar10"}),
               "scifar100": ("split", {"dataset": "cifar100"}),
               "combined20": ("combined", {"datasets": ",".join(COMBINED["combined20"][1])}),
               "combined5": ("combined", {"datasets": ",".join(COMBINED["combined5"][1])})}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_fixed_names_build_the_same_tasks_as_before_and_as_their_constructor(name, root):
    num_tasks, legacy = LEGACY[name]
    fixed = benchmarks.build_benchmark(name, num_tasks, root)
    assert_same_tasks(fixed, legacy(num_tasks, root))
    constructor, keys = CONSTRUCTED[name]
    assert_same_tasks(benchmarks.build_benchmark(constructor, num_tasks, root, **keys), fixed, names=False)
    if name == "pmnist":
        assert all(len(t.permutation) == 784 for t in fixed)
        assert len({tuple(t.permutation.tolist()) for t in fixed}) == num_tasks


def test_synthetic_names_build_the_same_tasks_as_before():
    assert_same_tasks(benchmarks.build_benchmark("synthetic", 3), legacy_synthetic(3))
    assert_same_tasks(benchmarks.build_benchmark("synthetic_rgb", 2), legacy_synthetic(2, (3, 32, 32)))


def test_scifar100_twenty_tasks_same_class_groups(root):
    fixed = benchmarks.build_benchmark("scifar100", 20, root)
    raw = load_source("cifar100", root)
    for t in fixed:  # test labels of the synthetic set are all 99: only task 20 has test images
        assert len(t.test_y) == (len(raw.test_y) if t.id == 20 else 0)
    assert_same_tasks(benchmarks.build_benchmark("split", 20, root, dataset="cifar100"), fixed, names=False)


# --- the constructors over other datasets ---------------------------------------------------------------------------


def test_permuted_kmnist_and_fashion(root):
    for name in ("kmnist", "fashion_mnist"):
        raw = load_source(name, root)
        tasks = benchmarks.build_benchmark("permuted", 3, root, dataset=name)
        tr, va = benchmarks.split_indices(len(raw.train_y))
        assert [t.name for t in tasks] == [f"permuted_{name}-{t}" for t in (1, 2, 3)]
        for t in tasks:
            assert torch.equal(t.train_x, raw.train_x[tr]) and torch.equal(t.val_y, raw.train_y[va])
            assert torch.equal(t.permutation, benchmarks.pmnist_permutation(t.id))
            assert t.mean.tolist() == pytest.approx(list(data.SOURCES[name].mean))


def test_permuted_colour_images_move_whole_pixels(root):
    tasks = benchmarks.build_benchmark("permuted", 2, root, dataset="cifar10")
    x = tasks[1].test_x[:3]
    positions = benchmarks.pmnist_permutation(2, 32 * 32)
    moved = x.view(3, 3, 32 * 32)[:, :, positions].view(3, 3, 32, 32)  # every channel the same permutation
    mean, std = tasks[1].mean.view(1, -1, 1, 1), tasks[1].std.view(1, -1, 1, 1)
    torch.testing.assert_close(tasks[1].transform(x), (moved.float() / 255 - mean) / std)


def test_rotated_kmnist_angles(root):
    raw = load_source("kmnist", root)
    tasks = benchmarks.build_benchmark("rotated", 4, root, dataset="kmnist")
    assert [t.name for t in tasks] == ["rotated_kmnist-0deg", "rotated_kmnist-45deg", "rotated_kmnist-90deg",
                                       "rotated_kmnist-135deg"]
    assert torch.equal(tasks[2].test_x, torch.rot90(raw.test_x, 1, dims=(-2, -1)))
    assert all(t.permutation is None for t in tasks)


def test_split_with_a_seeded_class_order(root):
    raw = load_source("mnist", root)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    assert not torch.equal(order, torch.arange(10))
    tasks = benchmarks.build_benchmark("split", 5, root, dataset="mnist", class_order_seed=7)
    for t in tasks:
        classes = order[2 * (t.id - 1): 2 * t.id].tolist()
        keep = torch.tensor([int(y) in classes for y in raw.train_y])
        expected_y = torch.tensor([classes.index(int(y)) for y in raw.train_y[keep]])
        tr, va = benchmarks.split_indices(int(keep.sum()))
        assert torch.equal(t.train_x, raw.train_x[keep][tr]) and torch.equal(t.train_y, expected_y[tr])
        assert torch.equal(t.val_y, expected_y[va])
        test_keep = torch.tensor([int(y) in classes for y in raw.test_y])
        assert torch.equal(t.test_x, raw.test_x[test_keep])
        assert torch.equal(t.test_y, torch.tensor([classes.index(int(y)) for y in raw.test_y[test_keep]],
                                                  dtype=torch.long))
    numeric = benchmarks.build_benchmark("split", 5, root, dataset="mnist")
    assert_same_tasks(benchmarks.build_benchmark("split", 5, root, dataset="mnist", class_order_seed=-1), numeric)
    assert not torch.equal(tasks[0].train_x, numeric[0].train_x)


def test_split_of_a_dataset_with_its_own_validation_part(root):
    raw = load_source("dtd", root)
    tasks = benchmarks.build_benchmark("split", 47, root, dataset="dtd")
    assert sum(len(t.val_y) for t in tasks) == len(raw.val_y)  # the own part is kept, not split 90/10
    assert sum(len(t.train_y) for t in tasks) == len(raw.train_y)
    assert all(t.num_classes == 1 and set(t.train_y.tolist()) <= {0} for t in tasks)


def test_combined_over_a_chosen_list(root):
    tasks = benchmarks.build_benchmark("combined", 3, root, datasets="kmnist,cifar10,mnist")
    assert [t.name for t in tasks] == ["kmnist", "cifar10", "mnist"]
    assert all(t.input_shape == (3, 32, 32) for t in tasks)  # the members' most channels and largest size
    grey = benchmarks.build_benchmark("combined", 2, root, datasets="mnist,kmnist")
    assert [t.input_shape for t in grey] == [(1, 28, 28)] * 2
    assert_same_tasks(grey, legacy_combined("combined5", 1, root) + [
        replace(legacy_combined("combined5", 4, root)[3], id=2)])


# --- configuration-time checks --------------------------------------------------------------------------------------


def resolve(**cli):
    return config.resolve({"method": "finetuning", **{k: str(v) for k, v in cli.items()}}, METHODS)


@pytest.fixture
def no_data(monkeypatch):
    """Configuration must not touch data: any load fails the test."""
    def fail(*args, **kwargs):
        raise AssertionError("data loaded at configuration time")
    monkeypatch.setattr(benchmarks, "load_source", fail)
    monkeypatch.setattr(data, "load_source", fail)


BAD = [
    ({"benchmark": "split", "dataset": "mnist", "num_tasks": 3},
     ["mnist has 10 classes", "num_tasks=3", "valid num_tasks: 1, 2, 5, 10"]),
    ({"benchmark": "split", "dataset": "emnist_letters"}, ["26 classes", "num_tasks=5", "1, 2, 13, 26"]),
    ({"benchmark": "permuted", "dataset": "nope"}, ["unknown dataset 'nope'", "kmnist", "cifar100"]),
    ({"benchmark": "permuted"}, ["needs dataset=NAME", "fashion_mnist"]),
    ({"benchmark": "pmnist", "dataset": "kmnist"}, ["fixed benchmark", "dataset=kmnist", "benchmark=permuted"]),
    ({"benchmark": "scifar10", "dataset": "cifar10"}, ["fixed benchmark", "benchmark=split"]),
    ({"benchmark": "smnist", "class_order_seed": 3}, ["fixed benchmark", "class_order_seed=3"]),
    ({"benchmark": "combined20", "datasets": "mnist"}, ["fixed benchmark", "datasets=mnist"]),
    ({"benchmark": "synthetic", "dataset": "mnist"}, ["fixed benchmark"]),
    ({"benchmark": "permuted", "dataset": "mnist", "datasets": "mnist,kmnist"},
     ["datasets= is a key of benchmark=combined only"]),
    ({"benchmark": "split", "datasets": "mnist"}, ["datasets= is a key of benchmark=combined only"]),
    ({"benchmark": "rotated", "dataset": "mnist", "class_order_seed": 2}, ["benchmark=split only"]),
    ({"benchmark": "split", "dataset": "mnist", "class_order_seed": -2}, ["-1 or 0", "seed > 0"]),
    ({"benchmark": "combined", "dataset": "mnist"}, ["takes datasets=a,b,c", "not dataset="]),
    ({"benchmark": "combined"}, ["needs datasets=a,b,c", "kmnist"]),
    ({"benchmark": "combined", "datasets": "mnist,mnist"}, ["each dataset once", "mnist"]),
    ({"benchmark": "combined", "datasets": "mnist,nope"}, ["unknown dataset 'nope'"]),
    ({"benchmark": "combined", "datasets": "mnist,kmnist", "num_tasks": 3}, ["has 2 tasks", "num_tasks=3"]),
    ({"benchmark": "smnist", "num_tasks": 4}, ["not divisible", "valid num_tasks: 1, 2, 5, 10"]),
    ({"benchmark": "combined5", "num_tasks": 6}, ["num_tasks=6", "1..5"]),
    ({"benchmark": "permutted", "dataset": "mnist"}, ["unknown benchmark", "permuted", "split"]),
]


@pytest.mark.parametrize("cli, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_combinations_fail_at_configuration_time(cli, words, no_data):
    with pytest.raises(config.ConfigError) as err:
        resolve(**cli)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_rotation_or_permutation_needs_an_image_dataset(monkeypatch, no_data):
    flat = replace(data.SOURCES["mnist"], image_shape=(64,))  # a dataset of feature vectors, not images
    monkeypatch.setitem(data.SOURCES, "vectors", flat)
    for kind in ("rotated", "permuted"):
        with pytest.raises(config.ConfigError, match="needs an image dataset") as err:
            resolve(benchmark=kind, dataset="vectors")
        assert "(64,)" in str(err.value) and "kmnist" in str(err.value) and "vectors," not in str(err.value)
    assert resolve(benchmark="split", dataset="vectors", num_tasks=2)["dataset"] == "vectors"  # split needs none
    wide = replace(data.SOURCES["mnist"], image_shape=(1, 28, 32))
    monkeypatch.setitem(data.SOURCES, "wide", wide)
    with pytest.raises(config.ConfigError, match="square images"):
        resolve(benchmark="rotated", dataset="wide")
    assert resolve(benchmark="permuted", dataset="wide")["dataset"] == "wide"


def test_constructor_defaults(no_data):
    permuted = resolve(benchmark="permuted", dataset="kmnist")
    assert (permuted["num_tasks"], permuted["epochs"], permuted["batch_size"], permuted["backbone"]) == (
        10, 2, 128, "mlp")
    assert resolve(benchmark="rotated", dataset="kmnist")["num_tasks"] == 5
    assert resolve(benchmark="split", dataset="cifar10")["num_tasks"] == 5
    assert resolve(benchmark="combined", datasets="mnist, kmnist,fashion_mnist")["num_tasks"] == 3
    assert resolve(benchmark="split", dataset="mnist", class_order_seed=-1)["class_order_seed"] == 0
    assert resolve(benchmark="smnist", class_order_seed=-1)["class_order_seed"] == 0  # numeric, as smnist is
    pmnist = resolve(benchmark="pmnist")
    assert (pmnist["dataset"], pmnist["datasets"], pmnist["class_order_seed"]) == ("", "", 0)


# --- folders and reference keys -------------------------------------------------------------------------------------


def test_fixed_names_keep_their_folders_and_reference_keys(tmp_path, no_data):
    cfg = resolve(benchmark="pmnist", out_dir=tmp_path)
    assert records.run_folder(cfg) == tmp_path / "baselines" / "default" / "pmnist-20" / "finetuning" / "seed1"
    joint = config.resolve(config.reference_config(cfg, "joint"), METHODS)
    assert records.run_folder(joint) == (tmp_path / "references" / "pmnist-20" / "mlp-bn-til-lr0.001-wd0-e2-b128"
                                         / "joint" / "seed1")
    for name in ("rmnist", "smnist", "scifar10", "scifar100", "combined20", "combined5", "synthetic"):
        cfg = resolve(benchmark=name, out_dir=tmp_path)
        assert records.run_folder(cfg).parent.parent.name == f"{name}-{cfg['num_tasks']}"


def test_constructor_folders_and_references_name_the_dataset(tmp_path, no_data):
    pmnist = resolve(benchmark="pmnist", out_dir=tmp_path, num_tasks=3)
    folders = {}
    for key, cli in {"pmnist": {"benchmark": "pmnist"},
                     "permuted_mnist": {"benchmark": "permuted", "dataset": "mnist"},
                     "permuted_kmnist": {"benchmark": "permuted", "dataset": "kmnist"},
                     "rotated_kmnist": {"benchmark": "rotated", "dataset": "kmnist"},
                     "split_fashion_mnist": {"benchmark": "split", "dataset": "fashion_mnist", "num_tasks": 5},
                     "split_fashion_mnist_order7": {"benchmark": "split", "dataset": "fashion_mnist", "num_tasks": 5,
                                                    "class_order_seed": 7},
                     "combined_mnist+kmnist+svhn": {"benchmark": "combined", "datasets": "mnist,kmnist,svhn"}}.items():
        cfg = resolve(**{"num_tasks": 3, **cli, "out_dir": tmp_path})
        assert records.run_folder(cfg).parent.parent.name == f"{key}-{cfg['num_tasks']}"
        ref = config.resolve(config.reference_config(cfg, "independent"), METHODS)
        assert (ref["dataset"], ref["datasets"], ref["class_order_seed"]) == (
            cfg["dataset"], cfg["datasets"], cfg["class_order_seed"])
        folders[key] = records.run_folder(ref)
        assert folders[key].parts[-5] == "references" and folders[key].parts[-4] == f"{key}-{cfg['num_tasks']}"
    assert len(set(folders.values())) == len(folders)  # no two share a reference
    assert folders["pmnist"] == records.run_folder(config.resolve(config.reference_config(pmnist, "independent"),
                                                                  METHODS))
    long = resolve(benchmark="combined", datasets=",".join(COMBINED["combined20"][1]), out_dir=tmp_path)
    label = records.run_folder(long).parent.parent.name
    assert label.startswith("combined_20sets_") and label.endswith("-20") and len(label) < 40
    assert label != records.run_folder(resolve(benchmark="combined20", out_dir=tmp_path)).parent.parent.name


def test_unlearning_reference_digest_of_fixed_names_is_unchanged(tmp_path, no_data):
    from amnesiachat import METHODS as UNLEARNING

    cfg = config.resolve({"method": "amnesiachat", "benchmark": "pmnist", "unlearning_requests": "published",
                          "num_tasks": "5", "out_dir": str(tmp_path)}, UNLEARNING)
    ref = runner.unlearning_reference_config(cfg, "retrain", UNLEARNING)
    # a record made before the constructor keys existed has none of them: same digest
    older = {k: v for k, v in cfg.items() if k not in benchmark_config.BENCHMARK_KEYS}
    assert runner.unlearning_reference_config(older, "retrain", UNLEARNING)["run_name"] == ref["run_name"]
    kmnist = dict(cfg, benchmark="permuted", dataset="kmnist")  # its folder names the data (the digest need not)
    kmnist_ref = runner.unlearning_reference_config(kmnist, "retrain", UNLEARNING)
    assert records.run_folder(kmnist_ref) != records.run_folder(ref)
    assert "permuted_kmnist" in str(records.run_folder(kmnist_ref))


def test_records_made_before_the_constructor_keys_are_reused(tmp_path, no_data):
    cfg = resolve(benchmark="pmnist", out_dir=tmp_path)
    folder = records.run_folder(cfg)
    folder.mkdir(parents=True)
    old = {k: v for k, v in cfg.items() if k not in benchmark_config.BENCHMARK_KEYS}
    (folder / "config.yaml").write_text(config.dump(old))
    records.check_same_config(folder, cfg)  # no error: the new keys sit at their defaults
    assert records.run_folder(old) == folder
    assert config.reference_config(old, "joint") == config.reference_config(cfg, "joint")
    assert runner.finished_references(old, METHODS) is None  # looked up (none trained here), no KeyError
    with pytest.raises(records.RecordError, match="dataset"):
        records.check_same_config(folder, dict(cfg, dataset="kmnist"))


# --- runs through the real runner -----------------------------------------------------------------------------------


TINY = {"method": "finetuning", "num_tasks": "2", "epochs": "1", "batch_size": "8", "seed": "3", "threads": "1"}


def acc_text(folder: Path) -> str:
    return (folder / "acc.csv").read_text()


def test_pmnist_and_permuted_mnist_runs_are_identical_on_synthetic_files(root, tmp_path, one_thread):
    runs = {}
    for key, cli in (("pmnist", {"benchmark": "pmnist"}), ("permuted", {"benchmark": "permuted", "dataset": "mnist"})):
        cfg = config.resolve({**TINY, **cli, "references": "none", "data_dir": root, "out_dir": str(tmp_path)},
                             METHODS)
        runs[key] = runner.run(cfg, METHODS)
    assert runs["pmnist"] != runs["permuted"]
    assert acc_text(runs["pmnist"]) == acc_text(runs["permuted"])


def test_permuted_kmnist_runs_with_its_own_references(root, tmp_path, one_thread):
    cfg = config.resolve({**TINY, "benchmark": "permuted", "dataset": "kmnist", "references": "auto",
                          "data_dir": root, "out_dir": str(tmp_path)}, METHODS)
    folder = runner.run(cfg, METHODS)
    assert folder == tmp_path / "baselines" / "default" / "permuted_kmnist-2" / "finetuning" / "seed3"
    record = records.read_record(folder)
    assert [len(row) for row in record["acc"]] == [1, 2]
    assert record["config"]["dataset"] == "kmnist"
    assert "fr" in record["metrics"] and record["metrics"]["fwt"] is not None  # computed from its references
    refs = sorted(p.relative_to(tmp_path).parts[:2] + p.relative_to(tmp_path).parts[3:4]
                  for p in (tmp_path / "references").glob("*/*/*/seed3"))
    assert refs == [("references", "permuted_kmnist-2", m) for m in ("independent", "joint", "random")]
    log = (folder / "log.txt").read_text()
    assert "permuted_kmnist" in log


@pytest.mark.realdata
def test_pmnist_and_permuted_mnist_are_identical_on_real_mnist(mnist_dir, tmp_path, one_thread):
    fixed = benchmarks.build_benchmark("pmnist", 3, str(mnist_dir))
    assert_same_tasks(fixed, legacy_permuted_mnist(3, str(mnist_dir)))
    assert_same_tasks(benchmarks.build_benchmark("permuted", 3, str(mnist_dir), dataset="mnist"), fixed,
                      names=False)
    assert len(fixed[0].train_y) == 54000
    runs = []
    for cli in ({"benchmark": "pmnist"}, {"benchmark": "permuted", "dataset": "mnist"}):
        cfg = config.resolve({**TINY, **cli, "batch_size": "64", "train_subset": "2000", "references": "none",
                              "data_dir": str(mnist_dir), "out_dir": str(tmp_path)}, METHODS)
        runs.append(runner.run(cfg, METHODS))
    assert acc_text(runs[0]) == acc_text(runs[1])
    assert records.read_acc(runs[0])[0][0] > 0.5  # it learned something
