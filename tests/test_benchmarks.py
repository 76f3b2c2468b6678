"""Benchmarks against the published recipes (spec/experiments.md §1): permutations, splits, class split, angles."""

import pytest
import torch
from torch.utils.data import random_split

from common import benchmarks
from common.benchmarks import Task
from common.data import RawData

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def fake_mnist(n_train=50, n_test=20, num_classes=10, shape=(1, 28, 28)):
    """A tiny RawData; pixel (0, 0, 0) of every image holds its label, the rest is random."""
    g = torch.Generator().manual_seed(5)
    train_y = torch.arange(n_train) % num_classes
    test_y = torch.arange(n_test) % num_classes
    train_x = torch.randint(0, 256, (n_train, *shape), generator=g, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (n_test, *shape), generator=g, dtype=torch.uint8)
    train_x[:, 0, 0, 0] = train_y.to(torch.uint8)
    test_x[:, 0, 0, 0] = test_y.to(torch.uint8)
    return RawData("fake", train_x, train_y, test_x, test_y, num_classes, (MNIST_MEAN,), (MNIST_STD,))


@pytest.fixture
def fake_source(monkeypatch):
    raw = fake_mnist()
    calls = []

    def load_source(name, data_dir="data", check_sizes=True):
        calls.append(name)
        return raw

    monkeypatch.setattr(benchmarks, "load_source", load_source)
    return raw, calls


# --- Permuted MNIST ---------------------------------------------------------------------------------------------


def test_pmnist_permutations_follow_the_published_recipe():
    # task 1: seed 0 is falsy, so a fresh generator with torch's default seed is used
    assert torch.Generator().initial_seed() == 67280421310721
    first = benchmarks.pmnist_permutation(1)
    assert torch.equal(first, torch.randperm(784, generator=torch.Generator()))
    assert not torch.equal(first, torch.arange(784))  # task 1 is permuted too
    assert not torch.equal(first, torch.randperm(784, generator=torch.Generator().manual_seed(0)))
    # task t >= 2: generator seeded t - 1
    for t in (2, 3, 20):
        expected = torch.randperm(784, generator=torch.Generator().manual_seed(t - 1))
        assert torch.equal(benchmarks.pmnist_permutation(t), expected)
    perms = [benchmarks.pmnist_permutation(t) for t in range(1, 6)]
    for p in perms:
        assert torch.equal(p.sort().values, torch.arange(784))
    assert len({tuple(p.tolist()) for p in perms}) == 5
    # independent of the global seed
    torch.manual_seed(123)
    a = benchmarks.pmnist_permutation(1)
    torch.manual_seed(456)
    assert torch.equal(a, benchmarks.pmnist_permutation(1))
    assert torch.equal(a, first)


def test_task_transform_permutes_then_normalises():
    perm = benchmarks.pmnist_permutation(2)
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    x[0, 0, 0, :5] = torch.tensor([0, 1, 128, 254, 255], dtype=torch.uint8)
    empty = torch.zeros(0)
    task = Task(2, "pmnist-2", 10, empty, empty, empty, empty, empty, empty, torch.tensor([MNIST_MEAN]),
                torch.tensor([MNIST_STD]), perm)
    out = task.transform(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    expected = torch.empty(3, 1, 28, 28)
    for i in range(784):  # pixel i of the output = pixel perm[i] of the input
        src = int(perm[i])
        for b in range(3):
            value = int(x[b, 0, src // 28, src % 28])
            expected[b, 0, i // 28, i % 28] = (value / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert x.dtype == torch.uint8  # input untouched
    # without a permutation: only the normalisation
    plain = Task(1, "t", 10, empty, empty, empty, empty, empty, empty, torch.tensor([MNIST_MEAN]),
                 torch.tensor([MNIST_STD]))
    torch.testing.assert_close(plain.transform(x), (x.float() / 255 - MNIST_MEAN) / MNIST_STD)


def test_permuted_mnist_tasks(fake_source):
    raw, calls = fake_source
    tasks = benchmarks.build_benchmark("pmnist", 4, "unused")
    assert calls == ["mnist"]
    assert [t.id for t in tasks] == [1, 2, 3, 4]
    assert [t.name for t in tasks] == ["pmnist-1", "pmnist-2", "pmnist-3", "pmnist-4"]
    tr, va = benchmarks.split_indices(len(raw.train_y))
    for t in tasks:
        assert torch.equal(t.permutation, benchmarks.pmnist_permutation(t.id))
        assert t.num_classes == 10
        assert torch.equal(t.train_x, raw.train_x[tr]) and torch.equal(t.val_y, raw.train_y[va])
        assert torch.equal(t.test_x, raw.test_x)
        assert t.mean.tolist() == pytest.approx([MNIST_MEAN]) and t.std.tolist() == pytest.approx([MNIST_STD])


# --- 90/10 split --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 57, 1000, 60000])
def test_split_indices_match_random_split_seed_42(n):
    train, val = benchmarks.split_indices(n)
    ref_train, ref_val = random_split(range(n), [0.9, 0.1], generator=torch.Generator().manual_seed(42))
    assert train.tolist() == list(ref_train.indices)
    assert val.tolist() == list(ref_val.indices)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))
    if n == 60000:
        assert (len(train), len(val)) == (54000, 6000)
    # independent of the global seed
    torch.manual_seed(7)
    assert torch.equal(benchmarks.split_indices(n)[0], train)


def test_train_subset_takes_the_first_samples(fake_source):
    full = benchmarks.build_benchmark("pmnist", 1, "unused")[0]
    sub = benchmarks.build_benchmark("pmnist", 1, "unused", train_subset=10)[0]
    assert torch.equal(sub.train_x, full.train_x[:10]) and torch.equal(sub.train_y, full.train_y[:10])
    assert torch.equal(sub.val_x, full.val_x) and torch.equal(sub.test_x, full.test_x)


# --- class split ----------------------------------------------------------------------------------------------------


def test_class_split_remaps_labels(fake_source):
    raw, calls = fake_source
    tasks = benchmarks.build_benchmark("smnist", 5, "unused")
    assert calls == ["mnist"]
    assert [t.name for t in tasks] == [f"smnist-{t}" for t in range(1, 6)]
    for t in tasks:
        first = 2 * (t.id - 1)
        assert t.num_classes == 2
        for x, y, n_raw in ((torch.cat([t.train_x, t.val_x]), torch.cat([t.train_y, t.val_y]), len(raw.train_y)),
                            (t.test_x, t.test_y, len(raw.test_y))):
            assert set(y.tolist()) == {0, 1}
            # pixel (0, 0, 0) holds the original label: original = remapped + first
            assert torch.equal(x[:, 0, 0, 0].long(), y + first)
            assert len(y) == n_raw // 5
    # 5 x 2 classes = 0/1, 2/3, ..., 8/9; with 2 tasks: 0-4 and 5-9 remapped to 0..4
    two = benchmarks.class_split("mnist", 2, "unused", "s")
    assert [t.num_classes for t in two] == [5, 5]
    assert torch.equal(two[1].test_x[:, 0, 0, 0].long(), two[1].test_y + 5)
    assert set(two[1].test_y.tolist()) == set(range(5))


def test_class_split_needs_a_divisor(fake_source):
    with pytest.raises(ValueError, match="divisible"):
        benchmarks.class_split("mnist", 3, "unused", "s")


# --- rotated MNIST ----------------------------------------------------------------------------------------------


def test_rotated_mnist_angles(fake_source, monkeypatch):
    raw, _ = fake_source
    seen = []
    real_rotate = benchmarks.rotate

    def spy(x, angle):
        seen.append(angle)
        return real_rotate(x, angle)

    monkeypatch.setattr(benchmarks, "rotate", spy)
    tasks = benchmarks.build_benchmark("rmnist", 5, "unused")
    assert [t.name for t in tasks] == ["rmnist-0deg", "rmnist-36deg", "rmnist-72deg", "rmnist-108deg",
                                       "rmnist-144deg"]
    assert sorted(set(seen)) == [0.0, 36.0, 72.0, 108.0, 144.0]
    assert seen.count(36.0) == 2  # train and test images of the task
    assert torch.equal(tasks[0].test_x, raw.test_x)  # 0 degrees: unchanged
    assert all(t.permutation is None for t in tasks)
    # test images of task 2 are the raw ones rotated by 36 degrees; labels unchanged
    assert torch.equal(tasks[1].test_x, real_rotate(raw.test_x, 36.0))
    assert torch.equal(tasks[1].test_y, raw.test_y)


def test_rotate_direction_is_counter_clockwise():
    # PIL's Image.rotate(90) turns counter-clockwise; on a square image with nearest neighbour this is rot90
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(benchmarks.rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)))
    assert benchmarks.rotate(x, 0.0) is x


# --- synthetic ----------------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_shaped():
    a = benchmarks.build_benchmark("synthetic", 3)
    torch.manual_seed(999)
    b = benchmarks.build_benchmark("synthetic", 3)
    for ta, tb in zip(a, b):
        assert torch.equal(ta.train_x, tb.train_x) and torch.equal(ta.test_y, tb.test_y)
        assert ta.input_shape == (1, 28, 28) and ta.train_x.dtype == torch.uint8
        assert (len(ta.train_y), len(ta.val_y), len(ta.test_y)) == (360, 40, 100)
    rgb = benchmarks.build_benchmark("synthetic_rgb", 2)
    assert rgb[0].input_shape == (3, 32, 32) and rgb[0].mean.shape == (3,)


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.build_benchmark("nope", 2)
