"""Run records: finished runs are never overwritten, crashed ones restart, corrupt ones give RecordError."""

from pathlib import Path

import pytest

from baselines import METHODS
from common import config, records, runner
from common.records import RecordError


def make_cfg(tmp_path, **extra):
    cli = {"method": "finetuning", "benchmark": "synthetic", "num_tasks": "2", "epochs": "1", "train_subset": "64",
           "threads": "1", "references": "none", "out_dir": str(tmp_path), **extra}
    return config.resolve({k: str(v) for k, v in cli.items()}, METHODS)


def snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_finished_run_is_never_overwritten(tmp_path, capsys):
    cfg = make_cfg(tmp_path)
    folder = runner.run(cfg, METHODS)
    before = snapshot(folder)
    capsys.readouterr()
    assert runner.run(cfg, METHODS) == folder
    out = capsys.readouterr().out
    assert "already finished" in out
    assert '"aa"' in out  # its metrics are printed
    assert snapshot(folder) == before
    # the same through the command line; settings the check ignores (threads, eval_batch_size) may differ
    argv = [f"{k}={v}" for k, v in cfg.items() if k in ("method", "benchmark", "num_tasks", "epochs", "train_subset",
                                                         "references", "out_dir")] + ["eval_batch_size=7"]
    assert runner.main(argv, METHODS, Path("baselines")) == 0
    assert "already finished" in capsys.readouterr().out
    assert snapshot(folder) == before


def test_record_refuses_to_start_on_a_finished_folder(tmp_path):
    cfg = make_cfg(tmp_path)
    folder = runner.run(cfg, METHODS)
    before = snapshot(folder)
    with pytest.raises(RecordError, match="finished"):
        records.RunRecord(cfg, echo=False).start()
    assert snapshot(folder) == before


def test_finished_run_with_a_different_config(tmp_path, capsys):
    cfg = make_cfg(tmp_path)
    folder = runner.run(cfg, METHODS)
    before = snapshot(folder)
    changed = make_cfg(tmp_path, lr="0.01")
    assert records.run_folder(changed) == folder
    with pytest.raises(RecordError) as err:
        runner.run(changed, METHODS)
    assert "lr" in str(err.value) and "0.001" in str(err.value) and "0.01" in str(err.value)
    assert "batch_norm" not in str(err.value)
    # the command line: exit code 2, one error line naming the key
    capsys.readouterr()
    argv = ["method=finetuning", "benchmark=synthetic", "num_tasks=2", "epochs=1", "train_subset=64",
            "references=none", f"out_dir={tmp_path}", "batch_norm=false"]
    assert runner.main(argv, METHODS, Path("baselines")) == 2
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and "batch_norm" in err_text and len(err_text.strip().splitlines()) == 1
    assert snapshot(folder) == before


def test_folder_without_done_is_restarted(tmp_path):
    cfg = make_cfg(tmp_path)
    folder = records.run_folder(cfg)
    folder.mkdir(parents=True)
    (folder / "acc.csv").write_text("garbage from a crashed run\n1,0.5\n")
    (folder / "leftover.txt").write_text("x")
    assert runner.run(cfg, METHODS) == folder
    assert records.is_done(folder)
    assert not (folder / "leftover.txt").exists()
    assert [len(r) for r in records.read_acc(folder)] == [1, 2]

    # a finished run whose `done` was removed (crash before the marker) is also run again from scratch
    (folder / "done").unlink()
    (folder / "leftover.txt").write_text("x")
    runner.run(cfg, METHODS)
    assert records.is_done(folder) and not (folder / "leftover.txt").exists()
    assert len(records.read_acc(folder)) == 2


HEADER = "after_training_task,average_accuracy,test_on_task_1,test_on_task_2\n"


@pytest.mark.parametrize("text", [
    "",                                   # empty file
    HEADER,                               # header only
    HEADER + "1,0.5,abc\n",               # not a number
    HEADER + "one,0.5,0.5\n",             # bad task id
    HEADER + "1,0.5,0.5\n2,0.6,0.7,\n",    # empty cell
    "\x00\x01\x02binary",                 # not a CSV at all
    HEADER + "1,0.5,0.5\n2,0.6,0.7\n",  # truncated row: task 2 with one accuracy
])
def test_corrupt_acc_csv(tmp_path, text):
    (tmp_path / "acc.csv").write_text(text)
    with pytest.raises(RecordError, match="acc.csv"):
        records.read_acc(tmp_path)


def test_missing_acc_csv(tmp_path):
    with pytest.raises(RecordError):
        records.read_acc(tmp_path)


def test_read_acc_round_trip(tmp_path):
    (tmp_path / "acc.csv").write_text(HEADER + "1,0.5,0.5\n2,0.65,0.6,0.7\n")
    assert records.read_acc(tmp_path) == [[0.5], [0.6, 0.7]]


def test_read_record_needs_done_and_valid_files(tmp_path):
    cfg = make_cfg(tmp_path)
    folder = runner.run(cfg, METHODS)
    rec = records.read_record(folder)
    assert rec["config"] == cfg and len(rec["acc"]) == 2 and "aa" in rec["metrics"]
    (folder / "metrics.json").write_text("{not json")
    with pytest.raises(RecordError, match="corrupt"):
        records.read_record(folder)
    (folder / "done").unlink()
    with pytest.raises(RecordError, match="not a finished run"):
        records.read_record(folder)


def test_setting_added_later_is_accepted_at_its_default(tmp_path):
    """A finished run whose config predates an engine key matches when the new key is at its default."""
    cfg = make_cfg(tmp_path)
    folder = runner.run(cfg, METHODS)
    text = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text("\n".join(line for line in text.splitlines() if not line.startswith("amp_bf16")))
    records.check_same_config(folder, cfg)  # no error
    with pytest.raises(records.RecordError, match="amp_bf16"):
        records.check_same_config(folder, {**cfg, "amp_bf16": True})
