"""Run identity (one definition for the reuse check, the references and the unlearning references), the migration
to run folders by package, corrupt records in the table scripts, and two papers' main studies in one out_dir."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adahat import METHODS as ADAHAT
from amnesiachat import METHODS as AMNESIAC
from common import config, planner, record_migration, records
from common.runner import apply_study
from fg_adahat import METHODS as FG
from scripts import sweep

REPO = Path(__file__).resolve().parent.parent
FIXTURE_RECORDS = REPO / "tests" / "fixtures" / "records"


def study_cfg(package, study, entry, out_dir, **extra):
    cli = {"package": package, "study": study, "method": entry, "benchmark": "pmnist", "seed": 1,
           "out_dir": str(out_dir), **extra}
    cli, layer = apply_study(REPO / package, cli)
    return config.resolve(cli, planner.package_methods(package), layer)


def write_record(folder: Path, cfg: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config.dump(cfg))
    (folder / "acc.csv").write_text("after_training_task,average_accuracy,test_on_task_1\n1,0.5,0.5\n")
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"aa": 0.5}, "seconds": 2.0}))
    (folder / "done").write_text("x")


# ----- identity ----------------------------------------------------------------------------------------------------
def test_tf32_is_treated_alike_by_the_reuse_check_the_references_and_the_unlearning_references(tmp_path):
    cfg = study_cfg("fg_adahat", "main", "hat", tmp_path)
    fast = {**cfg, "tf32": True}
    write_record(records.run_folder(cfg), cfg)
    records.check_same_config(records.run_folder(cfg), fast)  # no error: tf32 is an execution key
    assert planner.reference_configs(cfg, FG) == planner.reference_configs(fast, FG)
    un = study_cfg("amnesiachat", "main", "amnesiachat", tmp_path, num_tasks=5)
    assert (planner.unlearning_reference_config(un, "retrain", AMNESIAC)["run_name"]
            == planner.unlearning_reference_config({**un, "tf32": True}, "retrain", AMNESIAC)["run_name"])
    assert not config.is_distinct("tf32") and config.is_distinct("amp_bf16") and config.is_distinct("alpha")


def test_a_new_engine_key_makes_runs_distinct_unless_listed(tmp_path, monkeypatch):
    before = study_cfg("amnesiachat", "main", "amnesiachat", tmp_path, num_tasks=5)
    old_digest = planner.unlearning_reference_config(before, "original", AMNESIAC)["run_name"]
    monkeypatch.setitem(config.ENGINE_KEYS, "new_key", ("", str, "a key added later"))
    cfg = study_cfg("fg_adahat", "main", "finetuning", tmp_path)
    folder = records.run_folder(cfg)
    write_record(folder, cfg)
    with pytest.raises(records.RecordError, match="new_key"):
        records.check_same_config(folder, {**cfg, "new_key": "fashion"})
    refs = planner.reference_configs(cfg, FG)
    other = planner.reference_configs({**cfg, "new_key": "fashion"}, FG)
    assert refs["joint"]["new_key"] == "" and other["joint"]["new_key"] == "fashion"
    assert config.reference_key(refs["joint"]) == config.reference_key(cfg)
    assert config.reference_key(other["joint"]) == config.reference_key(cfg) + "-new_key-fashion"
    # at its default, a new key leaves the names of existing unlearning references alone
    after = study_cfg("amnesiachat", "main", "amnesiachat", tmp_path, num_tasks=5)
    assert planner.unlearning_reference_config(after, "original", AMNESIAC)["run_name"] == old_digest
    changed = planner.unlearning_reference_config({**after, "new_key": "x"}, "original", AMNESIAC)["run_name"]
    assert changed != old_digest


# ----- migration ---------------------------------------------------------------------------------------------------
def old_layout(cfg: dict, out_dir: Path) -> Path:
    """Where the layout without a package level kept this record; the record's config has no `package`."""
    folder = (out_dir / cfg["study"] / f"{cfg['benchmark']}-{cfg['num_tasks']}" / config.run_name(cfg)
              / f"seed{cfg['seed']}")
    write_record(folder, {k: v for k, v in cfg.items() if k != "package"})
    return folder


def test_migration_moves_every_record_to_its_package(tmp_path):
    out = tmp_path / "runs"
    ada_ft = study_cfg("adahat", "main", "finetuning", out)                 # weight decay 3.5e-4: AdaHAT's
    hat = study_cfg("fg_adahat", "main", "hat", out)                        # the same in both papers' main
    quick_ft = study_cfg("fg_adahat", "main", "lwf", out, num_tasks=3, epochs=1)   # a quick run of FG-AdaHAT's
    plain = config.resolve({"method": "ewc", "benchmark": "pmnist", "out_dir": str(out)}, FG)
    un = study_cfg("amnesiachat", "main", "amnesiachat", out, num_tasks=5)
    ref = planner.unlearning_reference_config(un, "retrain", AMNESIAC)
    old_ref = {**ref, "run_name": "ref-retrain-amnesiachat-0123abcd"}      # named by an older digest
    old = {name: old_layout(c, out) for name, c in
           [("ada_ft", ada_ft), ("hat", hat), ("quick", quick_ft), ("plain", plain), ("ref", old_ref)]}
    (old["ada_ft"].parent / "seed1.out").write_text("log")
    shared_ref = records.run_folder(planner.reference_configs(hat, FG)["joint"])
    write_record(shared_ref, planner.reference_configs(hat, FG)["joint"])

    done = subprocess.run([sys.executable, "-m", "common.records", "migrate", "--out-dir", str(out), "--dry-run"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "5 records to move" in done.stdout, done.stdout + done.stderr
    assert all(f.exists() for f in old.values())

    moves = dict(record_migration.migrate(out, echo=lambda *_: None))
    assert moves[old["ada_ft"]] == [records.run_folder(ada_ft)]
    assert ada_ft["package"] == "adahat" and records.is_done(records.run_folder(ada_ft))
    assert (records.run_folder(ada_ft).parent / "seed1.out").read_text() == "log"
    hat_in_adahat = records.run_folder({**hat, "package": "adahat"})
    assert sorted(moves[old["hat"]]) == sorted([records.run_folder(hat), hat_in_adahat])  # reused by both
    assert moves[old["quick"]] == [records.run_folder(quick_ft)]
    assert moves[old["plain"]] == [out / "baselines" / "default" / "pmnist-20" / "ewc" / "seed1"]
    assert moves[old["ref"]] == [records.run_folder(ref)]
    assert not any(f.exists() for f in old.values()) and not (out / "main").exists()
    assert records.is_done(shared_ref)  # references stay where they were
    for cfg in (ada_ft, hat, quick_ft, ref):  # each moved record is what the current code looks for
        records.check_same_config(records.run_folder(cfg), cfg)
    assert record_migration.migrate(out, echo=lambda *_: None) == []  # a second migration has nothing to do


# ----- corrupt records in a table script -----------------------------------------------------------------------------
def test_a_corrupt_record_gives_one_line_naming_the_folder(tmp_path):
    shutil.copytree(FIXTURE_RECORDS, tmp_path / "records")
    bad = tmp_path / "records" / "fg_adahat" / "main" / "pmnist-20" / "hat" / "seed1"
    (bad / "config.yaml").write_text("method: [unclosed\n")
    done = subprocess.run([sys.executable, "-m", "fg_adahat.make_tables", "--benchmarks", "pmnist", "--seeds", "1-2",
                           "--out", str(tmp_path / "tables"), f"out_dir={tmp_path / 'records'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(bad) in done.stderr and "delete the folder to rerun it" in done.stderr
    (bad / "config.yaml").write_text((FIXTURE_RECORDS / bad.relative_to(tmp_path / "records") / "config.yaml")
                                     .read_text())
    (bad / "metrics.json").write_text("{")
    done = subprocess.run([sys.executable, "-m", "fg_adahat.make_tables", "--benchmarks", "pmnist", "--seeds", "1-2",
                           "--out", str(tmp_path / "tables"), f"out_dir={tmp_path / 'records'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and str(bad) in done.stderr and "metrics.json" in done.stderr


# ----- two papers into one out_dir -----------------------------------------------------------------------------------
@pytest.mark.realdata
def test_both_papers_main_studies_run_into_one_out_dir(mnist_dir, tmp_path, capsys):
    """AdaHAT's and FG-AdaHAT's `main` studies both have finetuning and hat with different settings (weight decay
    3.5e-4 vs 0): run one after the other, each keeps its own records; references of equal settings are shared."""
    small = [f"out_dir={tmp_path}", f"data_dir={mnist_dir}", "num_tasks=2", "epochs=1", "train_subset=200"]
    for package in ("adahat", "fg_adahat"):
        args = ["--package", package, "--study", "main", "--benchmarks", "pmnist", "--seeds", "1",
                "--methods", "finetuning,hat", "--jobs", "2", "--threads", "1", *small]
        assert sweep.main(args) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    ada = records.read_record(tmp_path / "adahat" / "main" / "pmnist-2" / "finetuning" / "seed1")
    fg = records.read_record(tmp_path / "fg_adahat" / "main" / "pmnist-2" / "finetuning" / "seed1")
    assert ada["config"]["weight_decay"] == 3.5e-4 and fg["config"]["weight_decay"] == 0.0
    assert records.is_done(tmp_path / "fg_adahat" / "main" / "pmnist-2" / "hat" / "seed1")
    assert records.is_done(tmp_path / "adahat" / "main" / "pmnist-2" / "hat" / "seed1")
    assert isinstance(fg["metrics"]["fr"], float) and isinstance(ada["metrics"]["fr"], float)
    # 3 reference keys (finetuning of each paper, and hat's plain one shared) x joint / independent / random
    assert len(list((tmp_path / "references" / "pmnist-2").glob("*/*/seed1/done"))) == 9
    assert "FAILED" not in out and not list(tmp_path.rglob("*.lock"))
