"""The committed record store (`common/record_store.py`): export keeps what tables and figures read and thins the
curves; tables read the store's copy when `runs/` lacks a run, and the run folder when it has one."""

import csv
import shutil
from pathlib import Path

from baselines import METHODS
from common import config, record_store, records, runner
from common.tables import collect
from fg_adahat import METHODS as FG_METHODS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "records"
FG = Path(__file__).resolve().parent.parent / "fg_adahat"


def tiny_run(out_dir: Path, **extra) -> Path:
    cli = {"method": "hat", "benchmark": "synthetic", "num_tasks": "2", "epochs": "1", "train_subset": "64",
           "threads": "1", "references": "none", "out_dir": str(out_dir), "study": "default", **extra}
    return runner.run(config.resolve(cli, METHODS), METHODS)


def test_thinning_keeps_first_and_last_row_of_every_task():
    rows = [{"step": s, "task": t} for t in (1, 2) for s in range(100 * (t - 1) + 1, 100 * t + 1)]
    rows += [{"step": 201, "task": 3}]  # a short task is kept whole
    kept = record_store.thin_rows(rows, points=5)
    assert [r["step"] for r in kept] == [1, 26, 51, 75, 100, 101, 126, 151, 175, 200, 201]
    assert record_store.thin_rows(rows[:4], points=5) == rows[:4]


def test_export_copies_the_compact_record_and_is_idempotent(tmp_path, capsys):
    runs = tmp_path / "runs"
    folder = tiny_run(runs)
    assert (folder / "model.pt").exists() and (folder / "capacity.csv").exists()
    (folder / "checkpoint.pt").write_bytes(b"x")
    store = tmp_path / "store"
    assert records.main(["export", "--out-dir", str(runs), "--to", str(store), "--points-per-task", "2",
                         "--include-default"]) == 0
    copy = store / folder.relative_to(runs)
    assert sorted(p.name for p in copy.iterdir()) == ["acc.csv", "capacity.csv", "config.yaml", "done",
                                                      "metrics.json", "train_curve.csv"]
    assert (copy / "acc.csv").read_text() == (folder / "acc.csv").read_text()
    with open(folder / "capacity.csv") as f:
        full = list(csv.DictReader(f))
    with open(copy / "capacity.csv") as f:
        thin = list(csv.DictReader(f))
    per_task = {t: [r["step"] for r in full if r["task"] == t] for t in ("1", "2")}
    assert [r["step"] for r in thin] == [s for steps in per_task.values() for s in sorted({steps[0], steps[-1]},
                                                                                          key=int)]
    assert records.read_record(copy)["acc"] == records.read_record(folder)["acc"]
    assert "1 records written, 0 unchanged" in capsys.readouterr().out
    records.main(["export", "--out-dir", str(runs), "--to", str(store), "--points-per-task", "2",
                         "--include-default"])
    assert "0 records written, 1 unchanged" in capsys.readouterr().out


def test_export_leaves_out_unfinished_and_ad_hoc_runs(tmp_path):
    runs = tmp_path / "runs"
    folder = tiny_run(runs, study="default")
    assert folder.relative_to(runs).parts[1] == "default"
    unfinished = runs / "baselines" / "x" / "synthetic-2" / "hat" / "seed1"
    unfinished.mkdir(parents=True)
    assert record_store.export(runs, tmp_path / "store", echo=lambda _: None)["written"] == 0
    assert record_store.export(runs, tmp_path / "store", include_default=True, echo=lambda _: None)["written"] == 1


def test_tables_read_the_store_when_runs_lacks_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    monkeypatch.setenv(record_store.STORE_ENV, str(FIXTURES))
    found = collect(FG, "main", FG_METHODS, [1, 2], ["pmnist"])
    assert [r["metrics"]["aa"] for r in found[("hat", "pmnist")]] == [0.67, 0.64]
    assert found[("fgadahat_ig", "pmnist")][0]["folder"].is_relative_to(FIXTURES)
    # a finished run under runs/ wins over the store's copy
    stored = found[("hat", "pmnist")][0]["folder"]
    local = tmp_path / "runs" / stored.relative_to(FIXTURES)
    shutil.copytree(stored, local)
    (local / "metrics.json").write_text((local / "metrics.json").read_text().replace("0.67", "0.5"))
    found = collect(FG, "main", FG_METHODS, [1, 2], ["pmnist"])
    assert [r["metrics"]["aa"] for r in found[("hat", "pmnist")]] == [0.5, 0.64]
    # another out_dir is read on its own: the store stands in for the default one only
    found = collect(FG, "main", FG_METHODS, [1, 2], ["pmnist"], {"out_dir": str(tmp_path / "elsewhere")})
    assert found[("hat", "pmnist")] == []
