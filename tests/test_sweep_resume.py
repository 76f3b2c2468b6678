"""A whole sweep killed with SIGKILL (the sweep process and the run it was training) and started again finishes
with every record equal to an uninterrupted sweep's: locks of dead processes are not held, the killed run resumes
from its checkpoint, finished runs are skipped (real MNIST, small settings)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_checkpoint import numbers

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parent.parent
SWEEP = ["--package", "fg_adahat", "--study", "main", "--benchmarks", "pmnist", "--methods", "finetuning,hat",
         "--seeds", "1", "--jobs", "1", "--threads", "1"]
SMALL = ["num_tasks=3", "epochs=1", "train_subset=2000"]


def sweep(out_dir: Path, data_dir: Path, **popen):
    cmd = [sys.executable, "-m", "scripts.sweep", *SWEEP, *SMALL, f"data_dir={data_dir}", f"out_dir={out_dir}"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)


def records_of(out_dir: Path) -> dict:
    return {str(p.parent.relative_to(out_dir)): numbers(p.parent) for p in sorted(out_dir.rglob("acc.csv"))}


def test_a_killed_sweep_started_again_finishes_like_an_uninterrupted_one(tmp_path, mnist_dir):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert sweep(whole, mnist_dir).wait(timeout=900) == 0

    first = sweep(killed, mnist_dir, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and first.poll() is None and not list((killed / "fg_adahat").rglob("checkpoint.pt")):
        time.sleep(0.02)  # a main run has finished a task and is training the next one
    assert first.poll() is None, "the sweep ended before a main run had checkpointed a task"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    unfinished = [p for p in (killed / "fg_adahat").rglob("seed1") if not (p / "done").exists()]
    assert unfinished, "the kill came after every main run had finished"

    assert sweep(killed, mnist_dir).wait(timeout=900) == 0
    expected = records_of(whole)
    assert len(expected) == 8  # finetuning and hat, each with joint, independent, random (with and without BN)
    assert records_of(killed) == expected
    resumed = [p for p in unfinished if "resumed from checkpoint.pt after task" in (p / "log.txt").read_text()]
    assert resumed, "the killed run was trained again from scratch instead of resuming"
