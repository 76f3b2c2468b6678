"""Help texts and `--print-config` of the run command `python -m <package>.run` (`common.runner.main`).

    python -m adahat.run --help                          engine keys, methods, benchmarks, studies
    python -m adahat.run method=adahat --help            the method's hyperparameters
    python -m adahat.run method=adahat benchmark=pmnist alpha=2e-6 --print-config
                                                         the resolved configuration and the run folder; runs nothing
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

from common import config as config_lib
from common import records

FLAGS = {"--help": "--help", "-h": "--help", "--print-config": "--print-config"}
REQUIRED = ("method", "benchmark")  # engine keys without a default that the command line must give


def split_flags(argv: list[str]) -> tuple[set[str], dict]:
    """(flags, key=value settings) of a command line; an unknown flag is an error naming the known ones."""
    flags, settings = set(), []
    for item in argv:
        if item.startswith("-") and "=" not in item:
            if item not in FLAGS:
                raise config_lib.ConfigError(f"unknown option {item!r}; options: --help, --print-config")
            flags.add(FLAGS[item])
        else:
            settings.append(item)
    return flags, config_lib.parse_cli(settings)


def show(value) -> str:
    return "''" if value == "" else str(value)


def key_lines(key: str, spec: config_lib.Hparam, default) -> list[str]:
    """Two or three lines per key: `key = default  (type, allowed)`, its help, the equation it implements."""
    if default is None:
        default = "(required)" if key in REQUIRED else "(set by the benchmark)"
    allowed = ", ".join(filter(None, (spec.value_type().__name__, spec.describe())))
    lines = [f"  {key} = {show(default)}   ({allowed})"]
    lines += textwrap.wrap(spec.help or "(no help declared)", 112, initial_indent=" " * 6, subsequent_indent=" " * 6)
    if spec.equation:
        lines.append(f"      implements: {spec.equation}")
    return lines


def studies_lines(package_dir: Path) -> list[str]:
    lines = ["  default: no study (runs under <out_dir>/default/)"]
    for name in config_lib.available_studies(package_dir):
        path = config_lib.study_path(package_dir, name)
        description = config_lib.load_yaml(path).get("description", "")
        lines.append(f"  {name}: {description}")
    return lines


def general_help(methods: dict, package_dir: Path, usage: str) -> str:
    package = Path(package_dir).name
    lines = [usage.strip(), "", f"usage: python -m {package}.run method=NAME benchmark=NAME [key=value ...] "
             "[--print-config]", f"       python -m {package}.run method=NAME --help   (the method's hyperparameters)",
             "", "engine keys (every method):"]
    for key, spec in config_lib.ENGINE_KEYS.items():
        spec = config_lib.as_hparam(spec)
        lines += key_lines(key, spec, spec.default)
    names = ", ".join(sorted(methods))
    lines += ["", "methods:"] + textwrap.wrap(names, 112, initial_indent="  ", subsequent_indent="  ")
    lines += ["", "benchmarks:"] + textwrap.wrap(", ".join(config_lib.available_benchmarks()), 112,
                                                 initial_indent="  ", subsequent_indent="  ")
    lines += ["", f"studies of {package} (study=NAME):"] + studies_lines(package_dir)
    return "\n".join(lines)


def method_help(name: str, method_cls) -> str:
    """The method's hyperparameters with their published defaults (class default, then the method's YAML)."""
    doc = (method_cls.__doc__ or inspect.getmodule(method_cls).__doc__ or "").strip().splitlines()
    lines = [f"{name} ({method_cls.__name__}){': ' + doc[0] if doc else ''}", "",
             "hyperparameters (default: the published setting of its YAML, else the class default):"]
    specs = method_cls.hparam_specs()
    yaml_defaults = method_cls.yaml_defaults()
    for key, spec in specs.items():
        lines += key_lines(key, spec, yaml_defaults.get(key, spec.default))
    if not specs:
        lines.append("  (none)")
    engine_set = {k: v for k, v in yaml_defaults.items() if k not in specs}
    if engine_set:
        lines += ["", "engine keys its YAML sets: " + ", ".join(f"{k}={show(v)}" for k, v in engine_set.items())]
    lines += ["", "engine keys: python -m <package>.run --help"]
    return "\n".join(lines)


def help_text(cli: dict, methods: dict, package_dir: Path, usage: str) -> str:
    """General help, or the help of the method named on the command line (a study entry names its method)."""
    name = cli.get("method")
    if name is None:
        return general_help(methods, package_dir, usage)
    if name not in methods and config_lib.study_path(package_dir, cli.get("study")) is not None:
        from common.studies import apply_study

        name = apply_study(package_dir, cli)[0]["method"]
    if name not in methods:
        raise config_lib.ConfigError(f"unknown method {name!r}; registered methods: {', '.join(sorted(methods))}")
    return method_help(name, methods[name])


def config_text(cfg: dict) -> str:
    """The resolved configuration (YAML) and the folder the run would write."""
    return config_lib.dump(cfg) + f"# run folder: {records.run_folder(cfg)}\n"
