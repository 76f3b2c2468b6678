"""Fail-fast configuration through the run command: every bad value (each declared choice and range of every
registered method and of the engine) stops `python -m <package>.run` with exit code 2 and one `error:` line that
names the key and what it allows, before any data is loaded or any run folder (main or reference) is created.
Also: every hyperparameter is declared with help, `--help` teaches, `--print-config` runs nothing."""

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common import benchmarks, config, records, runner
from common.cli import show
from common.algorithm import Algorithm
from common.config import ConfigError, Hparam

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("baselines", "adahat", "fg_adahat", "amnesiachat")
REGISTRIES = {pkg: importlib.import_module(pkg).METHODS for pkg in PACKAGES}


def declared():
    """(package, method name, key, Hparam) for every hyperparameter of every registered method, each declaration
    once (the same class registered in several packages is checked in the first)."""
    seen, out = set(), []
    for pkg, methods in REGISTRIES.items():
        for name, cls in methods.items():
            for key, spec in cls.hparam_specs().items():
                if (cls, key) not in seen:
                    seen.add((cls, key))
                    out.append((pkg, name, key, spec))
    return out


def bad_values(spec: Hparam) -> list[str]:
    """Command-line values the declaration must reject: outside each bound, outside the choices, the wrong type."""
    out = []
    if spec.choices or spec.pattern:
        out.append("nope")
    if spec.gt is not None:
        out.append(f"{spec.gt:g}")
    if spec.ge is not None:
        out.append(f"{spec.ge - 1:g}")
    if spec.lt is not None:
        out.append(f"{spec.lt:g}")
    if spec.le is not None:
        out.append(f"{spec.le + 1:g}")
    wrong_type = {bool: "maybe", int: "1.5", float: "fast"}.get(spec.value_type())
    return out + [wrong_type] if wrong_type else out


def type_word(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number"}[kind]


def cases():
    """(package, argv without data_dir/out_dir, key, what the message must say)."""
    out = []
    for pkg, name, key, spec in declared():
        base = unlearning(pkg, name)
        for value in bad_values(spec):
            type_error = value in ("maybe", "1.5", "fast")
            needle = type_word(spec.value_type()) if type_error else spec.describe()
            out.append((pkg, [f"method={name}", "benchmark=pmnist", *base, f"{key}={value}"], key, needle))
    for key, spec in config.ENGINE_KEYS.items():
        spec = config.as_hparam(spec)
        if key in ("method", "benchmark"):
            continue
        for value in [v for v in bad_values(spec) if v not in ("maybe", "1.5", "fast")]:  # choices and bounds
            out.append(("baselines", ["method=finetuning", "benchmark=pmnist", f"{key}={value}"], key,
                        spec.describe()))
    return out


def unlearning(pkg: str, name: str) -> list[str]:
    """Settings that make an AmnesiacHAT-package method's run an unlearning run (where its checks act)."""
    if pkg == "amnesiachat" and REGISTRIES[pkg][name].unlearnable:
        return ["num_tasks=5", "unlearning_requests=published"]
    return []


SPECIAL = [  # (package, argv, key, what the message must say)
    ("adahat", ["method=adahat", "benchmark=pmnist", "semantics=nope"], "semantics", "current, paper2024"),
    ("adahat", ["method=adahat", "benchmark=pmnist", "alpha=-1"], "alpha", "> 0"),
    ("baselines", ["method=hat", "benchmark=pmnist", "s_max=-5"], "s_max", "> 0"),
    ("fg_adahat", ["method=fgadahat_ig", "benchmark=pmnist", "base_linear=-3"], "base_linear", ">= 0"),
    ("fg_adahat", ["method=fgadahat_ig", "benchmark=pmnist", "study=mian"], "study", "ablation, adahat_semantics"),
    ("amnesiachat", ["method=amnesiachat", "benchmark=pmnist", "study=mian"], "study", "main, main_dil"),
    ("baselines", ["method=hat", "benchmark=pmnist", "batch_norm=true"], "batch_norm", "hat_batch_norm"),
    ("baselines", ["method=finetuning", "benchmark=pmnist", "references=only"], "references", "auto, none"),
    ("amnesiachat", ["method=finetuning", "benchmark=pmnist", "unlearning_requests=published"], "unlearn",
     "amnesiachat"),
    ("amnesiachat", ["method=amnesiachat", "benchmark=pmnist", "num_tasks=5", "unlearning_requests=5:1"],
     "unlearning_requests", "no longer unlearnable"),
    ("amnesiachat", ["method=amnesiachat", "benchmark=pmnist", "num_tasks=5", "unlearning_requests=published",
                     "hat_batch_norm=shared"], "hat_batch_norm", "none"),
    ("amnesiachat", ["method=amnesiachat", "benchmark=pmnist", "unlearning_requests=2:x"], "unlearning_requests",
     "2:1,4:2+3"),
    ("baselines", ["method=hat", "benchmark=pmnist", "--verbose"], "--verbose", "--print-config"),
]


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to build a benchmark (load data) fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(benchmarks, "build_benchmark", forbidden)
    monkeypatch.setattr(runner, "build_benchmark", forbidden, raising=False)


def run_main(pkg, argv, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "runs"
    data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    code = runner.main([*argv, f"data_dir={data}", f"out_dir={out}"], REGISTRIES[pkg], REPO / pkg)
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    return code, captured, seconds, data, out


def check_rejected(code, err, seconds, data, out, key, needle):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert key in lines[0] and needle in lines[0], (key, needle, lines[0])
    assert seconds < 5, seconds
    assert not out.exists(), "a run folder was created"
    assert not any(data.iterdir()), "the data folder was touched"


def grouped():
    """The cases grouped by package and method (one test each, to keep the suite's item count small)."""
    groups: dict[str, list] = {}
    for case in cases() + SPECIAL:
        groups.setdefault(f"{case[0]}-{case[1][0].split('=')[1]}", []).append(case)
    return groups


GROUPS = grouped()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_bad_values_stop_before_any_data_or_run(group, tmp_path, capsys, no_data):
    for i, (pkg, argv, key, needle) in enumerate(GROUPS[group]):
        code, captured, seconds, data, out = run_main(pkg, argv, tmp_path / str(i), capsys)
        check_rejected(code, captured.err, seconds, data, out, key, needle)


def test_every_declared_range_has_a_case():
    # the generated cases cover every key that declares choices, bounds or a pattern, in every registry
    covered = {(argv[0], argv[-1].split("=")[0]) for _, argv, _, _ in cases()}
    for pkg, name, key, spec in declared():
        if bad_values(spec):
            assert (f"method={name}", key) in covered
    assert len(cases()) > 150


def test_real_command_lines(tmp_path):
    """Three of the cases through a real `python -m <package>.run` process each. Their time is Python's and torch's
    start-up (several seconds on a busy 2-core machine); the in-process cases above time the check itself."""
    data, out = tmp_path / "data", tmp_path / "runs"
    data.mkdir()
    for pkg, argv, key, needle in (SPECIAL[0], SPECIAL[3], SPECIAL[5]):
        cmd = [sys.executable, "-m", f"{pkg}.run", *argv, f"data_dir={data}", f"out_dir={out}", "threads=1"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
        check_rejected(proc.returncode, proc.stderr, 0, data, out, key, needle)


# --- declarations ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_hyperparameter_is_declared_with_help(pkg):
    for name, cls in REGISTRIES[pkg].items():
        for key, spec in cls.hparam_specs().items():
            assert isinstance(spec, Hparam) and spec.help.strip(), f"{pkg}: {name}.{key} has no help"
            if spec.default is not None:  # the class default satisfies its own declaration
                assert not spec.violates(spec.default), (name, key)
    for key, spec in config.ENGINE_KEYS.items():
        assert config.as_hparam(spec).help.strip(), key


def test_every_study_entry_passes_its_checks():
    """The published settings of every study (what the sweeps run) satisfy every declaration."""
    count = 0
    for pkg in PACKAGES:
        for study in config.available_studies(REPO / pkg):
            spec = runner.read_study(REPO / pkg, study)
            for benchmark in spec["benchmarks"]:
                for entry in runner.study_entries(spec, benchmark):
                    cli, layer = runner.apply_study(REPO / pkg, {"study": study, "method": entry,
                                                                 "benchmark": benchmark})
                    config.resolve(cli, REGISTRIES[pkg], layer)
                    count += 1
    assert count > 100


class PlainDefaults(Algorithm):
    """A method that still declares plain defaults."""

    name = "plain"
    hparams = {"gamma": 0.5, "mode": "a"}


def test_plain_default_declarations_keep_working(capsys):
    methods = {"plain": PlainDefaults}
    cfg = config.resolve({"method": "plain", "benchmark": "synthetic", "gamma": "2"}, methods)
    assert cfg["gamma"] == 2.0 and cfg["mode"] == "a"
    assert PlainDefaults.all_hparams() == {"gamma": 0.5, "mode": "a"}
    with pytest.raises(ConfigError, match="gamma must be a number"):
        config.resolve({"method": "plain", "benchmark": "synthetic", "gamma": "x"}, methods)
    assert runner.main(["method=plain", "--help"], methods, REPO / "baselines") == 0
    assert "gamma = 0.5" in capsys.readouterr().out


def test_a_child_declaration_replaces_the_parents():
    amnesiac = REGISTRIES["amnesiachat"]["amnesiachat"].hparam_specs()
    assert amnesiac["buffer_size"].ge == 1 and REGISTRIES["baselines"]["der"].hparam_specs()["buffer_size"].ge == 0
    assert config.Hparam(0.0, ge=0, lt=1).describe() == ">= 0 and < 1"


# --- help and --print-config -------------------------------------------------------------------------------------


def test_general_help_lists_keys_methods_benchmarks_studies(capsys, no_data):
    assert runner.main(["--help"], REGISTRIES["fg_adahat"], REPO / "fg_adahat") == 0
    out = capsys.readouterr().out
    for key, spec in config.ENGINE_KEYS.items():
        spec = config.as_hparam(spec)
        assert f"  {key} = " in out and spec.help.split()[0] in out
        if spec.describe():
            assert spec.describe() in out
    assert "lr = 0.001" in out and "plateau_scheduler = auto" in out
    for name in REGISTRIES["fg_adahat"]:
        assert name in out
    for name in ("pmnist", "scifar100", "combined20", "synthetic_rgb"):
        assert name in out
    for study in ("main", "ablation", "hparams", "fg_semantics"):
        assert f"  {study}: " in out


@pytest.mark.parametrize("pkg, name", [("baselines", "hat"), ("adahat", "adahat"), ("fg_adahat", "fgadahat_icu"),
                                       ("amnesiachat", "amnesiachat"), ("amnesiachat", "clpu_derpp")])
def test_method_help_shows_its_hyperparameters(pkg, name, capsys, no_data):
    assert runner.main([f"method={name}", "--help"], REGISTRIES[pkg], REPO / pkg) == 0
    out = capsys.readouterr().out
    cls = REGISTRIES[pkg][name]
    published = cls.yaml_defaults()
    for key, spec in cls.hparam_specs().items():
        default = published.get(key, spec.default)
        assert f"  {key} = {show(default)}   (" in out, key
        assert spec.help[:40] in out.replace("\n      ", " ")
        if spec.equation:
            assert spec.equation in out
    if name == "fgadahat_icu":
        assert "importance = icu" in out and "alpha = 1.5e-07" in out  # the measure's published settings


def test_method_help_of_a_study_entry_and_of_an_unknown_method(capsys):
    assert runner.main(["study=alpha", "method=adahat_alpha2e-6", "--help"], REGISTRIES["adahat"],
                       REPO / "adahat") == 0
    assert "adahat (AdaHAT)" in capsys.readouterr().out
    assert runner.main(["method=nosuch", "-h"], REGISTRIES["adahat"], REPO / "adahat") == 2
    assert "registered methods" in capsys.readouterr().err


def test_method_help_through_the_real_command_line():
    proc = subprocess.run([sys.executable, "-m", "baselines.run", "method=hat", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "s_max = 400.0" in proc.stdout and "HAT Eq. 3" in proc.stdout


def test_print_config_resolves_and_runs_nothing(tmp_path, capsys, no_data):
    argv = ["study=main", "method=fgadahat_icu", "benchmark=pmnist", "seed=3", "--print-config"]
    code, captured, _, data, out = run_main("fg_adahat", argv, tmp_path, capsys)
    assert code == 0, captured.err
    printed = yaml.safe_load(captured.out)
    cli, layer = runner.apply_study(REPO / "fg_adahat", {"study": "main", "method": "fgadahat_icu",
                                                         "benchmark": "pmnist", "seed": "3", "data_dir": str(data),
                                                         "out_dir": str(out)})
    cfg = config.resolve(cli, REGISTRIES["fg_adahat"], layer)
    assert printed == cfg
    assert f"# run folder: {records.run_folder(cfg)}" in captured.out
    assert not out.exists() and not any(data.iterdir())
    # a bad value is still an error with --print-config
    code, captured, seconds, data, out = run_main("fg_adahat", [*argv, "alpha=0"], tmp_path, capsys)
    check_rejected(code, captured.err, seconds, data, out, "alpha", "> 0")
