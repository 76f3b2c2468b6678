"""Benchmark names and their configuration-time checks (`docs/benchmark_constructors.md`).

Four constructors build a benchmark from any dataset registered in `common.data.SOURCES`:

    benchmark=permuted dataset=D              task t: D with its pixel positions permuted (seed t - 1)
    benchmark=rotated  dataset=D              task t: D rotated by 180 (t - 1) / T degrees
    benchmark=split    dataset=D              D's classes in T equal groups (numeric order, or seeded:
                       [class_order_seed=K]   K > 0 draws the order from randperm with seed K; 0 or -1: numeric)
    benchmark=combined datasets=a,b,c         one whole dataset per task, in the given order

The fixed names resolve to them: pmnist = permuted mnist, rmnist = rotated mnist, smnist / scifar10 / scifar100 =
split mnist / cifar10 / cifar100 (numeric order), combined20 / combined5 = combined over their published members.
`synthetic` and `synthetic_rgb` are generated test data, not a dataset. A fixed name takes neither `dataset`,
`datasets` nor `class_order_seed` (other than the numeric order, 0 or -1).

Naming rule (folders, reference runs): a fixed name keeps its own name as its label (`pmnist`), so records made
before the constructors existed keep their folders and reference keys. A constructor's label names its data:
`permuted_kmnist`, `rotated_mnist`, `split_cifar100` (`split_cifar100_order7` with class_order_seed=7),
`combined_mnist+kmnist` (`combined_<n>sets_<digest>` when the list is long). `benchmark=permuted dataset=mnist`
builds the same tasks as `pmnist` but is recorded under its own label. Run folders are `<label>-<num_tasks>`;
references live under `references/<label>-<num_tasks>/` and `dataset`, `datasets`, `class_order_seed` are
reference keys, so no two benchmarks over different data share a reference.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from common.config import ConfigError

CONSTRUCTORS = ("permuted", "rotated", "split", "combined")
SYNTHETIC = ("synthetic", "synthetic_rgb")
# engine keys of the constructors (defaults: none given)
BENCHMARK_KEYS = {"dataset": "", "datasets": "", "class_order_seed": 0}
# fixed name: (constructor, datasets); the combined ones take their members from `common.data.COMBINED`
FIXED = {"pmnist": ("permuted", ("mnist",)), "rmnist": ("rotated", ("mnist",)), "smnist": ("split", ("mnist",)),
         "scifar10": ("split", ("cifar10",)), "scifar100": ("split", ("cifar100",)),
         "combined20": ("combined", None), "combined5": ("combined", None)}
LONG_LABEL = 100  # a combined label longer than this becomes `combined_<n>sets_<digest>`


@dataclass(frozen=True)
class Spec:
    """What to build: constructor (or `synthetic`), datasets in task order, class order seed (split), common image
    shape (combined), the prefix of task names and the label of folders."""

    name: str
    kind: str
    datasets: tuple[str, ...] = ()
    class_order_seed: int = 0
    shape: tuple[int, int, int] | None = None
    prefix: str = ""
    label: str = ""


def sources() -> dict:
    from common.data import SOURCES
    return SOURCES


def is_image_set(name: str) -> bool:
    """A dataset of (C, H, W) images with H, W > 1 (what permuting pixels and rotating need)."""
    shape = tuple(sources()[name].image_shape or ())
    return len(shape) == 3 and shape[1] > 1 and shape[2] > 1


def known_names() -> list[str]:
    return sorted((*CONSTRUCTORS, *FIXED, *SYNTHETIC))


def check_dataset(name: str, kind: str) -> None:
    names = sources()
    if name not in names:
        raise ConfigError(f"unknown dataset {name!r} for benchmark={kind}; registered datasets: {', '.join(names)}")
    if kind in ("permuted", "rotated") and not is_image_set(name):
        images = [n for n in names if is_image_set(n)]
        raise ConfigError(f"benchmark={kind} needs an image dataset; {name!r} has samples of shape "
                          f"{tuple(names[name].image_shape)}; image datasets: {', '.join(images)}")
    if kind == "rotated":
        _, h, w = names[name].image_shape
        if h != w:
            squares = [n for n in names if is_image_set(n) and names[n].image_shape[1] == names[n].image_shape[2]]
            raise ConfigError(f"benchmark=rotated needs square images; {name!r} is {h}x{w}; square image datasets: "
                              f"{', '.join(squares)}")


def combined_shape(members: tuple[str, ...]) -> tuple[int, int, int]:
    """The common image shape of a combined benchmark: the most channels and the largest height and width of its
    members (Combined-20 gives 3x32x32, Combined-5 1x28x28, their published shapes)."""
    shapes = [tuple(sources()[m].image_shape) for m in members]
    return tuple(max(s[i] for s in shapes) for i in range(3))


def combined_label(members: tuple[str, ...]) -> str:
    label = "combined_" + "+".join(members)
    if len(label) <= LONG_LABEL:
        return label
    return f"combined_{len(members)}sets_{hashlib.sha1(','.join(members).encode()).hexdigest()[:10]}"


def fixed_spec(name: str, dataset: str, datasets: str, class_order_seed: int) -> Spec:
    given = [f"{k}={v}" for k, v in (("dataset", dataset), ("datasets", datasets),
                                     ("class_order_seed", class_order_seed)) if v not in ("", 0, -1)]
    if given:
        kind = FIXED[name][0] if name in FIXED else None
        hint = f"; for other data use benchmark={kind} with its keys" if kind else ""
        raise ConfigError(f"benchmark={name} is a fixed benchmark and takes no {', '.join(given)}{hint}; "
                          f"the constructors {', '.join(CONSTRUCTORS)} take them")
    if name in SYNTHETIC:
        return Spec(name, "synthetic", prefix=name, label=name)
    kind, members = FIXED[name]
    if kind == "combined":
        from common.data import COMBINED
        shape, members = COMBINED[name]
        return Spec(name, kind, tuple(members), shape=tuple(shape), prefix=name, label=name)
    return Spec(name, kind, members, prefix=name, label=name)


def spec_of(name: str, dataset: str = "", datasets: str = "", class_order_seed: int = 0) -> Spec:
    """The Spec of a benchmark name and its keys; ConfigError naming the problem and the valid choices."""
    if name in FIXED or name in SYNTHETIC:
        return fixed_spec(name, dataset, datasets, class_order_seed)
    if name not in CONSTRUCTORS:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(known_names())}")
    if class_order_seed and name != "split":
        raise ConfigError(f"class_order_seed is a key of benchmark=split only, not of benchmark={name}")
    if class_order_seed < -1:
        raise ConfigError(f"class_order_seed must be -1 or 0 (numeric order) or a seed > 0, got {class_order_seed}")
    if name == "combined":
        if dataset:
            raise ConfigError("benchmark=combined takes datasets=a,b,c (one dataset per task), not dataset=")
        members = tuple(d.strip() for d in datasets.split(",") if d.strip())
        if not members:
            raise ConfigError("benchmark=combined needs datasets=a,b,c (one dataset per task); registered "
                              f"datasets: {', '.join(sources())}")
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            raise ConfigError(f"benchmark=combined takes each dataset once; repeated: {', '.join(repeated)}")
        for member in members:
            check_dataset(member, name)
        label = combined_label(members)
        return Spec(name, name, members, shape=combined_shape(members), prefix=label, label=label)
    if datasets:
        raise ConfigError(f"datasets= is a key of benchmark=combined only; benchmark={name} takes dataset=NAME")
    if not dataset:
        raise ConfigError(f"benchmark={name} needs dataset=NAME; registered datasets: {', '.join(sources())}")
    check_dataset(dataset, name)
    seed = max(class_order_seed, 0)
    label = f"{name}_{dataset}" + (f"_order{seed}" if seed else "")
    return Spec(name, name, (dataset,), class_order_seed=seed, prefix=label, label=label)


def spec_from_config(cfg: dict) -> Spec:
    return spec_of(cfg["benchmark"], *(cfg.get(k, default) for k, default in BENCHMARK_KEYS.items()))


def check_num_tasks(spec: Spec, num_tasks: int) -> None:
    """A split must divide the classes; a combined benchmark has at most one task per dataset."""
    if spec.kind == "split":
        classes = sources()[spec.datasets[0]].num_classes
        if num_tasks < 1 or classes % num_tasks:
            divisors = [str(k) for k in range(1, classes + 1) if classes % k == 0]
            raise ConfigError(f"benchmark={spec.name}: {spec.datasets[0]} has {classes} classes, not divisible into "
                              f"num_tasks={num_tasks} tasks; valid num_tasks: {', '.join(divisors)}")
    if spec.kind == "combined" and not 1 <= num_tasks <= len(spec.datasets):
        raise ConfigError(f"{spec.label} has {len(spec.datasets)} tasks; num_tasks={num_tasks} is not "
                          f"1..{len(spec.datasets)}")


def check(cfg: dict) -> None:
    """Configuration-time check of the benchmark keys (before any data is loaded). Fills in what follows from them:
    `num_tasks` of a combined benchmark defaults to its number of datasets, and class_order_seed -1 is stored as 0
    (both mean numeric order)."""
    spec = spec_from_config(cfg)
    if cfg.get("class_order_seed") == -1:
        cfg["class_order_seed"] = 0
    if spec.kind == "combined" and cfg.get("num_tasks") is None:
        cfg["num_tasks"] = len(spec.datasets)
    if cfg.get("num_tasks") is not None:
        check_num_tasks(spec, cfg["num_tasks"])


def label(cfg: dict) -> str:
    """The benchmark part of run folders (see the naming rule above); a config made before the constructor keys
    existed has none of them and keeps its fixed name."""
    if cfg["benchmark"] in FIXED or cfg["benchmark"] in SYNTHETIC:
        return cfg["benchmark"]
    return spec_from_config(cfg).label


def benchmark_args(cfg: dict) -> dict:
    """The constructor keys of a configuration, as keyword arguments of `common.benchmarks.build_benchmark`."""
    return {k: cfg.get(k, default) for k, default in BENCHMARK_KEYS.items()}
