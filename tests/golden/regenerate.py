"""Run the golden runs of `manifest.yaml` and compare or rewrite their committed `acc.csv`.

    python -m tests.golden.regenerate [NAMES ...] [--data-dir DIR]     rewrite tests/golden/<name>/ (default: all)
    python -m tests.golden.regenerate --list                          the names and their commands

Each run goes through the run command itself (`python -m <package>.run ...`, executed in this process with
`runpy`, so the imports are paid once), into a scratch folder. Rewriting a golden file changes what the trajectory
guard accepts: commit it on its own, saying which change moved which runs and why (docs/fidelity.md#golden-runs).
"""

from __future__ import annotations

import argparse
import csv
import math
import runpy
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported, as in the tests

import torch  # noqa: E402
import yaml  # noqa: E402

GOLDEN = Path(__file__).resolve().parent
ROOT = GOLDEN.parent.parent
MACHINE_KEYS = ("data_dir", "out_dir")  # paths of the machine that ran it: not stored in <name>/config.yaml
TOLERANCE = 1e-6  # accuracies are counts / N (N = 10000 test images per task): a real change moves one by >= 1e-4


def manifest() -> dict[str, tuple[str, list[str]]]:
    """{name: (package, command-line settings)} in the manifest's order."""
    spec = yaml.safe_load((GOLDEN / "manifest.yaml").read_text())
    common = spec["settings"].split()
    runs = {}
    for name, line in spec["runs"].items():
        package, *args = line.split()
        runs[name] = (package, args + common)
    return runs


def command(name: str, data_dir: Path, out_dir: Path) -> list[str]:
    package, args = manifest()[name]
    return ["python", "-m", f"{package}.run", *args, f"data_dir={data_dir}", f"out_dir={out_dir}"]


def run(name: str, data_dir: Path, out_dir: Path) -> Path:
    """Run golden run `name` into `out_dir` (empty) through its run command; returns its record folder."""
    argv = command(name, data_dir, out_dir)
    threads, saved_argv = torch.get_num_threads(), sys.argv
    sys.argv = [argv[2], *argv[3:]]
    try:
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    except SystemExit as end:
        if end.code not in (0, None):
            raise RuntimeError(f"golden run {name!r} failed (exit {end.code}): {' '.join(argv)}") from None
    finally:
        sys.argv = saved_argv
        torch.set_num_threads(threads)
    (acc,) = Path(out_dir).rglob("acc.csv")
    return acc.parent


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= TOLERANCE


def first_difference(golden: Path, produced: Path) -> str | None:
    """None when the two acc.csv agree (text, or numbers within TOLERANCE); else where they first differ."""
    want, got = read_csv(golden), read_csv(produced)
    if want[0] != got[0]:
        return f"header: golden {want[0]}, now {got[0]}"
    if len(want) != len(got):
        return f"{len(want) - 1} rows in the golden file, {len(got) - 1} now"
    for w_row, g_row in zip(want[1:], got[1:]):
        for column, w, g in zip(want[0], w_row + [""] * len(want[0]), g_row + [""] * len(want[0])):
            if not same(w, g):
                return f"row after_training_task={w_row[0]}, column {column}: golden {w or '(empty)'}, now {g or '(empty)'}"
    return None


def stored_config(folder: Path) -> dict:
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    return {k: v for k, v in cfg.items() if k not in MACHINE_KEYS}


def config_changes(name: str, folder: Path) -> list[str]:
    """Keys whose resolved value differs from the committed <name>/config.yaml (a changed default, a new key)."""
    old, new = yaml.safe_load((GOLDEN / name / "config.yaml").read_text()), stored_config(folder)
    return [f"{k}: {old.get(k, '(absent)')} -> {new.get(k, '(absent)')}" for k in sorted(set(old) | set(new))
            if old.get(k, "(absent)") != new.get(k, "(absent)")]


def regenerate(name: str, data_dir: Path) -> float:
    """Rewrite tests/golden/<name>/{acc.csv, config.yaml}; returns the CPU seconds of the run."""
    with tempfile.TemporaryDirectory(prefix=f"golden-{name}-") as scratch:
        start = time.process_time()
        folder = run(name, data_dir, Path(scratch))
        seconds = time.process_time() - start
        target = GOLDEN / name
        target.mkdir(exist_ok=True)
        shutil.copyfile(folder / "acc.csv", target / "acc.csv")
        (target / "config.yaml").write_text(yaml.safe_dump(stored_config(folder), sort_keys=True))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="golden runs to rewrite (default: all of manifest.yaml)")
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="where MNIST is (default: data/)")
    parser.add_argument("--list", action="store_true", help="print the names and commands, run nothing")
    args = parser.parse_args(argv)
    runs = manifest()
    unknown = sorted(set(args.names) - set(runs))
    if unknown:
        parser.error(f"unknown golden runs {unknown}; known: {', '.join(runs)}")
    if args.list:
        for name in runs:
            print(f"{name}: {' '.join(command(name, Path(args.data_dir), Path('<scratch>')))}")
        return 0
    total = 0.0
    for name in args.names or list(runs):
        seconds = regenerate(name, Path(args.data_dir))
        total += seconds
        print(f"golden {name}: rewrote tests/golden/{name}/acc.csv ({seconds:.1f} CPU s)", flush=True)
    print(f"{total:.1f} CPU s in all; review `git diff tests/golden` and commit it saying why the runs moved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
