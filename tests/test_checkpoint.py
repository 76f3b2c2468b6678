"""Checkpoints at task boundaries (common/checkpoint.py): a run killed after a task and started again gives records
whose numbers are bit-identical to an uninterrupted run's; `keep_checkpoint` and the final model."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amnesiachat import METHODS as AMNESIAC_METHODS
from amnesiachat import UNLEARNING_METHODS
from common import checkpoint as checkpoint_lib
from common import config, records, runner
from fg_adahat import METHODS as FG_METHODS

REPO = Path(__file__).resolve().parent.parent
TIMING = ("seconds", "train_seconds", "seconds_per_task", "peak_memory_mb", "environment")
SMALL = {"benchmark": "synthetic", "threads": "1", "references": "none"}


def numbers(folder: Path) -> dict:
    """Everything of a finished record that is not a time, a memory figure or the log."""
    folder = Path(folder)
    assert records.is_done(folder), folder
    out = {"acc.csv": (folder / "acc.csv").read_text()}
    metrics = json.loads((folder / "metrics.json").read_text())
    out["metrics.json"] = {k: v for k, v in metrics.items() if k not in TIMING}
    for path in sorted(folder.glob("*.csv")):
        if path.name == "train_curve.csv":
            with open(path, newline="") as f:
                out[path.name] = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
        elif path.name != "acc.csv":
            out[path.name] = path.read_text()
    if (folder / "features.pt").exists():
        out["features.pt"] = {t: f.tolist() for t, f in torch.load(folder / "features.pt").items()}
    return out


# ----- a real process killed after a task ----------------------------------------------------------------------------
def run_cli(package: str, args: dict, out_dir: Path, kill_after: int | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != checkpoint_lib.KILL_ENV}
    if kill_after is not None:
        env[checkpoint_lib.KILL_ENV] = str(kill_after)
    argv = [f"{k}={v}" for k, v in {**SMALL, **args, "out_dir": str(out_dir)}.items()]
    done = subprocess.run([sys.executable, "-m", f"{package}.run", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert kill_after is not None or done.returncode == 0, done.stderr[-3000:]
    return done.returncode


def folder_of(package_methods: dict, args: dict, out_dir: Path) -> Path:
    cfg = config.resolve({**SMALL, **args, "out_dir": str(out_dir)}, package_methods)
    return records.run_folder(cfg)


def run_in_process(methods: dict, args: dict, out_dir: Path) -> None:
    """The uninterrupted run of the comparison (the same code as the command, without a process start)."""
    cli = {**SMALL, **{k: str(v) for k, v in args.items()}, "out_dir": str(out_dir)}
    runner.run(config.resolve(cli, methods), methods)


KILLED_RUNS = {
    "adahat": ("adahat", {"method": "adahat", "num_tasks": 3, "epochs": 1}, FG_METHODS),
    "derpp": ("baselines", {"method": "derpp", "num_tasks": 3, "epochs": 1}, FG_METHODS),
}


@pytest.mark.parametrize("name", sorted(KILLED_RUNS))
def test_killed_run_resumes_bit_identical(name, tmp_path, one_thread):
    package, args, methods = KILLED_RUNS[name]
    run_in_process(methods, args, tmp_path / "whole")
    assert run_cli(package, args, tmp_path / "killed", kill_after=2) == -signal.SIGKILL
    folder = folder_of(methods, args, tmp_path / "killed")
    assert not records.is_done(folder) and (folder / checkpoint_lib.CHECKPOINT).exists()
    assert len(records.read_acc(folder)) == 2  # task 2 was recorded, its checkpoint never written
    run_cli(package, args, tmp_path / "killed")
    assert "resumed from checkpoint.pt after task 1" in (folder / "log.txt").read_text()
    assert numbers(folder) == numbers(folder_of(methods, args, tmp_path / "whole"))
    assert (folder / checkpoint_lib.MODEL).exists() and not (folder / checkpoint_lib.CHECKPOINT).exists()


def test_killed_unlearning_run_and_reference_resume_bit_identical(tmp_path, one_thread):
    """AmnesiacHAT with unlearning requests and DD / AG against its references: the retrain reference (which skips
    the unlearned tasks 1 and 4) and the main run are each killed after task 3 and resumed."""
    args = {"method": "amnesiachat", "num_tasks": 4, "epochs": 1, "unlearning_requests": "2:1,4:4",
            "references": "auto"}
    run_in_process(AMNESIAC_METHODS, args, tmp_path / "whole")
    killed = tmp_path / "killed"
    assert run_cli("amnesiachat", {**args, "references": "only"}, killed, kill_after=3) == -signal.SIGKILL
    run_cli("amnesiachat", {**args, "references": "only"}, killed)
    assert run_cli("amnesiachat", args, killed, kill_after=3) == -signal.SIGKILL
    run_cli("amnesiachat", args, killed)
    cfg = config.resolve({**SMALL, **{k: str(v) for k, v in args.items()}}, AMNESIAC_METHODS)
    pairs = [(records.run_folder(dict(cfg, out_dir=str(root))),
              *(records.run_folder(dict(runner.unlearning_reference_config(cfg, kind, AMNESIAC_METHODS),
                                        out_dir=str(root))) for kind in runner.UNLEARNING_REFERENCES))
             for root in (tmp_path / "whole", killed)]
    for whole, resumed in zip(*pairs):
        assert numbers(resumed) == numbers(whole), resumed
    main, retrain, _ = pairs[1]
    assert "resumed from checkpoint.pt after task 2" in (main / "log.txt").read_text()
    assert "resumed from checkpoint.pt after task 2" in (retrain / "log.txt").read_text()
    metrics = json.loads((main / "metrics.json").read_text())["metrics"]
    assert metrics["unlearned"] == [1, 4] and "dd" in metrics and "ag" in metrics


# ----- every registered method, saved after task 1 and resumed in a fresh object ----------------------------------------
class Interrupted(Exception):
    pass


def stop_after_task_1(cfg: dict, methods: dict, monkeypatch) -> None:
    """Train `cfg` until its checkpoint after task 1 is written, then stop as a crash would."""
    save = checkpoint_lib.Checkpoint.save

    def save_then_stop(self, algo, record, progress):
        save(self, algo, record, progress)
        if progress["task"] == 1:
            raise Interrupted

    monkeypatch.setattr(checkpoint_lib.Checkpoint, "save", save_then_stop)
    with pytest.raises(Interrupted):
        runner.train_and_record(cfg, methods, echo=False)
    monkeypatch.setattr(checkpoint_lib.Checkpoint, "save", save)


def method_cases():
    cases = [("fg_adahat", m, {}) for m, cls in sorted(FG_METHODS.items()) if not getattr(cls, "multitask", False)]
    cases += [("amnesiachat", cls.name, {"unlearning_requests": "2:1,3:3"}) for cls in UNLEARNING_METHODS]
    cases.append(("amnesiachat", "independent", {"unlearning_requests": "2:1,3:3"}))
    cases.append(("fg_adahat", "lwf", {"amp_bf16": "true"}))  # the switched forward of the teachers
    cases.append(("fg_adahat", "independent", {"compile": "true", "compile_backend": "aot_eager"}))
    return cases


REGISTRIES = {"fg_adahat": FG_METHODS, "amnesiachat": AMNESIAC_METHODS}


@pytest.mark.parametrize("registry,method,extra", method_cases(),
                         ids=[f"{m}{'-' + '-'.join(e) if e else ''}" for _, m, e in method_cases()])
def test_every_method_resumes_bit_identical_after_task_1(registry, method, extra, tmp_path, monkeypatch, one_thread):
    methods = REGISTRIES[registry]
    cli = {**SMALL, "method": method, "num_tasks": "3", "epochs": "1", **extra}
    whole = config.resolve({**cli, "out_dir": str(tmp_path / "whole")}, methods)
    cut = config.resolve({**cli, "out_dir": str(tmp_path / "cut")}, methods)
    np.random.seed(0)  # a different numpy state before each run: the run start seeds it (FG-AdaHAT (GS) draws from it)
    runner.train_and_record(whole, methods, echo=False)
    np.random.seed(1)

    stop_after_task_1(cut, methods, monkeypatch)
    folder = runner.train_and_record(cut, methods, echo=False)
    assert "resumed from checkpoint.pt after task 1" in (folder / "log.txt").read_text()
    assert numbers(folder) == numbers(records.run_folder(whole))


def test_multitask_references_write_the_final_model_and_no_checkpoint(tmp_path):
    cfg = config.resolve({**SMALL, "method": "joint", "num_tasks": "2", "epochs": "1", "out_dir": str(tmp_path)},
                         FG_METHODS)
    folder = runner.train_and_record(cfg, FG_METHODS, echo=False)
    assert (folder / checkpoint_lib.MODEL).exists() and not (folder / checkpoint_lib.CHECKPOINT).exists()


# ----- keep_checkpoint, the final model, unusable checkpoints --------------------------------------------------------------
def hat_cfg(tmp_path, **extra):
    cli = {**SMALL, "method": "hat", "num_tasks": "2", "epochs": "1", "out_dir": str(tmp_path), **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, FG_METHODS)


def test_keep_checkpoint_keeps_the_whole_state_and_does_not_change_identity(tmp_path, capsys):
    folder = runner.run(hat_cfg(tmp_path, keep_checkpoint="true"), FG_METHODS)
    assert (folder / checkpoint_lib.CHECKPOINT).exists() and (folder / checkpoint_lib.MODEL).exists()
    saved = torch.load(folder / checkpoint_lib.CHECKPOINT, weights_only=False)
    assert saved["progress"]["task"] == 2 and len(saved["record"]["acc_rows"]) == 2
    # the same run with the other value is the same run: reused, not refused
    assert runner.run(hat_cfg(tmp_path), FG_METHODS) == folder
    assert "already finished" in capsys.readouterr().out
    assert not config.is_distinct("keep_checkpoint")
    plain = hat_cfg(tmp_path / "plain")
    default_folder = runner.run(plain, FG_METHODS)
    assert not (default_folder / checkpoint_lib.CHECKPOINT).exists()
    assert (default_folder / "acc.csv").read_text() == (folder / "acc.csv").read_text()


def test_run_killed_after_its_last_checkpoint_only_finishes(tmp_path):
    cfg = hat_cfg(tmp_path, keep_checkpoint="true")
    folder = runner.run(cfg, FG_METHODS)
    before = numbers(folder)
    (folder / "done").unlink()
    (folder / "metrics.json").unlink()
    (folder / "capacity.csv").unlink()
    runner.run(cfg, FG_METHODS)
    log = (folder / "log.txt").read_text()
    assert "resumed from checkpoint.pt after task 2" in log and log.count("task 2/2 done") == 1
    assert numbers(folder) == before


def test_a_state_that_cannot_be_pickled_costs_the_resume_not_the_run(tmp_path):
    cfg = hat_cfg(tmp_path / "odd")
    original = FG_METHODS["hat"].end_task

    def end_task(self, task):
        original(self, task)
        self.unpicklable = lambda: None

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FG_METHODS["hat"], "end_task", end_task)
        folder = runner.run(cfg, FG_METHODS)
    assert "checkpoint after task 1 not written (" in (folder / "log.txt").read_text()
    assert numbers(folder) == numbers(runner.run(hat_cfg(tmp_path / "plain"), FG_METHODS))


def test_keep_checkpoint_leaves_unlearning_reference_folders_unchanged(tmp_path):
    cli = {**SMALL, "method": "amnesiachat", "unlearning_requests": "published", "out_dir": str(tmp_path)}
    names = {runner.unlearning_reference_config(config.resolve({**cli, "keep_checkpoint": value}, AMNESIAC_METHODS),
                                                "retrain", AMNESIAC_METHODS)["run_name"] for value in ("true", "false")}
    assert len(names) == 1


def test_final_model_predicts_like_the_trained_method(tmp_path):
    cfg = hat_cfg(tmp_path)
    folder = runner.run(cfg, FG_METHODS)
    model = torch.load(folder / checkpoint_lib.MODEL, weights_only=False)
    from common.benchmarks import build_benchmark
    tasks = build_benchmark("synthetic", 2)
    fresh = FG_METHODS["hat"](model["config"], [t.num_classes for t in tasks], tasks[0].input_shape)
    fresh.load_state_dict(model["state_dict"])
    fresh.task_masks = model["task_masks"]
    fresh.eval()
    accuracies = [(fresh.predict(t.transform(t.test_x), t.id).argmax(1) == t.test_y).sum().item() / len(t.test_y)
                  for t in tasks]
    assert accuracies == records.read_acc(folder)[-1]


@pytest.mark.parametrize("spoil", ["config", "corrupt"])
def test_unusable_checkpoint_starts_from_scratch(spoil, tmp_path, monkeypatch):
    cfg = hat_cfg(tmp_path, num_tasks=3)
    stop_after_task_1(cfg, FG_METHODS, monkeypatch)
    folder = records.run_folder(cfg)
    if spoil == "corrupt":
        (folder / checkpoint_lib.CHECKPOINT).write_bytes(b"not a checkpoint")
        again = cfg
    else:
        again = hat_cfg(tmp_path, num_tasks=3, reg_factor=0.2)
    runner.train_and_record(again, FG_METHODS, echo=False)
    log = (folder / "log.txt").read_text()
    assert "checkpoint not used" in log and "resumed" not in log
    assert len(records.read_acc(folder)) == 3
    fresh = hat_cfg(tmp_path / "fresh", num_tasks=3, **({} if spoil == "corrupt" else {"reg_factor": 0.2}))
    runner.train_and_record(fresh, FG_METHODS, echo=False)
    assert numbers(folder) == numbers(records.run_folder(fresh))


def test_rng_states_round_trip():
    import random

    state = checkpoint_lib.rng_state()
    first = (torch.rand(3).tolist(), np.random.rand(), random.random())
    checkpoint_lib.set_rng_state(state)
    assert (torch.rand(3).tolist(), np.random.rand(), random.random()) == first


def test_a_generator_kept_by_a_method_is_saved_with_its_state(tmp_path):
    cfg = hat_cfg(tmp_path)
    algo = FG_METHODS["hat"](cfg, [4, 4], (1, 28, 28))
    algo.generator = torch.Generator().manual_seed(3)
    torch.rand(5, generator=algo.generator)
    folder = tmp_path / "run"
    folder.mkdir()
    record = records.RunRecord(cfg, folder=folder, echo=False)
    saver = checkpoint_lib.Checkpoint(folder, cfg)
    saver.save(algo, record, {"task": 1})
    loader = checkpoint_lib.Checkpoint(folder, cfg)
    loader.start(record)
    loaded = loader.restore(FG_METHODS["hat"](cfg, [4, 4], (1, 28, 28)), record)
    assert loader.last_task == 1 and loaded is not algo
    assert torch.equal(torch.rand(4, generator=loaded.generator), torch.rand(4, generator=algo.generator))
