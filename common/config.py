"""Layered run configuration.

A run's configuration is one flat dict, resolved in this order (later wins):

1. the engine defaults below (`ENGINE_KEYS`) and the method's own `hparams`;
2. the method's YAML (`<package>/configs/<method>.yaml`);
3. the benchmark's YAML (`common/configs/benchmarks/<benchmark>.yaml`);
4. a paper study's settings (`study=NAME` with `<package>/configs/studies/NAME.yaml`), if any;
5. command-line `key=value` pairs.

Every key is declared once, as an `Hparam` (default, one-line help, allowed choices or range, the paper equation it
implements). Every key must be known (an engine key or a hyperparameter of the chosen method); anything else is an
error that names the closest valid keys. Values are checked against the type of their default and against what the
declaration allows, and then the method's own cross-key checks (`Algorithm.check_config`) run: all of it before any
data is loaded or any reference run trains.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path

import yaml

from common.hparams import ConfigError, Hparam, as_hparam  # noqa: F401 (re-exported)

BENCHMARK_DIR = Path(__file__).parent / "configs" / "benchmarks"


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml"))


# Engine keys (every method has them). A `None` default is "must be given" or "taken from the benchmark YAML".
ENGINE_KEYS: dict[str, Hparam] = {
    "method": Hparam(None, "registered method name (see --help for the list)"),
    "benchmark": Hparam(None, "benchmark name: " + ", ".join(available_benchmarks())),
    "dataset": Hparam("", "dataset of benchmark=permuted|rotated|split (a name registered in common.data)"),
    "datasets": Hparam("", "comma-separated datasets of benchmark=combined, one per task, in task order"),
    "package": Hparam("", "paper package the run belongs to, the first folder level of its record (set by "
                          "`<package>.run`; default: the package that defines the method)"),
    "class_order_seed": Hparam(0, "benchmark=split: 0 or -1 deals the classes in numeric order, K > 0 in a seeded "
                                  "random order"),
    "study": Hparam("default", "a study of the paper folder (<package>/configs/studies/<name>.yaml): its settings "
                               "apply and its runs are grouped in one folder; default: no study"),
    "run_name": Hparam("", "folder name of the run inside the study (default: the method name)"),
    "seed": Hparam(1, "run seed: initialisation and batch order (data splits never depend on it)", ge=0),
    "num_tasks": Hparam(None, "number of tasks", kind=int, ge=1),
    "epochs": Hparam(None, "epochs per task", kind=int, ge=1),
    "batch_size": Hparam(None, "training batch size (drop_last, as published)", kind=int, ge=1),
    "eval_batch_size": Hparam(2000, "batch size of test / validation passes (does not change results)", ge=1),
    "backbone": Hparam(None, "network: mlp or resnet18", choices=("mlp", "resnet18")),
    "batch_norm": Hparam(False, "batch norm in the plain backbone (HAT-family masked networks: hat_batch_norm)"),
    "setting": Hparam("til", "til (one head per task) or dil (one shared head)", choices=("til", "dil")),
    "lr": Hparam(1e-3, "Adam learning rate", gt=0),
    "weight_decay": Hparam(0.0, "Adam (L2) weight decay", ge=0),
    "plateau_scheduler": Hparam("auto", "ReduceLROnPlateau on the validation loss: auto (as the method had it in "
                                        "the reference code), always or never", choices=("auto", "always", "never")),
    "plateau_patience": Hparam(10, "ReduceLROnPlateau patience (epochs)", ge=0),
    "plateau_factor": Hparam(0.1, "ReduceLROnPlateau factor", gt=0, lt=1),
    "train_subset": Hparam(0, "use only the first N training samples of each task (0 = all); quick mode only", ge=0),
    "references": Hparam("auto", "auto: run or reuse joint/independent/random for FR and FWT (unlearning runs: "
                                 "retrain and original for DD and AG); none: skip them; only: unlearning references "
                                 "only", choices=("auto", "none", "only")),
    "device": Hparam("cpu", "cpu or cuda[:k]", pattern=r"cpu|cuda(:\d+)?", allowed="cpu, cuda or cuda:<k>"),
    "threads": Hparam(0, "torch CPU threads (0 = torch default)", ge=0),
    "data_dir": Hparam("data", "where raw datasets and caches live"),
    "out_dir": Hparam("runs", "root of the run records"),
    "log_every": Hparam(0, "print training loss every N steps (0 = only per epoch)", ge=0),
    "keep_checkpoint": Hparam(False, "keep the whole state after the last task (checkpoint.pt) once the run is "
                                     "done; false keeps only the final weights (model.pt); numbers do not change"),
    "log_capacity": Hparam(True, "HAT family: record the network capacity of every training step (capacity.csv); "
                                 "false skips its per-step sum; numbers do not change"),
    "unlearning_requests": Hparam("", "continual unlearning: '' (none), 'published' (the papers' schedule) or "
                                      "'after:ids' pairs such as '2:1,4:2,5:5'"),
    "unlearnable_age": Hparam(4, "a task can be unlearned while (current task - task) < this age", ge=1),
    "unlearnable_ages": Hparam("", "per-task ages overriding unlearnable_age, e.g. '3:0,4:0' (CLPU-DER++)"),
    "task_seeding": Hparam("per_task", "unlearning runs and their references: reseed torch from (seed, task) at "
                                       "every task's start, so a task draws the same numbers in the run and both "
                                       "references (per_task), or seed once at the run start as the AmnesiacHAT "
                                       "paper's code does (per_run)", choices=("per_task", "per_run")),
    "head_init": Hparam("upfront", "unlearning runs and their references, task-incremental heads: drawn with the "
                                   "network at the run start (upfront), or redrawn from the current random state "
                                   "right before their task trains, as the AmnesiacHAT paper's code creates a head "
                                   "when its task arrives (on_arrival)", choices=("upfront", "on_arrival")),
    "cul_reference": Hparam("", "set by the runner for the unlearning references: retrain (never-unlearned tasks "
                                "only) or original (all tasks), both without unlearning",
                            choices=("", "retrain", "original")),
    "tf32": Hparam(False, "speed switch (CUDA): TF32 matmuls and convolutions"),
    "amp_bf16": Hparam(False, "speed switch: bf16 autocast around the backbone only (HAT embeddings, gates, "
                              "compensation and heads stay fp32)"),
    "compile": Hparam(False, "speed switch: torch.compile the backbone's forward (HAT embeddings, gates, "
                             "compensation and heads stay outside)"),
    "compile_backend": Hparam("inductor", "torch.compile backend for compile=true (inductor; aot_eager to check "
                                          "the tracing without code generation)"),
}

# The reference learners behind FWT (independent) and FR (joint, random); ordinary runs, cached per reference key.
REFERENCES = ("joint", "independent", "random")

# ----- run identity -------------------------------------------------------------------------------------------
# Every key makes two runs distinct (a finished record is reused only when they agree on it) unless it is listed
# here; a key added to ENGINE_KEYS later is distinct-making by default.
EXECUTION_KEYS = ("device", "threads", "data_dir", "out_dir", "eval_batch_size", "log_every", "references", "tf32",
                  "keep_checkpoint", "log_capacity")
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
            raise ConfigError(f"expected key=value (or --help, --print-config), got {item!r}")
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


def schema_for(method_cls) -> dict[str, Hparam]:
    """Engine keys plus the method's hyperparameters, every one as an `Hparam`."""
    schema = {key: as_hparam(spec) for key, spec in ENGINE_KEYS.items()}
    schema.update(method_cls.hparam_specs())
    return schema


def merge_layer(cfg: dict, layer: dict, schema: dict, source: str, sources: dict | None = None) -> None:
    """Apply one layer of settings, rejecting unknown keys with a suggestion; `sources` records where each key
    was last set."""
    for key, value in layer.items():
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r} in {source}{hint}; valid keys: {', '.join(sorted(schema))}")
        cfg[key] = coerce(key, value, schema[key].value_type())
        if sources is not None:
            sources[key] = source


def resolve(cli: dict, methods: dict, study_layer: dict | None = None) -> dict:
    """Resolve and check the full configuration of one run from the command line and the registry `methods`."""
    method = cli.get("method")
    if method is None:
        raise ConfigError("method=... is required; registered methods: " + ", ".join(sorted(methods)))
    if method not in methods:
        raise ConfigError(f"unknown method {method!r}; registered methods: {', '.join(sorted(methods))}")
    method_cls = methods[method]
    schema = schema_for(method_cls)
    cfg = {key: spec.default for key, spec in schema.items()}
    sources: dict[str, str] = {}
    merge_layer(cfg, method_cls.yaml_defaults(), schema, f"{method}.yaml", sources)
    benchmark = cli.get("benchmark")
    if benchmark is None:
        raise ConfigError("benchmark=... is required; available: " + ", ".join(available_benchmarks()))
    merge_layer(cfg, benchmark_yaml(benchmark), schema, f"benchmark {benchmark}", sources)
    if study_layer:
        merge_layer(cfg, study_layer, schema, "the study file", sources)
    merge_layer(cfg, cli, schema, "the command line", sources)
    cfg["method"], cfg["benchmark"] = method, benchmark
    cfg["package"] = cfg["package"] or method_cls.__module__.split(".")[0]
    for key, spec in schema.items():
        spec.check(key, cfg[key], sources.get(key, ""))
    from common import benchmark_config  # imports this module
    benchmark_config.check(cfg)
    validate(cfg)
    method_cls.check_config(cfg)
    check_unlearning(cfg, methods)
    return cfg


def study_file(package_dir: Path, study: str) -> Path:
    """Where study `study` of a paper folder is kept: `<package>/configs/studies/<study>.yaml`."""
    return Path(package_dir) / "configs" / "studies" / f"{study}.yaml"


def available_studies(package_dir: Path) -> list[str]:
    return sorted(p.stem for p in (Path(package_dir) / "configs" / "studies").glob("*.yaml"))


def study_path(package_dir: Path, study: str | None) -> Path | None:
    """The file of study `study` of a paper folder; None for the default study (no file, no settings). An unknown
    name is an error listing the folder's studies."""
    if not study or study == ENGINE_KEYS["study"].default:
        return None
    path = study_file(package_dir, study)
    if not path.exists():
        names = available_studies(package_dir)
        raise ConfigError(f"unknown study {study!r}; studies of {Path(package_dir).name}: "
                          f"{', '.join(names) or 'none'} (or default: no study)")
    return path


def benchmark_yaml(name: str) -> dict:
    path = BENCHMARK_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(available_benchmarks())}")
    return load_yaml(path)


def validate(cfg: dict) -> None:
    """Engine checks that involve more than one key (single values are checked by their `Hparam`)."""
    for key in ("num_tasks", "epochs", "batch_size", "backbone"):
        if cfg[key] is None:
            raise ConfigError(f"{key} is not set (neither by the benchmark YAML nor on the command line)")
    if cfg["references"] == "only" and not cfg["unlearning_requests"].strip():
        raise ConfigError("references=only is for unlearning runs (it trains their two references); "
                          "allowed here: auto, none")


def check_unlearning(cfg: dict, methods: dict) -> None:
    """An unlearning schedule must be one the run can carry out, with a method that can unlearn."""
    if not cfg["unlearning_requests"].strip():
        return
    from common.unlearning import UnlearningConfigError, UnlearningProtocol

    try:
        UnlearningProtocol.from_config(cfg)
    except UnlearningConfigError as err:
        raise ConfigError(f"unlearning_requests={cfg['unlearning_requests']!r} cannot be carried out: {err}") from None
    if not cfg["cul_reference"] and not methods[cfg["method"]].unlearnable:
        unlearnable = sorted(name for name, cls in methods.items() if cls.unlearnable)
        raise ConfigError(f"method {cfg['method']!r} cannot unlearn (unlearning_requests is set); methods that can: "
                          f"{', '.join(unlearnable) or 'none in this registry'}")


def run_name(cfg: dict) -> str:
    return cfg["run_name"] or cfg["method"]


def reference_config(cfg: dict, reference: str) -> dict:
    """The configuration of a reference run (joint, independent or random) for the main run `cfg`.

    References use the plain backbone of the main run: the same batch-norm flag (masked HAT-family networks have
    none), optimiser, epochs, batch size and seed, so every method with the same key shares them. The benchmark's
    data (`dataset`, `datasets`, `class_order_seed`) is part of the key and of the folder: a fixed name keeps its
    own name, a constructor is filed under a label naming its data (`common.benchmark_config`), so
    `benchmark=permuted dataset=kmnist` never shares a reference with `pmnist`.
    """
    ref = {key: cfg.get(key, ENGINE_KEYS[key][0]) for key in reference_keys()}  # a record older than a key: default
    ref["method"] = reference
    return ref


# identity keys of a reference that its folder states outside the readable key (see `reference_key`); the
# benchmark's data keys are in the benchmark label of the folder (`common.benchmark_config`)
_REFERENCE_KEY_PARTS = ("benchmark", "dataset", "datasets", "class_order_seed", "num_tasks", "seed", "backbone",
                        "batch_norm", "setting", "lr", "weight_decay", "epochs", "batch_size", "plateau_scheduler",
                        "plateau_patience", "plateau_factor", "train_subset")


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
