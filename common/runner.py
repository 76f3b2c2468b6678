"""Run one configured experiment end to end: references, training, evaluation, record.

Used by every paper folder's `run.py`:  python -m <folder>.run method=NAME benchmark=NAME [key=value ...]
A finished run is never retrained (its metrics are printed); a crashed one resumes after the last task of its
checkpoint (`common/checkpoint.py`). FR and FWT need the joint / independent / random reference runs: with
references=auto they are run first if missing (cached under `<out_dir>/references/` and shared by every method with
the same reference key), with references=none the metrics say why they are missing.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from common import config as config_lib
from common import planner
from common import records
from common.benchmark_config import BENCHMARK_KEYS, benchmark_args
from common.benchmarks import build_benchmark
from common.checkpoint import Checkpoint
from common.data import DataMissingError
from common.engine import run_continual, run_continual_unlearning, test_features
from common.metrics import all_metrics
from common.studies import STUDY_KEYS, apply_study, finished_references, read_study, study_entries  # noqa: F401
from common.unlearning import UnlearningProtocol

REFERENCES = config_lib.REFERENCES


def set_threads(cfg: dict) -> None:
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])


def apply_speed_switches(algo, cfg: dict) -> None:
    """Optional speed switches, off by default (`docs/fidelity.md#speed-switches`). TF32 for CUDA matmuls and convs;
    `compile` runs the backbone's forward through `torch.compile`; bf16 autocast wraps the backbone's forward only.
    Task embeddings and gates are computed outside the backbone's forward, and the masks, the embedding-gradient
    compensation and the heads stay fp32 and uncompiled.

    The new forward is bound to the backbone as a method, so a deep copy (LwF teachers, Independent's per-task
    networks, CLPU's temporary networks) runs on its own weights, not on the live backbone's."""
    torch.backends.cuda.matmul.allow_tf32 = cfg["tf32"]
    torch.backends.cudnn.allow_tf32 = cfg["tf32"]
    if not (cfg["compile"] or cfg["amp_bf16"]):
        return
    forward = type(algo.backbone).forward
    if cfg["compile"]:
        forward = torch.compile(forward, backend=cfg["compile_backend"])
    if cfg["amp_bf16"]:
        forward = _bf16_autocast(forward, "cuda" if cfg["device"].startswith("cuda") else "cpu")
    algo.backbone.forward = types.MethodType(forward, algo.backbone)


def _bf16_autocast(forward, device_type: str):
    def autocast_forward(module, *args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return forward(module, *args, **kwargs).float()

    return autocast_forward


def seed_generators(seed: int) -> None:
    """Seed torch, numpy and Python's `random` from the run seed at the run start, as the reference code does
    (numpy matters for GS: Captum draws GradientSHAP's interpolation points from numpy's global generator)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train_and_record(cfg: dict, methods: dict, refs: dict | None = None, echo: bool = True) -> Path:
    """Train one run into its record folder (which must not hold a finished run). Returns the folder."""
    set_threads(cfg)
    record = records.RunRecord(cfg, echo=echo)
    tasks = build_benchmark(cfg["benchmark"], cfg["num_tasks"], cfg["data_dir"], cfg["device"], cfg["train_subset"],
                            **benchmark_args(cfg))
    checkpoint = Checkpoint(record.folder, cfg)
    checkpoint.start(record)  # resumes after the task of the folder's checkpoint, if it has a usable one
    record.log("config " + json.dumps(cfg, sort_keys=True))
    seed_generators(cfg["seed"])
    algo = methods[cfg["method"]](cfg, [t.num_classes for t in tasks], tasks[0].input_shape).to(cfg["device"])
    apply_speed_switches(algo, cfg)
    algo = checkpoint.restore(algo, record)
    if is_unlearning(cfg):
        metrics, notes = unlearning_run(algo, tasks, cfg, record, refs, checkpoint)
        record.finish(metrics, notes)
        record.log("metrics " + json.dumps(metrics))
        checkpoint.finish(algo)
        return record.folder
    acc = run_continual(algo, tasks, cfg, record, checkpoint)
    for name, rows in algo.extra_records().items():
        record.write_curve(name, rows)
    notes = {}
    if getattr(algo, "multitask", False):
        metrics = {"aa": sum(acc[-1]) / len(acc[-1])}
    else:
        metrics = all_metrics(acc, **(refs or {}))
        if refs is None:
            notes["fr_fwt"] = "not computed: this run was made with references=none"
    record.finish(metrics, notes)
    record.log("metrics " + json.dumps(metrics))
    checkpoint.finish(algo)
    return record.folder


class RunLock:
    """Exclusive creation of `<folder>.lock`: two processes never train into the same run folder (parallel sweeps,
    several main runs needing the same reference). It holds `<pid>@<host>`; a lock whose process on this host has
    died is taken over, one held on another host (a cluster node sharing the file system) counts as held."""

    def __init__(self, folder: Path):
        self.path = folder.parent / (folder.name + ".lock")

    def acquire(self, log) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        waited = False
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, f"{os.getpid()}@{socket.gethostname()}".encode())
                os.close(fd)
                return
            except FileExistsError:
                if not self._holder_alive():
                    self.path.unlink(missing_ok=True)
                    continue
                if not waited:
                    log(f"waiting for another process to finish {self.path.with_suffix('')} (lock {self.path}; "
                        "delete it if the process that holds it is gone)")
                    waited = True
                time.sleep(5)

    def _holder_alive(self) -> bool:
        try:
            pid, _, host = self.path.read_text().partition("@")
            if host and host != socket.gethostname():
                return True
            os.kill(int(pid or 0), 0)
            return True
        except (ValueError, ProcessLookupError, FileNotFoundError):
            return False
        except PermissionError:
            return True

    def held(self) -> bool:
        """Whether a live process holds the lock now."""
        return self.path.exists() and self._holder_alive()

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def finished_reference(ref_cfg: dict, methods: dict, label: str) -> Path:
    """The folder of the finished reference run `ref_cfg`, training it first if needed."""
    folder = records.run_folder(ref_cfg)
    if not records.is_done(folder):
        print(f"{label}: training into {folder}", flush=True)
        train_locked(ref_cfg, methods, refs=None)
    records.check_same_config(folder, ref_cfg)
    return folder


def train_locked(cfg: dict, methods: dict, refs: dict | None) -> Path:
    """`train_and_record` under the folder's lock; if another process finished it meanwhile, reuse that."""
    folder = records.run_folder(cfg)
    lock = RunLock(folder)
    lock.acquire(print)
    try:
        if records.is_done(folder):
            records.check_same_config(folder, cfg)
            return folder
        return train_and_record(cfg, methods, refs)
    finally:
        lock.release()


def run(cfg: dict, methods: dict) -> Path:
    """The references `common.planner` says the run needs (trained first where missing), then the main run;
    returns the run folder (with references=only, the original reference's)."""
    folder = records.run_folder(cfg)
    if records.is_done(folder):
        records.check_same_config(folder, cfg)
        print(f"already finished: {folder}")
        print(json.dumps(records.read_record(folder)["metrics"]))
        return folder
    if cfg["references"] == "only" and not is_unlearning(cfg):
        raise config_lib.ConfigError("references=only is for unlearning runs (it trains their two references)")
    if is_unlearning(cfg):
        check_unlearnable(cfg, methods)
    needed = planner.reference_configs(cfg, methods)
    unlearning = is_unlearning(cfg)
    label = "unlearning reference" if unlearning else "reference"
    folders = {name: finished_reference(ref, methods, f"{label} {name}") for name, ref in needed.items()}
    if cfg["references"] == "only":
        return folders["original"]
    refs = folders if unlearning else {name: records.read_acc(f) for name, f in folders.items()} or None
    return train_locked(cfg, methods, refs or None)


# ----- continual unlearning -----------------------------------------------------------------------------------------
UNLEARNING_REFERENCES = planner.UNLEARNING_REFERENCES
is_unlearning = planner.is_unlearning
unlearning_reference_config = planner.unlearning_reference_config
DD_KINDS = {"dd": "cka", "dd_euclidean": "euclidean", "dd_cosine": "cosine", "dd_manhattan": "manhattan"}


def check_unlearnable(cfg: dict, methods: dict) -> None:
    UnlearningProtocol.from_config(cfg)  # a schedule that cannot be carried out is an error before any training
    if not cfg["cul_reference"] and not methods[cfg["method"]].unlearnable:
        unlearnable = sorted(name for name, cls in methods.items() if cls.unlearnable)
        raise config_lib.ConfigError(f"method {cfg['method']!r} cannot unlearn; methods that can: "
                                     f"{', '.join(unlearnable) or 'none in this registry'}")


def unlearning_run(algo, tasks, cfg: dict, record, refs: dict | None, checkpoint=None) -> tuple[dict, dict]:
    """Train under the unlearning protocol; returns (metrics, notes). The retrain reference skips every task that is
    ever unlearned and saves its test features (`features.pt`) for DD; the original reference trains all tasks; neither
    unlearns. A main run gets DD against the retrain reference and AG against the original one."""
    from common import unlearning_metrics as um

    protocol = UnlearningProtocol.from_config(cfg)
    kind = cfg["cul_reference"]
    skip = set(protocol.unlearned_tasks) if kind == "retrain" else set()
    acc, unlearned = run_continual_unlearning(algo, tasks, cfg, record, protocol, skip, enabled=not kind,
                                              checkpoint=checkpoint)
    final = acc[-1]
    trained_remaining = [t for t in protocol.remaining_tasks if t not in skip]
    metrics = {"aa": um.remaining_accuracy(final, [t for t in range(1, len(final) + 1) if t not in skip]),
               "aa_remaining": um.remaining_accuracy(final, trained_remaining), "unlearned": unlearned,
               **algo.extra_metrics()}
    if kind == "retrain":
        torch.save(test_features(algo, tasks, cfg["eval_batch_size"]), record.folder / "features.pt")
    if kind or refs is None:
        notes = {} if kind else {"dd_ag": "not computed: this run was made with references=none"}
        return metrics, notes
    features = test_features(algo, tasks, cfg["eval_batch_size"])
    ref_features = torch.load(refs["retrain"] / "features.pt")
    for name, distance in DD_KINDS.items():
        per_task = um.dd_per_task(features, ref_features, cfg["batch_size"], distance)
        metrics[name] = um.average_over(per_task, protocol.unlearned_tasks)
        metrics[f"{name}_per_task"] = {str(t): v for t, v in per_task.items()}
    original = records.read_acc(refs["original"])[-1]
    per_task_ag, metrics["ag"] = um.accuracy_gain(final, original, protocol.remaining_tasks)
    metrics["ag_per_task"] = {str(t): v for t, v in per_task_ag.items()}
    return metrics, {}




def main(argv: list[str], methods: dict, package_dir: Path) -> int:
    """Command-line entry point shared by the paper folders; returns the exit code. `--help` (with `method=NAME`:
    that method's hyperparameters) and `--print-config` (the resolved configuration and run folder) run nothing."""
    from common import cli as cli_help

    try:
        flags, cli = cli_help.split_flags(argv)
        if not argv or "--help" in flags:
            print(cli_help.help_text(cli, methods, package_dir, __doc__))
            return 0
        cli = {"package": package_dir.name, **cli}
        cli, layer = apply_study(package_dir, cli)
        cfg = config_lib.resolve(cli, methods, layer)
        if "--print-config" in flags:
            print(cli_help.config_text(cfg), end="")
            return 0
        run(cfg, methods)
    except (config_lib.ConfigError, records.RecordError, DataMissingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
