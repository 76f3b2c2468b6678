"""Continual-learning benchmarks built from the raw sources (`docs/benchmarks.md`).

A benchmark is a list of `Task`s. Each task keeps uint8 images on the run's device and a per-batch `transform`
(uint8 -> float, optional pixel permutation, normalisation with the original dataset's statistics). Training
batches are index slices of a `randperm`; there is no DataLoader anywhere.

Data randomness never depends on the run seed: Permuted MNIST task t uses permutation seed t - 1 (task 1 draws
from a fresh, default-seeded generator, so it is permuted too, as in the reference code), and every 90/10
train/validation split uses seed 42.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from common.data import COMBINED, RawData, load_source, seeded_split

VAL_FRACTION = 0.1


@dataclass
class Task:
    """One task: 1-based id, data tensors (uint8 images, int64 labels) and its batch transform."""

    id: int
    name: str
    num_classes: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    permutation: torch.Tensor | None = None

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> normalised float [B, C, H, W], permuted if the task permutes pixels."""
        if self.permutation is not None:
            x = x.flatten(1)[:, self.permutation].view(x.shape)
        x = x.float().div_(255.0)
        return x.sub_(self.mean.view(1, -1, 1, 1)).div_(self.std.view(1, -1, 1, 1))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device, moved: dict | None = None) -> "Task":
        """Move every tensor to `device`; tensors shared between tasks (`moved`, by id) are moved only once."""
        moved = {} if moved is None else moved
        for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "mean", "std", "permutation"):
            value = getattr(self, name)
            if value is not None:
                if id(value) not in moved:
                    moved[id(value)] = (value, value.to(device))  # keep the source alive so ids stay unique
                setattr(self, name, moved[id(value)][1])
        return self


def split_indices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's 90/10 train/validation split (seed 42): (train indices, val indices)."""
    train, val = seeded_split(n, VAL_FRACTION)
    return torch.tensor(train, dtype=torch.long), torch.tensor(val, dtype=torch.long)


def make_task(task_id: int, name: str, num_classes: int, raw: RawData, train_x, train_y, test_x, test_y,
              permutation=None) -> Task:
    """Split the official training part 90/10 (seed 42) and wrap everything in a Task."""
    tr, va = split_indices(len(train_y))
    return Task(task_id, name, num_classes, train_x[tr], train_y[tr], train_x[va], train_y[va], test_x, test_y,
                torch.tensor(raw.mean), torch.tensor(raw.std), permutation)


def pmnist_permutation(task_id: int, num_pixels: int = 784) -> torch.Tensor:
    """Permutation of task `task_id` (1-based): seed task_id - 1; seed 0 is falsy, so task 1 uses a fresh
    generator with torch's default seed, exactly like the reference code."""
    generator = torch.Generator()
    seed = task_id - 1
    if seed:
        generator.manual_seed(seed)
    return torch.randperm(num_pixels, generator=generator)


def permuted_mnist(num_tasks: int, data_dir: str) -> list[Task]:
    raw = load_source("mnist", data_dir)
    base = make_task(1, "pmnist-1", 10, raw, raw.train_x, raw.train_y, raw.test_x, raw.test_y)
    # all tasks share the same image tensors; only the permutation differs
    return [replace(base, id=t, name=f"pmnist-{t}", permutation=pmnist_permutation(t, raw.train_x[0].numel()))
            for t in range(1, num_tasks + 1)]


def rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate uint8 images by `angle` degrees (nearest neighbour, fill 0, like PIL's default rotate)."""
    from torchvision.transforms.functional import rotate as tv_rotate
    return x if angle == 0 else tv_rotate(x, angle, fill=0)


def rotated_mnist(num_tasks: int, data_dir: str) -> list[Task]:
    raw = load_source("mnist", data_dir)
    angles = [180.0 * k / num_tasks for k in range(num_tasks)]
    return [make_task(t, f"rmnist-{angle:g}deg", 10, raw, rotate(raw.train_x, angle), raw.train_y,
                      rotate(raw.test_x, angle), raw.test_y) for t, angle in enumerate(angles, start=1)]


def class_split(source: str, num_tasks: int, data_dir: str, prefix: str) -> list[Task]:
    """Split a dataset's classes in plain numeric order into `num_tasks` equal groups; labels remapped per task."""
    raw = load_source(source, data_dir)
    if raw.num_classes % num_tasks:
        raise ValueError(f"{source} has {raw.num_classes} classes, not divisible into {num_tasks} tasks")
    per_task = raw.num_classes // num_tasks
    tasks = []
    for t in range(1, num_tasks + 1):
        first = (t - 1) * per_task
        train = (raw.train_y >= first) & (raw.train_y < first + per_task)
        test = (raw.test_y >= first) & (raw.test_y < first + per_task)
        tasks.append(make_task(t, f"{prefix}-{t}", per_task, raw, raw.train_x[train], raw.train_y[train] - first,
                               raw.test_x[test], raw.test_y[test] - first))
    return tasks


def synthetic(num_tasks: int, data_dir: str, image_shape=(1, 28, 28), num_classes: int = 4,
              n_train: int = 400, n_test: int = 100) -> list[Task]:
    """Tiny learnable benchmark for tests: labels are the argmax of a fixed random projection of the image."""
    g = torch.Generator().manual_seed(1234)
    tasks = []
    for t in range(1, num_tasks + 1):
        x = torch.randint(0, 256, (n_train + n_test, *image_shape), generator=g, dtype=torch.uint8)
        proj = torch.randn(x[0].numel(), num_classes, generator=g)
        y = ((x.flatten(1).float() - 127.5) @ proj).argmax(1)
        raw = RawData(f"synthetic-{t}", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes,
                      (0.5,) * image_shape[0], (0.29,) * image_shape[0])
        tasks.append(make_task(t, raw.name, num_classes, raw, raw.train_x, raw.train_y, raw.test_x, raw.test_y))
    return tasks


def make_task_own_val(task_id: int, name: str, raw: RawData) -> Task:
    """A Task from a dataset with its own validation part (DTD, Country211): no 90/10 split of the training part."""
    return Task(task_id, name, raw.num_classes, raw.train_x, raw.train_y, raw.val_x, raw.val_y, raw.test_x,
                raw.test_y, torch.tensor(raw.mean), torch.tensor(raw.std))


def combined(benchmark: str, num_tasks: int, data_dir: str) -> list[Task]:
    """One whole dataset per task, in the published order (`common.data.COMBINED`,
    docs/benchmarks.md#combined20), every image in the benchmark's shape; the task's classes are the dataset's.
    `num_tasks` below the full count takes the first tasks. Validation: the dataset's own part where it has one,
    else 90/10 (seed 42)."""
    shape, members = COMBINED[benchmark]
    if not 1 <= num_tasks <= len(members):
        raise ValueError(f"{benchmark} has {len(members)} tasks; num_tasks={num_tasks} is not 1..{len(members)}")
    tasks = []
    for t, name in enumerate(members[:num_tasks], start=1):
        raw = load_source(name, data_dir, shape=shape)
        if raw.val_x is not None:
            tasks.append(make_task_own_val(t, name, raw))
        else:
            tasks.append(make_task(t, name, raw.num_classes, raw, raw.train_x, raw.train_y, raw.test_x, raw.test_y))
    return tasks


BUILDERS = {
    "pmnist": permuted_mnist,
    "rmnist": rotated_mnist,
    "smnist": lambda n, d: class_split("mnist", n, d, "smnist"),
    "scifar10": lambda n, d: class_split("cifar10", n, d, "scifar10"),
    "scifar100": lambda n, d: class_split("cifar100", n, d, "scifar100"),
    "synthetic": synthetic,
    "synthetic_rgb": lambda n, d: synthetic(n, d, image_shape=(3, 32, 32)),
    "combined20": lambda n, d: combined("combined20", n, d),
    "combined5": lambda n, d: combined("combined5", n, d),
}


def build_benchmark(name: str, num_tasks: int, data_dir: str = "data", device="cpu",
                    train_subset: int = 0) -> list[Task]:
    """Build the tasks of benchmark `name` and move their tensors to `device` once."""
    if name not in BUILDERS:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BUILDERS))}")
    tasks = BUILDERS[name](num_tasks, data_dir)
    moved: dict = {}
    for task in tasks:
        if train_subset:
            task.train_x, task.train_y = task.train_x[:train_subset], task.train_y[:train_subset]
        task.to(device, moved)
    return tasks
