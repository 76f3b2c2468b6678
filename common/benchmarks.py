"""Continual-learning benchmarks built from the raw datasets (`docs/benchmarks.md`,
`docs/benchmark_constructors.md`).

A benchmark is a list of `Task`s. Each task keeps uint8 images on the run's device and a per-batch `transform`
(uint8 -> float, optional pixel permutation, normalisation with the original dataset's statistics). Training
batches are index slices of a `randperm`; there is no DataLoader anywhere.

Four constructors build every benchmark over the registered datasets: `permuted`, `rotated`, `split` and
`combined`; the fixed names (`pmnist`, `rmnist`, `smnist`, `scifar10`, `scifar100`, `combined20`, `combined5`)
are these constructors over their published data (`common.benchmark_config` holds the names and their checks).

Data randomness never depends on the run seed: permuted task t uses permutation seed t - 1 (task 1 draws from a
fresh, default-seeded generator, so it is permuted too, as in the reference code), a seeded class order uses its
own `class_order_seed`, and every 90/10 train/validation split uses seed 42.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from common.benchmark_config import Spec, check_num_tasks, spec_of
from common.data import RawData, load_source, seeded_split

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
              permutation=None, val=None) -> Task:
    """Wrap the parts in a Task. `val`: (images, labels) of the dataset's own validation part; without one the
    official training part is split 90/10 (seed 42)."""
    if val is None:
        tr, va = split_indices(len(train_y))
        train_x, train_y, val = train_x[tr], train_y[tr], (train_x[va], train_y[va])
    return Task(task_id, name, num_classes, train_x, train_y, val[0], val[1], test_x, test_y,
                torch.tensor(raw.mean), torch.tensor(raw.std), permutation)


def whole_task(task_id: int, name: str, raw: RawData, images=None) -> Task:
    """A Task holding all of `raw` (its own validation part where it has one), images passed through `images`."""
    images = images or (lambda x: x)
    val = None if raw.val_x is None else (images(raw.val_x), raw.val_y)
    return make_task(task_id, name, raw.num_classes, raw, images(raw.train_x), raw.train_y, images(raw.test_x),
                     raw.test_y, val=val)


def make_task_own_val(task_id: int, name: str, raw: RawData) -> Task:
    """A Task from a dataset with its own validation part (DTD, Country211): no 90/10 split of the training part."""
    return whole_task(task_id, name, raw)


# --- permuted -------------------------------------------------------------------------------------------------------


def pmnist_permutation(task_id: int, num_pixels: int = 784) -> torch.Tensor:
    """Permutation of task `task_id` (1-based): seed task_id - 1; seed 0 is falsy, so task 1 uses a fresh
    generator with torch's default seed, exactly like the reference code."""
    generator = torch.Generator()
    seed = task_id - 1
    if seed:
        generator.manual_seed(seed)
    return torch.randperm(num_pixels, generator=generator)


def pixel_permutation(task_id: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Task `task_id`'s permutation of the pixel positions (H x W), the same in every channel, as an index into the
    flattened C x H x W image (for one channel it is `pmnist_permutation` itself)."""
    channels, height, width = image_shape
    positions = pmnist_permutation(task_id, height * width)
    if channels == 1:
        return positions
    return (torch.arange(channels).view(-1, 1) * (height * width) + positions.view(1, -1)).flatten()


def permuted(dataset: str, num_tasks: int, data_dir: str, prefix: str) -> list[Task]:
    """Task t: all of `dataset` with its pixels permuted by `pixel_permutation(t)`; the tasks share the images."""
    raw = load_source(dataset, data_dir)
    base = whole_task(1, f"{prefix}-1", raw)
    shape = tuple(raw.train_x.shape[1:])
    return [replace(base, id=t, name=f"{prefix}-{t}", permutation=pixel_permutation(t, shape))
            for t in range(1, num_tasks + 1)]


# --- rotated --------------------------------------------------------------------------------------------------------


def rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate uint8 images by `angle` degrees (nearest neighbour, fill 0, like PIL's default rotate)."""
    from torchvision.transforms.functional import rotate as tv_rotate
    return x if angle == 0 else tv_rotate(x, angle, fill=0)


def rotated(dataset: str, num_tasks: int, data_dir: str, prefix: str) -> list[Task]:
    """Task t: all of `dataset` rotated counter-clockwise by 180 (t - 1) / T degrees."""
    raw = load_source(dataset, data_dir)
    angles = [180.0 * k / num_tasks for k in range(num_tasks)]
    return [whole_task(t, f"{prefix}-{angle:g}deg", raw, lambda x, a=angle: rotate(x, a))
            for t, angle in enumerate(angles, start=1)]


# --- split ----------------------------------------------------------------------------------------------------------


def class_order(num_classes: int, seed: int = 0) -> torch.Tensor:
    """The order in which the classes are dealt to the tasks: numeric for seed 0 (or -1), else a permutation from
    a generator seeded `seed` (independent of the run seed)."""
    if seed <= 0:
        return torch.arange(num_classes)
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))


def class_split(source: str, num_tasks: int, data_dir: str, prefix: str, class_order_seed: int = 0) -> list[Task]:
    """Deal a dataset's classes (in `class_order`) into `num_tasks` equal groups; task t holds the t-th group, its
    labels remapped to the classes' positions in the group (0..per_task-1)."""
    raw = load_source(source, data_dir)
    if raw.num_classes % num_tasks:
        raise ValueError(f"{source} has {raw.num_classes} classes, not divisible into {num_tasks} tasks")
    per_task = raw.num_classes // num_tasks
    position = torch.empty(raw.num_classes, dtype=torch.long)
    position[class_order(raw.num_classes, class_order_seed)] = torch.arange(raw.num_classes)

    def part(x, y, t):
        keep = position[y] // per_task == t - 1
        return x[keep], position[y[keep]] % per_task

    tasks = []
    for t in range(1, num_tasks + 1):
        train_x, train_y = part(raw.train_x, raw.train_y, t)
        test_x, test_y = part(raw.test_x, raw.test_y, t)
        val = None if raw.val_x is None else part(raw.val_x, raw.val_y, t)
        tasks.append(make_task(t, f"{prefix}-{t}", per_task, raw, train_x, train_y, test_x, test_y, val=val))
    return tasks


# --- combined -------------------------------------------------------------------------------------------------------


def combined(members: tuple[str, ...], shape: tuple[int, int, int], num_tasks: int, data_dir: str,
             name: str = "combined") -> list[Task]:
    """One whole dataset per task in the given order, every image in `shape`; the task's classes are the dataset's.
    `num_tasks` below the number of members takes the first ones. Validation: the dataset's own part where it has
    one, else 90/10 (seed 42)."""
    if not 1 <= num_tasks <= len(members):
        raise ValueError(f"{name} has {len(members)} tasks; num_tasks={num_tasks} is not 1..{len(members)}")
    return [whole_task(t, member, load_source(member, data_dir, shape=shape))
            for t, member in enumerate(members[:num_tasks], start=1)]


# --- synthetic ------------------------------------------------------------------------------------------------------


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


# the generated test benchmarks, by name: builder(num_tasks, data_dir)
BUILDERS = {"synthetic": synthetic, "synthetic_rgb": lambda n, d: synthetic(n, d, image_shape=(3, 32, 32))}


def build_tasks(spec: Spec, num_tasks: int, data_dir: str) -> list[Task]:
    """The tasks of a resolved benchmark `Spec`."""
    if spec.kind == "synthetic":
        return BUILDERS[spec.name](num_tasks, data_dir)
    if spec.kind == "combined":
        return combined(spec.datasets, spec.shape, num_tasks, data_dir, spec.label)
    if spec.kind == "split":
        return class_split(spec.datasets[0], num_tasks, data_dir, spec.prefix, spec.class_order_seed)
    constructor = {"permuted": permuted, "rotated": rotated}[spec.kind]
    return constructor(spec.datasets[0], num_tasks, data_dir, spec.prefix)


def build_benchmark(name: str, num_tasks: int, data_dir: str = "data", device="cpu", train_subset: int = 0,
                    dataset: str = "", datasets: str = "", class_order_seed: int = 0) -> list[Task]:
    """Build the tasks of benchmark `name` (a fixed name, or a constructor with `dataset` / `datasets` /
    `class_order_seed`) and move their tensors to `device` once. Bad combinations fail before any data loads."""
    spec = spec_of(name, dataset, datasets, class_order_seed)
    check_num_tasks(spec, num_tasks)
    tasks = build_tasks(spec, num_tasks, data_dir)
    moved: dict = {}
    for task in tasks:
        if train_subset:
            task.train_x, task.train_y = task.train_x[:train_subset], task.train_y[:train_subset]
        task.to(device, moved)
    return tasks
