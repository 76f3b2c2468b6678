"""Time methods on Permuted MNIST (20 tasks x 2 epochs, evaluation included) against the bare training loop.

    python -m scripts.speed [--methods finetuning,hat,adahat,fgadahat_ig | --all] [--repeats K] [--threads N]
                            [--tasks T] [--epochs E] [--write results/speed.md] [key=value ...]

For every method, K times: the floor (`scripts/floor_pmnist.py`, the bare PyTorch loop of the same work on random
data), then the method (references=none, in a temporary folder), so floor and method alternate and share the
machine's state of the moment. Prints each method's median seconds, median seconds per task and the median of the
K method / floor ratios. `--all` times every registered method and writes the table to `results/speed.md` (or
`--write`, which also writes the table of a `--methods` list) with the machine, threads, commit and load average.
`--threads` sets torch's threads in the floor and `threads=` in the runs; `--tasks` / `--epochs` shrink both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from amnesiachat import METHODS as AMNESIAC_METHODS
from fg_adahat import METHODS

ROOT = Path(__file__).resolve().parent.parent


def run_floor(tasks: int, epochs: int, threads: int) -> float:
    cmd = [sys.executable, "-m", "scripts.floor_pmnist", f"--tasks={tasks}", f"--epochs={epochs}",
           f"--threads={threads}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return float(re.search(r"total ([\d.]+) s", out).group(1))


def run_module(method: str) -> str:
    """The paper folder whose registry has the method (AmnesiacHAT's own methods run under its protocol)."""
    return "fg_adahat.run" if method in METHODS else "amnesiachat.run"


def run_method(method: str, args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", run_module(method), f"method={method}", "benchmark=pmnist", "seed=1",
               "references=none", f"out_dir={tmp}", *args]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        return json.loads(next(Path(tmp).rglob("metrics.json")).read_text())


def time_method(method: str, opts, overrides: list[str]) -> dict:
    """Floor and method in turn, `opts.repeats` times; medians of seconds, seconds per task and ratio."""
    args = [f"num_tasks={opts.tasks}", f"epochs={opts.epochs}", *overrides]
    if opts.threads:
        args.append(f"threads={opts.threads}")
    floors, seconds, per_task, ratios, aa = [], [], [], [], None
    for _ in range(opts.repeats):
        floors.append(run_floor(opts.tasks, opts.epochs, opts.threads))
        result = run_method(method, args)
        seconds.append(result["seconds"])
        per_task.append(statistics.mean(result["seconds_per_task"]))
        ratios.append(result["seconds"] / floors[-1])
        aa = result["metrics"].get("aa")
    return {"method": method, "floor": statistics.median(floors), "seconds": statistics.median(seconds),
            "per_task": statistics.median(per_task), "ratio": statistics.median(ratios), "aa": aa,
            "spread": (min(ratios), max(ratios))}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def report(rows: list[dict], opts, overrides: list[str], started: str, loads: tuple[str, str]) -> str:
    lines = [
        "# Speed against the bare training loop",
        "",
        f"Permuted MNIST, {opts.tasks} tasks x {opts.epochs} epochs, seed 1, evaluation included, references=none"
        + (f", {' '.join(overrides)}" if overrides else "") + ".",
        f"Floor: `python -m scripts.floor_pmnist` (the bare PyTorch loop of the same work on random data), run "
        f"before every method run; each figure is the median of {opts.repeats} floor / method pair(s).",
        "",
        f"- made by: `python -m scripts.speed {'--all' if opts.all else '--methods ' + opts.methods} "
        f"--repeats {opts.repeats} --tasks {opts.tasks} "
        f"--epochs {opts.epochs}" + (f" --threads {opts.threads}" if opts.threads else "") + "`",
        f"- machine: {machine()}",
        f"- threads: {opts.threads or 'torch default'}",
        f"- commit: {commit()}",
        f"- started {started}; load average (1, 5, 15 min) at the start {loads[0]}, at the end {loads[1]}",
        "",
        "| method | seconds | seconds per task | floor seconds | ratio to floor | ratio min-max | AA |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        aa = f"{100 * r['aa']:.2f}" if r["aa"] is not None else ""
        lines.append(f"| {r['method']} | {r['seconds']:.1f} | {r['per_task']:.2f} | {r['floor']:.1f} | "
                     f"{r['ratio']:.2f} | {r['spread'][0]:.2f}-{r['spread'][1]:.2f} | {aa} |")
    return "\n".join(lines) + "\n"


def all_methods() -> list[str]:
    return [*METHODS, *[m for m in AMNESIAC_METHODS if m not in METHODS]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="finetuning,hat,adahat,fgadahat_ig")
    parser.add_argument("--all", action="store_true", help="every registered method; writes --write")
    parser.add_argument("--write", type=Path, default=None, help="write the table (--all: results/speed.md)")
    parser.add_argument("--repeats", type=int, default=1, help="floor / method pairs per method")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for floor and runs (0: default)")
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="key=value for every run (e.g. device=cuda)")
    opts = parser.parse_args(argv)
    methods = all_methods() if opts.all else [m for m in opts.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS and m not in AMNESIAC_METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}")
    started, first_load = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), load()
    rows = []
    for method in methods:
        row = time_method(method, opts, opts.overrides)
        rows.append(row)
        print(f"{method:20s} {row['seconds']:7.1f} s ({row['per_task']:.2f} s per task), floor {row['floor']:.1f} s, "
              f"{row['ratio']:.2f} x floor", flush=True)
    if opts.all and opts.write is None:
        opts.write = ROOT / "results" / "speed.md"
    if opts.write is not None:
        opts.write.parent.mkdir(parents=True, exist_ok=True)
        opts.write.write_text(report(rows, opts, opts.overrides, started, (first_load, load())))
        print(f"written {opts.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
