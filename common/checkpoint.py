"""Checkpoints at task boundaries: a killed or crashed run resumes at its next task, with bit-identical numbers.

After every finished task (its `end_task`, any unlearning requests and its test row) the engine calls
`Checkpoint.save`, which writes `checkpoint.pt` into the run folder atomically (a temporary file, then `os.replace`):

* the whole method object, pickled as one graph: the networks, the optimizer and scheduler, and every piece of the
  method's state (task masks, cumulative and summative masks, importances, teachers, per-task networks, replay
  buffer, Fisher sums, update store, backups, counters...). One graph keeps every alias intact (the update store
  holds the live backbone, EWC its parameter list, the optimizer the parameters), and a state added to a method later
  is saved without any code here;
* the progress of the task loop (accuracy rows, unlearned tasks), the record's train-curve rows and timings;
* every random-number state: torch CPU, CUDA (when initialised), numpy and Python `random` (a `torch.Generator`
  kept by a method is pickled with its state as part of the method).

A run folder without `done` but with a checkpoint made with the same configuration and code commit resumes after
the checkpoint's task; anything else (no checkpoint, another configuration, another commit, an unreadable file)
starts from scratch, as before. After `done`, `model.pt` keeps the final network's weights; `checkpoint.pt` is
removed unless `keep_checkpoint=true`. See `docs/checkpoints.md`.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import random
import signal
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import config as config_lib
from common import records

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
FORMAT = 1
# Test hook: the process kills itself (SIGKILL) once task k is recorded, just before its checkpoint is written.
KILL_ENV = "CL_KILL_AFTER_TASK"
# A run may resume with other values of the execution keys of `common.config` (they never change what it learns),
# except those the saved state or its numbers are bound to: the device the tensors live on, TF32 matmuls, and the
# evaluation batch size (kept equal so the resumed rows come from the same batches).
RESUME_BOUND_KEYS = ("device", "tf32", "eval_batch_size", "log_capacity")  # log_capacity: a complete capacity.csv
RESUME_FREE_KEYS = tuple(k for k in config_lib.EXECUTION_KEYS if k not in RESUME_BOUND_KEYS)


# ----- pickling the switched forward of `runner.apply_speed_switches` ---------------------------------------------------
_switched = {"forward": None}  # the run's switched backbone forward while a checkpoint is being loaded


def _switched_forward(module: nn.Module):
    """Rebind the run's switched forward (bf16 autocast, torch.compile) to a module of a loaded checkpoint."""
    if _switched["forward"] is None:
        raise RuntimeError("this checkpoint was saved with a speed switch (amp_bf16 / compile) the run does not have")
    return types.MethodType(_switched["forward"], module)


def _importable(cls: type) -> bool:
    try:
        return getattr(importlib.import_module(cls.__module__), cls.__qualname__) is cls
    except (ImportError, AttributeError):
        return False


class _Pickler(pickle.Pickler):
    """Two special cases:

    * a module's instance-level `forward` (a speed switch) is saved as a reference to the run's switch: compiled and
      autocast wrappers are not picklable, and the switch is rebuilt from the configuration anyway;
    * a class made by `type(...)` that cannot be imported by name (a method variant built at run time; every
      registered method today is an importable class) is saved as its name, bases and class attributes and made
      again on loading.
    """

    def reducer_override(self, obj):
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not _importable(obj):
            attrs = {k: v for k, v in vars(obj).items() if k not in ("__dict__", "__weakref__")}
            return type, (obj.__name__, obj.__bases__, attrs)
        if isinstance(obj, types.MethodType) and isinstance(obj.__self__, nn.Module):
            name = obj.__func__.__name__
            if getattr(type(obj.__self__), name, None) is not obj.__func__:
                return _switched_forward, (obj.__self__,)
        return NotImplemented


_pickle_module = types.SimpleNamespace(Pickler=_Pickler, Unpickler=pickle.Unpickler, load=pickle.load,
                                       dump=pickle.dump, __name__="common.checkpoint.pickle")


# ----- random-number states ------------------------------------------------------------------------------------------
def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----- the checkpoint of one run -------------------------------------------------------------------------------------
class Checkpoint:
    """The checkpoint file of one run folder. `start(record)` opens the record (resumed or fresh), `restore(algo)`
    swaps in the saved method, `save` runs after each task, `finish` after `done`."""

    def __init__(self, folder: Path, cfg: dict):
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINT
        self.cfg = cfg
        self.commit = records.git_commit()
        self.saved: dict | None = None  # the checkpoint being resumed from
        self.seconds: list[float] = []  # time spent writing each checkpoint

    # ----- resuming ------------------------------------------------------------------------------------------------
    @property
    def last_task(self) -> int:
        """The id of the task the resumed checkpoint was saved after (0: nothing to resume)."""
        return self.saved["progress"]["task"] if self.saved else 0

    @property
    def progress(self) -> dict:
        """What the task loop saved with the checkpoint (empty when starting from scratch)."""
        return self.saved["progress"] if self.saved else {}

    def start(self, record: records.RunRecord) -> None:
        """Resume the record from a usable checkpoint, else start it from scratch (which clears the folder)."""
        self.saved, reason = self._read()
        if self.saved is None:
            record.start()
            if reason:
                record.log(f"checkpoint not used ({reason}): starting from scratch")
            return
        record.resume(self.saved["record"])
        record.log(f"resumed from {CHECKPOINT} after task {self.last_task}")

    def _read(self) -> tuple[dict | None, str]:
        if records.is_done(self.folder) or not self.path.exists():
            return None, ""
        try:
            with open(self.path, "rb") as f:
                saved = torch.load(f, weights_only=False)  # the method itself stays pickled until `restore`
        except Exception as err:  # an unreadable file is never fatal: the run starts again
            return None, f"cannot read it: {type(err).__name__}: {err}"
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            return None, "not a checkpoint of this format"
        diff = sorted(k for k in set(saved["config"]) | set(self.cfg)
                      if k not in RESUME_FREE_KEYS and saved["config"].get(k) != self.cfg.get(k))
        if diff:
            return None, "made with another configuration: " + ", ".join(diff)
        if saved["commit"] != self.commit:
            return None, f"made at code commit {saved['commit']}, now {self.commit}"
        return saved, ""

    def restore(self, algo: nn.Module, record: records.RunRecord) -> nn.Module:
        """The method to train on: the saved one (with the run's speed switch rebound and the random-number states
        of the checkpoint), or `algo` itself when starting from scratch. Call after building `algo` exactly as a
        fresh run does (construction draws random numbers, and the switch is taken from it). A method that cannot
        be unpickled (its code changed in a dirty tree) starts the run from scratch."""
        if self.saved is None:
            return algo
        _switched["forward"] = getattr(vars(algo.backbone).get("forward"), "__func__", None)
        try:
            loaded = torch.load(io.BytesIO(self.saved.pop("algorithm").numpy().tobytes()), weights_only=False,
                                pickle_module=_pickle_module)
        except Exception as err:
            self.saved = None
            record.start()
            record.log(f"checkpoint not used (cannot rebuild the method: {type(err).__name__}: {err}): "
                       "starting from scratch")
            return algo
        finally:
            _switched["forward"] = None
        loaded.cfg = self.cfg
        set_rng_state(self.saved["rng"])
        return loaded

    # ----- saving ------------------------------------------------------------------------------------------------------
    def save(self, algo: nn.Module, record: records.RunRecord, progress: dict) -> None:
        """Write the state after task `progress['task']` (atomically; the previous checkpoint stays until then)."""
        if os.environ.get(KILL_ENV) == str(progress["task"]):
            os.kill(os.getpid(), signal.SIGKILL)
        start = time.perf_counter()
        method = io.BytesIO()
        try:
            torch.save(algo, method, pickle_module=_pickle_module)
        except Exception as err:  # a state that cannot be pickled must not stop the run, only its resuming
            record.log(f"checkpoint after task {progress['task']} not written ({type(err).__name__}: {err}); "
                       "a crash from here on resumes from an earlier checkpoint or from scratch")
            return
        state = {"format": FORMAT, "config": self.cfg, "commit": self.commit, "progress": progress,
                 "record": record.snapshot(), "rng": rng_state(),
                 "algorithm": torch.frombuffer(bytearray(method.getbuffer()), dtype=torch.uint8)}  # fast to save
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic_bytes(self.path, buffer.getvalue())
        self.seconds.append(time.perf_counter() - start)
        self.last_size = buffer.getbuffer().nbytes

    def finish(self, algo: nn.Module) -> None:
        """After `done`: write the final network's weights to `model.pt` (every registered parameter and buffer, plus
        the task masks of HAT-family methods) and remove the checkpoint unless `keep_checkpoint`."""
        model = {"method": self.cfg["method"], "config": self.cfg, "state_dict": algo.state_dict()}
        if hasattr(algo, "task_masks"):
            model["task_masks"] = algo.task_masks
        buffer = io.BytesIO()
        torch.save(model, buffer)
        write_atomic_bytes(self.folder / MODEL, buffer.getvalue())
        if not self.cfg.get("keep_checkpoint", False):
            self.path.unlink(missing_ok=True)
        if self.seconds:
            line = (f"checkpoints: {len(self.seconds)} written in this process, {sum(self.seconds):.2f} s in all "
                    f"(mean {sum(self.seconds) / len(self.seconds):.3f} s, last {self.seconds[-1]:.3f} s, "
                    f"last size {self.last_size / 2**20:.1f} MiB)")
            with open(self.folder / "log.txt", "a") as f:
                f.write(line + "\n")
