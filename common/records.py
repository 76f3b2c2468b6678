"""Run records: one folder per run, written progressively, `done` last.

    config.yaml      the fully resolved configuration
    log.txt          everything the run printed
    acc.csv          after_training_task, average_accuracy, test_on_task_1..N (lower-triangular, one row per task)
    train_curve.csv  (methods that train) per-epoch train loss, validation loss and accuracy, seconds
    metrics.json     AA, BWT, FWT, FR (when references exist), seconds, peak memory, versions, git commit
    <curve>.csv      optional per-step curves, e.g. capacity.csv of HAT-family runs
    done             marker: the record is complete
    model.pt         the final network's weights (written after `done`)
    checkpoint.pt    the whole state after the last finished task (`common/checkpoint.py`; removed after `done`
                     unless keep_checkpoint=true)

A folder with `done` is never overwritten; a folder without it is a crashed run: it resumes after the task of its
checkpoint, or restarts from scratch when there is no usable checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from common import config as config_lib


class RecordError(RuntimeError):
    """A run folder that cannot be used: corrupt, or finished with a different configuration."""


class CorruptRecordError(RecordError):
    """A record whose files cannot be read: the message names the folder and says to delete it."""


def run_folder(cfg: dict) -> Path:
    """`<out_dir>/<package>/<study>/<benchmark>-<num_tasks>/<run name>/seed<k>`; the joint / independent / random
    references of ordinary runs are shared by every package under `<out_dir>/references/<benchmark>-<num_tasks>/
    <reference key>/<method>/seed<k>`. `<benchmark>` is a fixed benchmark's name, or a constructor's label naming
    its data (`permuted_kmnist`; `common.benchmark_config.label`)."""
    from common.benchmark_config import label  # imports common.config, which this module imports too
    bench = f"{label(cfg)}-{cfg['num_tasks']}"
    plain_reference = not cfg.get("unlearning_requests")  # unlearning runs of Independent are ordinary runs
    if cfg["method"] in config_lib.REFERENCES and cfg.get("study", "default") == "default" and plain_reference:
        return (Path(cfg["out_dir"]) / "references" / bench / config_lib.reference_key(cfg) / cfg["method"]
                / f"seed{cfg['seed']}")
    return (Path(cfg["out_dir"]) / cfg["package"] / cfg["study"] / bench / config_lib.run_name(cfg)
            / f"seed{cfg['seed']}")


def is_done(folder: Path) -> bool:
    return (Path(folder) / "done").exists()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_commit() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "platform": platform.platform(), "git_commit": git_commit(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda"] = torch.version.cuda
    return env


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def json_safe(value):
    """NaN / inf -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class RunRecord:
    """Writes one run folder. `start()` refuses to touch a finished run."""

    def __init__(self, cfg: dict, folder: Path | None = None, echo: bool = True):
        self.cfg = cfg
        self.folder = Path(folder) if folder is not None else run_folder(cfg)
        self.echo = echo
        self.task_seconds: list[float] = []
        self.train_seconds: list[float] = []
        self.acc_rows: list[list] = []  # as written to acc.csv (kept for checkpoints)
        self.curve_rows: list[dict] = []  # as written to train_curve.csv
        self.started = time.perf_counter()

    def start(self) -> None:
        if is_done(self.folder):
            raise RecordError(f"{self.folder} is a finished run; refusing to overwrite it")
        if self.folder.exists():
            shutil.rmtree(self.folder)  # a crashed run: start again from scratch
        self.folder.mkdir(parents=True)
        write_atomic(self.folder / "config.yaml", config_lib.dump(self.cfg))
        self._append_csv("acc.csv", self._acc_header(), None)
        self.log(f"run {self.folder}")
        self.log("environment " + json.dumps(environment(self.cfg["device"])))

    def snapshot(self) -> dict:
        """What a checkpoint keeps of the record: the rows written so far, timings and elapsed seconds."""
        return {"acc_rows": self.acc_rows, "curve_rows": self.curve_rows, "task_seconds": self.task_seconds,
                "train_seconds": self.train_seconds, "elapsed": time.perf_counter() - self.started}

    def resume(self, snapshot: dict) -> None:
        """Continue a crashed run from a checkpoint's `snapshot()`: acc.csv and train_curve.csv are rewritten with
        the checkpoint's rows (dropping rows of a task that finished after it), log.txt is kept."""
        if is_done(self.folder):
            raise RecordError(f"{self.folder} is a finished run; refusing to overwrite it")
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()
        (self.folder / "train_curve.csv").unlink(missing_ok=True)
        (self.folder / "acc.csv").unlink(missing_ok=True)
        write_atomic(self.folder / "config.yaml", config_lib.dump(self.cfg))
        self._append_csv("acc.csv", self._acc_header(), None)
        for row in snapshot["acc_rows"]:
            self._append_csv("acc.csv", None, row)
        for curve in snapshot["curve_rows"]:
            self._append_csv("train_curve.csv", list(curve), list(curve.values()))
        self.acc_rows, self.curve_rows = list(snapshot["acc_rows"]), list(snapshot["curve_rows"])
        self.task_seconds, self.train_seconds = list(snapshot["task_seconds"]), list(snapshot["train_seconds"])
        self.started = time.perf_counter() - snapshot["elapsed"]
        self.log(f"run {self.folder}")
        self.log("environment " + json.dumps(environment(self.cfg["device"])))

    def _acc_header(self) -> list[str]:
        n = self.cfg["num_tasks"]
        return ["after_training_task", "average_accuracy"] + [f"test_on_task_{j}" for j in range(1, n + 1)]

    def log(self, message: str) -> None:
        if self.echo:
            print(message, flush=True)
        with open(self.folder / "log.txt", "a") as f:
            f.write(message + "\n")

    def _append_csv(self, name: str, header: list[str] | None, row: list | None) -> None:
        path = self.folder / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new and header is not None:
                writer.writerow(header)
            if row is not None:
                writer.writerow(row)

    def add_task(self, task_id: int, row: list[float], curves: list[dict], train_seconds: float,
                 seconds: float) -> None:
        tested = [a for a in row if not math.isnan(a)]  # unlearning references leave untrained tasks as NaN
        acc_row = [task_id, sum(tested) / max(1, len(tested)), *row]
        self._append_csv("acc.csv", None, acc_row)
        self.acc_rows.append(acc_row)
        for curve in curves:
            self._append_csv("train_curve.csv", list(curve), list(curve.values()))
            self.curve_rows.append(dict(curve))
        self.train_seconds.append(train_seconds)
        self.task_seconds.append(seconds)

    def write_curve(self, name: str, rows: list[dict]) -> None:
        if not rows:
            return
        with open(self.folder / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def finish(self, metrics: dict, notes: dict | None = None) -> None:
        payload = {"metrics": metrics, "seconds": time.perf_counter() - self.started,
                   "train_seconds": sum(self.train_seconds), "seconds_per_task": self.task_seconds,
                   "peak_memory_mb": peak_memory_mb(self.cfg["device"]),
                   "environment": environment(self.cfg["device"]), "notes": notes or {}}
        write_atomic(self.folder / "metrics.json", json.dumps(json_safe(payload), indent=2, allow_nan=False))
        (self.folder / "done").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))


def read_acc(folder: Path) -> list[list[float]]:
    """The accuracy matrix of a record (rows as written; the multi-task references have a single row)."""
    path = Path(folder) / "acc.csv"
    try:
        with open(path) as f:
            reader = csv.reader(f)
            next(reader)
            rows = []
            for line in reader:
                task = int(line[0])
                row = [float(v) for v in line[2:2 + task]]
                if len(row) < min(task, len(rows) + 1):
                    raise ValueError(f"row after task {task} has {len(row)} accuracies")
                rows.append(row)
    except (OSError, ValueError, StopIteration, IndexError) as err:
        raise CorruptRecordError(f"corrupt run record {folder}: cannot read acc.csv ({err}); "
                                 "delete the folder to rerun it")
    if not rows:
        raise CorruptRecordError(f"corrupt run record {folder}: acc.csv has no rows; delete the folder to rerun it")
    return rows


def read_record(folder: Path) -> dict:
    """config, accuracy matrix and metrics of a finished run; RecordError if it is not finished or corrupt."""
    folder = Path(folder)
    if not is_done(folder):
        raise RecordError(f"{folder} is not a finished run (no `done` marker)")
    cfg = read_config(folder)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as err:
        raise CorruptRecordError(f"corrupt run record {folder}: cannot read metrics.json ({type(err).__name__}); "
                          "delete the folder to rerun it") from None
    return {"folder": folder, "config": cfg, "acc": read_acc(folder), **metrics}


def read_config(folder: Path) -> dict:
    """The config.yaml of a record; RecordError naming the folder if it is missing or unreadable."""
    try:
        cfg = yaml.safe_load((Path(folder) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CorruptRecordError(f"corrupt run record {folder}: cannot read config.yaml ({type(err).__name__}); "
                          "delete the folder to rerun it") from None
    if not isinstance(cfg, dict):
        raise CorruptRecordError(f"corrupt run record {folder}: config.yaml holds no mapping; "
                                 "delete the folder to rerun it")
    return cfg


def inert_keys(cfg: dict) -> frozenset:
    """The method's settings that do nothing in run `cfg`: its `unlearning_keys` if `cfg` is an unlearning
    reference, which never unlearns, and its `til_only_keys` if `cfg` is not task-incremental; empty otherwise."""
    if not cfg.get("package"):
        return frozenset()
    from common import planner

    method_cls = planner.package_methods(cfg["package"]).get(cfg.get("method"))
    inert = set(getattr(method_cls, "unlearning_keys", ())) if cfg.get("cul_reference") else set()
    if cfg.get("setting") != "til":
        inert |= set(getattr(method_cls, "til_only_keys", ()))
    return frozenset(inert)


def check_same_config(folder: Path, cfg: dict) -> None:
    """A finished run may be reused only if it was made with the same configuration. A setting added after the run
    is fine at its default if it is an engine key, and at any value if it does nothing in that run (an unlearning
    reference never unlearns; a task-incremental-only setting in another setting)."""
    old = read_config(folder)
    inert = inert_keys(cfg)

    def differs(key) -> bool:
        if key not in old and key in config_lib.ENGINE_KEYS:  # a setting added after the run: fine at its default
            return cfg.get(key) != config_lib.ENGINE_KEYS[key][0]
        if key not in old and key in inert:
            return False
        return old.get(key) != cfg.get(key)

    diff = sorted(k for k in set(old) | set(cfg) if config_lib.is_distinct(k) and differs(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {cfg.get(k)!r}" for k in diff)
        raise RecordError(f"{folder} was finished with a different configuration ({details}); "
                          "set run_name=... or study=... to keep both, or delete the folder")


def main(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m common.records", description="Run-record maintenance.")
    sub = parser.add_subparsers(dest="command", required=True)
    move = sub.add_parser("migrate", help="move records of the layout without a package level to "
                                          "<out_dir>/<package>/<study>/...; nothing is retrained")
    move.add_argument("--out-dir", default="runs")
    move.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    export = sub.add_parser("export", help="copy finished runs, without weights, checkpoints or logs and with thinned "
                                           "curves, into the committed store (common/record_store.py)")
    export.add_argument("--out-dir", default="runs")
    export.add_argument("--to", default="", help="the store (default: results/records, or $REPRO_RECORDS)")
    export.add_argument("--include-default", action="store_true", help="also ad-hoc runs of the `default` study")
    export.add_argument("--points-per-task", type=int, default=32, help="rows kept per task of each curve")
    args = parser.parse_args(argv)
    if not Path(args.out_dir).is_dir():
        print(f"error: {args.out_dir} is not a folder of run records", file=sys.stderr)
        return 2
    if args.command == "export":
        from common import record_store
        return record_store.export_command(args)
    from common.record_migration import migrate
    moves = migrate(Path(args.out_dir), args.dry_run)
    print(f"{len(moves)} records {'to move' if args.dry_run else 'moved'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
