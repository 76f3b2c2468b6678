"""The sweep runner: job planning (references first, deduplicated; study entries per benchmark), dry run, resume."""

from pathlib import Path

from common import records
from scripts import sweep


def test_parse_seeds():
    assert sweep.parse_seeds("1-3") == [1, 2, 3]
    assert sweep.parse_seeds("1,4") == [1, 4]
    assert sweep.parse_seeds("2") == [2]


def test_plan_puts_unique_references_first(tmp_path):
    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1], ["finetuning", "lwf", "hat", "adahat"],
                      {"out_dir": str(tmp_path)})
    labels = [label for label, _, _ in jobs]
    refs = [label for label in labels if label.startswith("reference")]
    # finetuning and lwf share the batch-norm references, hat and adahat the plain ones: 2 keys x 3 learners
    assert len(refs) == 6 and labels[:6] == refs
    assert labels[6:] == [f"main/pmnist/{m}/seed1" for m in ("finetuning", "lwf", "hat", "adahat")]
    folders = [folder for _, _, folder in jobs]
    assert len(set(folders)) == len(folders)
    assert all(Path(f).is_relative_to(tmp_path) for f in folders)


def test_entries_restricted_to_their_benchmarks(tmp_path):
    jobs = sweep.plan("fg_adahat", "main", ["scifar100"], [1], [], {"out_dir": str(tmp_path), "references": "none"})
    labels = [label for label, _, _ in jobs]
    assert "main/scifar100/fgadahat_ig/seed1" in labels
    assert not any("fgadahat_fa" in label for label in labels)  # feature ablation runs on Permuted MNIST only


def test_dry_run_lists_state_and_runs_nothing(tmp_path, capsys):
    args = ["--package", "fg_adahat", "--study", "main", "--benchmarks", "pmnist", "--seeds", "1",
            "--methods", "hat", "--dry-run", f"out_dir={tmp_path}", "references=none"]
    assert sweep.main(args) == 0
    out = capsys.readouterr().out
    assert "to run  main/pmnist/hat/seed1" in out
    assert not any(tmp_path.iterdir())


def test_finished_jobs_are_skipped(tmp_path, capsys):
    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1], ["hat"], {"out_dir": str(tmp_path), "references": "none"})
    folder = jobs[0][2]
    folder.mkdir(parents=True)
    (folder / "done").write_text("x")
    assert records.is_done(folder)
    assert sweep.run_jobs(jobs, parallel=1, threads=1) == 0
    assert "1 finished, 0 to run" in capsys.readouterr().out
