"""Layered run configuration.

A run's configuration is one flat dict, resolved in this order (later wins):

1. the engine defaults below (`ENGINE_KEYS`) and the method's own `hparams`;
2. the method's YAML (`<package>/configs/<method>.yaml`);
3. the benchmark's YAML (`common/configs/benchmarks/<benchmark>.yaml`);
4. a paper study's settings (`study=NAME` with `<package>/configs/studies/NAME.yaml`), if any;
5. command-line `key=value` pairs.

Every key must be known (an engine key or a hyperparameter of the chosen method); anything else is an error that
names the closest valid keys. Values are checked against the type of their default.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path

import yaml

BENCHMARK_DIR = Path(__file__).parent / "configs" / "benchmarks"


class ConfigError(ValueError):
    """A configuration problem the user can fix (unknown key, bad value, missing file)."""


# key: (default, type, help). `None` default means "must be given" or "taken from the benchmark YAML".
ENGINE_KEYS: dict[str, tuple[object, type, str]] = {
    "method": (None, str, "registered method name"),
    "benchmark": (None, str, "benchmark name (pmnist, rmnist, smnist, scifar10, scifar100, combined20, combined5, synthetic)"),
    "package": ("", str, "paper package the run belongs to, the first folder level of its record (set by "
                         "`<package>.run`; default: the package that defines the method)"),
    "study": ("default", str, "folder that groups the runs of one study"),
    "run_name": ("", str, "folder name of the run inside the study (default: the method name)"),
    "seed": (1, int, "run seed: initialisation and batch order (data splits never depend on it)"),
    "num_tasks": (None, int, "number of tasks"),
    "epochs": (None, int, "epochs per task"),
    "batch_size": (None, int, "training batch size (drop_last, as published)"),
    "eval_batch_size": (2000, int, "batch size of test / validation passes (does not change results)"),
    "backbone": (None, str, "mlp or resnet18"),
    "batch_norm": (False, bool, "batch norm in the backbone"),
    "setting": ("til", str, "til (one head per task) or dil (one shared head)"),
    "lr": (1e-3, float, "Adam learning rate"),
    "weight_decay": (0.0, float, "Adam (L2) weight decay"),
    "plateau_scheduler": ("auto", str, "auto (as the method had it in the reference code), always or never"),
    "plateau_patience": (10, int, "ReduceLROnPlateau patience (epochs)"),
    "plateau_factor": (0.1, float, "ReduceLROnPlateau factor"),
    "train_subset": (0, int, "use only the first N training samples of each task (0 = all); quick mode only"),
    "references": ("auto", str, "auto: run or reuse joint/independent/random for FR and FWT (unlearning runs: retrain "
                                "and original for DD and AG); none: skip them; only: unlearning references only"),
    "device": ("cpu", str, "cpu or cuda[:k]"),
    "threads": (0, int, "torch CPU threads (0 = torch default)"),
    "data_dir": ("data", str, "where raw datasets and caches live"),
    "out_dir": ("runs", str, "root of the run records"),
    "log_every": (0, int, "print training loss every N steps (0 = only per epoch)"),
    "unlearning_requests": ("", str, "continual unlearning: '' (none), 'published' (the papers' schedule) or "
                                     "'after:ids' pairs such as '2:1,4:2,5:5'"),
    "unlearnable_age": (4, int, "a task can be unlearned while (current task - task) < this age"),
    "unlearnable_ages": ("", str, "per-task ages overriding unlearnable_age, e.g. '3:0,4:0' (CLPU-DER++)"),
    "cul_reference": ("", str, "set by the runner for the unlearning references: retrain (never-unlearned tasks "
                               "only) or original (all tasks), both without unlearning"),
    "tf32": (False, bool, "speed switch (CUDA): TF32 matmuls and convolutions"),
    "amp_bf16": (False, bool, "speed switch: bf16 autocast around the backbone only (HAT embeddings, gates, "
                              "compensation and heads stay fp32)"),
    "compile": (False, bool, "speed switch: torch.compile the backbone's forward (HAT embeddings, gates, "
                             "compensation and heads stay outside)"),
    "compile_backend": ("inductor", str, "torch.compile backend for compile=true (inductor; aot_eager to check "
                                         "the tracing without code generation)"),
}

# The reference learners behind FWT (independent) and FR (joint, random); ordinary runs, cached per reference key.
REFERENCES = ("joint", "independent", "random")

# ----- run identity -------------------------------------------------------------------------------------------
# Every key makes two runs distinct (a finished record is reused only when they agree on it) unless it is listed
# here; a key added to ENGINE_KEYS later is distinct-making by default.
EXECUTION_KEYS = ("device", "threads", "data_dir", "out_dir", "eval_batch_size", "log_every", "references", "tf32")
"""How and where a run is executed, not what it learns: never compared, never part of a folder name or digest."""
PLACEMENT_KEYS = ("package", "study", "run_name")
"""Where the record lives: the folder names them, so they are not compared with the record's own config."""
NOT_FOR_REFERENCES = ("method", "package", "study", "run_name", "references", "unlearning_requests",
                      "unlearnable_age", "unlearnable_ages", "cul_reference", "tf32", "amp_bf16", "compile",
                      "compile_backend")
"""Engine keys of a main run that its joint / independent / random references do not take over (these run the
plain backbone without speed switches); every other engine key is passed on, so a new engine key reaches them."""
NOT_DISTINCT = frozenset(EXECUTION_KEYS + PLACEMENT_KEYS)


def is_distinct(key: str) -> bool:
    """Whether `key` makes two runs distinct (see EXECUTION_KEYS, PLACEMENT_KEYS)."""
    return key not in NOT_DISTINCT


def reference_keys() -> tuple[str, ...]:
    """The engine keys a reference run takes over from its main run (identity and execution keys alike)."""
    return tuple(key for key in ENGINE_KEYS if key not in NOT_FOR_REFERENCES)


REFERENCE_KEYS = reference_keys()


def parse_cli(argv: list[str]) -> dict:
    """`['a=1', 'b=x']` -> {'a': 1, 'b': 'x'} (values parsed as YAML scalars)."""
    out = {}
    for item in argv:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value  # parsed by `coerce` according to the key's type
    return out


def load_yaml(path: Path) -> dict:
    """Read a YAML mapping; a missing or malformed file is a ConfigError. Parsed once per file version (planning a
    sweep resolves hundreds of runs from the same few files)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    return copy.deepcopy(_parsed_yaml(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=256)
def _parsed_yaml(path: str, mtime_ns: int) -> dict:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value")
    return data


def coerce(key: str, value, kind: type):
    """Check `value` against the type of the key; accept ints for floats and '1e-3'-style strings."""
    if isinstance(value, str) and kind is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{key}: cannot parse {value!r}") from None
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if kind is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if kind is str:
        if isinstance(value, (bool, dict, list)):
            raise ConfigError(f"{key} must be a word, got {value!r}")
        return str(value)
    if kind in (list, dict):
        if isinstance(value, kind):
            return value
        raise ConfigError(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def schema_for(method_cls) -> dict[str, tuple[object, type, str]]:
    """Engine keys plus the method's hyperparameters ({name: default})."""
    schema = dict(ENGINE_KEYS)
    for name, default in method_cls.all_hparams().items():
        kind = type(default) if default is not None else str
        schema[name] = (default, kind, f"{method_cls.__name__} hyperparameter")
    return schema


def merge_layer(cfg: dict, layer: dict, schema: dict, source: str) -> None:
    """Apply one layer of settings, rejecting unknown keys with a suggestion."""
    for key, value in layer.items():
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r} in {source}{hint}; valid keys: {', '.join(sorted(schema))}")
        _, kind, _ = schema[key]
        cfg[key] = coerce(key, value, kind)


def resolve(cli: dict, methods: dict, study_layer: dict | None = None) -> dict:
    """Resolve the full configuration of one run from the command line and the registry `methods`."""
    method = cli.get("method")
    if method is None:
        raise ConfigError("method=... is required; registered methods: " + ", ".join(sorted(methods)))
    if method not in methods:
        raise ConfigError(f"unknown method {method!r}; registered methods: {', '.join(sorted(methods))}")
    method_cls = methods[method]
    schema = schema_for(method_cls)
    cfg = {key: default for key, (default, _, _) in schema.items()}
    merge_layer(cfg, method_cls.yaml_defaults(), schema, f"{method}.yaml")
    benchmark = cli.get("benchmark")
    if benchmark is None:
        raise ConfigError("benchmark=... is required; available: " + ", ".join(available_benchmarks()))
    merge_layer(cfg, benchmark_yaml(benchmark), schema, f"benchmark {benchmark}")
    if study_layer:
        merge_layer(cfg, study_layer, schema, "study file")
    merge_layer(cfg, cli, schema, "the command line")
    cfg["method"], cfg["benchmark"] = method, benchmark
    cfg["package"] = cfg["package"] or method_cls.__module__.split(".")[0]
    validate(cfg)
    return cfg


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml"))


def benchmark_yaml(name: str) -> dict:
    path = BENCHMARK_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(available_benchmarks())}")
    return load_yaml(path)


def validate(cfg: dict) -> None:
    """Value checks that do not depend on the method."""
    for key in ("num_tasks", "epochs", "batch_size", "backbone"):
        if cfg[key] is None:
            raise ConfigError(f"{key} is not set (neither by the benchmark YAML nor on the command line)")
    for key in ("num_tasks", "epochs", "batch_size", "eval_batch_size"):
        if cfg[key] < 1:
            raise ConfigError(f"{key} must be at least 1, got {cfg[key]}")
    if cfg["seed"] < 0 or cfg["train_subset"] < 0 or cfg["threads"] < 0:
        raise ConfigError("seed, train_subset and threads must not be negative")
    choices = {"backbone": ("mlp", "resnet18"), "setting": ("til", "dil"), "references": ("auto", "none", "only"),
               "plateau_scheduler": ("auto", "always", "never"), "cul_reference": ("", "retrain", "original")}
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
    if cfg["lr"] <= 0 or cfg["weight_decay"] < 0:
        raise ConfigError("lr must be > 0 and weight_decay >= 0")
    if cfg["unlearnable_age"] < 1:
        raise ConfigError("unlearnable_age must be at least 1")
    if not (cfg["device"] == "cpu" or cfg["device"].startswith("cuda")):
        raise ConfigError(f"device must be cpu or cuda[:k], got {cfg['device']!r}")


def run_name(cfg: dict) -> str:
    return cfg["run_name"] or cfg["method"]


def reference_config(cfg: dict, reference: str) -> dict:
    """The configuration of a reference run (joint, independent or random) for the main run `cfg`.

    References use the plain backbone of the main run: the same batch-norm flag (masked HAT-family networks have
    none), optimiser, epochs, batch size and seed, so every method with the same key shares them.
    """
    ref = {key: cfg[key] for key in reference_keys() if key in cfg}
    ref["method"] = reference
    return ref


# identity keys of a reference that its folder states outside the readable key (see `reference_key`)
_REFERENCE_KEY_PARTS = ("benchmark", "num_tasks", "seed", "backbone", "batch_norm", "setting", "lr", "weight_decay",
                        "epochs", "batch_size", "plateau_scheduler", "plateau_patience", "plateau_factor",
                        "train_subset")


def reference_key(cfg: dict) -> str:
    """Readable folder name of the reference runs shared by every method with these settings. Any other identity
    key a reference takes over is appended as `<key>-<value>` when it differs from its benchmark's default."""
    bn = "bn" if cfg["batch_norm"] else "nobn"
    parts = [cfg["backbone"], bn, cfg["setting"], f"lr{cfg['lr']:g}", f"wd{cfg['weight_decay']:g}",
             f"e{cfg['epochs']}", f"b{cfg['batch_size']}"]
    if cfg["plateau_scheduler"] != "auto":
        parts.append(f"plateau-{cfg['plateau_scheduler']}")
    if (cfg["plateau_patience"], cfg["plateau_factor"]) != (ENGINE_KEYS["plateau_patience"][0],
                                                            ENGINE_KEYS["plateau_factor"][0]):
        parts.append(f"patience{cfg['plateau_patience']}-factor{cfg['plateau_factor']:g}")
    if cfg["train_subset"]:
        parts.append(f"sub{cfg['train_subset']}")
    bench = benchmark_yaml(cfg["benchmark"])
    for key in reference_keys():
        if is_distinct(key) and key not in _REFERENCE_KEY_PARTS and key in cfg:
            if cfg[key] != bench.get(key, ENGINE_KEYS[key][0]):
                parts.append(f"{key}-{cfg[key]}")
    return "-".join(parts)


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=True)
