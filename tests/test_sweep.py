"""The sweep: job planning (references first, deduplicated; study entries per benchmark), dry run, resume, bad input,
and both launchers (the SLURM path through submitit's local executors)."""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import config, launchers, planner, records
from scripts import sweep

REPO = Path(__file__).resolve().parent.parent


def test_parse_seeds():
    assert sweep.parse_seeds("1-3") == [1, 2, 3]
    assert sweep.parse_seeds("1,4") == [1, 4]
    assert sweep.parse_seeds("2") == [2]
    assert sweep.parse_seed_option("pmnist=1-3 scifar100=2") == {"pmnist": [1, 2, 3], "scifar100": [2]}


def test_plan_puts_unique_references_first(tmp_path):
    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1], ["finetuning", "lwf", "hat", "adahat"],
                      {"out_dir": str(tmp_path)})
    labels = [job.label for job in jobs]
    refs = [label for label in labels if label.startswith("reference")]
    # finetuning and lwf share the batch-norm references, hat and adahat the plain ones: 2 keys x 3 learners
    assert len(refs) == 6 and labels[:6] == refs
    assert labels[6:] == [f"main/pmnist/{m}/seed1" for m in ("finetuning", "lwf", "hat", "adahat")]
    folders = [job.folder for job in jobs]
    assert len(set(folders)) == len(folders)
    assert all(Path(f).is_relative_to(tmp_path) for f in folders)
    mains = jobs[6:]
    assert all(len(job.needs) == 3 and all(n in jobs[:6] for n in job.needs) for job in mains)
    assert mains[0].needs == mains[1].needs != mains[2].needs == mains[3].needs
    assert all(job.folder.is_relative_to(tmp_path / "fg_adahat" / "main") for job in mains)
    assert all(job.folder.is_relative_to(tmp_path / "references") for job in jobs[:6])


def test_reference_commands_resolve_to_the_planned_folders(tmp_path):
    """A job's command line resolves (as `<package>.run` does) to the config and folder the plan has for it."""
    from common.runner import apply_study

    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [2], ["lwf"], {"out_dir": str(tmp_path)})
    for job in jobs:
        cli = config.parse_cli(job.command()[3:])
        methods = planner.package_methods(job.package)
        cli, layer = apply_study(REPO / job.package, cli)
        assert config.resolve(cli, methods, layer) == job.cfg
        assert records.run_folder(job.cfg) == job.folder


def test_unlearning_runs_depend_on_one_job_that_trains_both_references(tmp_path):
    jobs = sweep.plan("amnesiachat", "main", ["pmnist"], [1], ["amnesiachat", "amnesiac_finetuning"],
                      {"out_dir": str(tmp_path), "num_tasks": "5"})
    refs, mains = jobs[:2], jobs[2:]
    assert [j.kind for j in refs] == ["unlearning references"] * 2 and [len(j.folders) for j in refs] == [2, 2]
    assert refs[0].cli["references"] == "only"
    assert [m.needs for m in mains] == [[refs[0]], [refs[1]]]
    assert refs[0].folders[0].name == "seed1" and "ref-retrain-amnesiachat-" in str(refs[0].folders[0])


def test_entries_restricted_to_their_benchmarks(tmp_path):
    jobs = sweep.plan("fg_adahat", "main", ["scifar100"], [1], [], {"out_dir": str(tmp_path), "references": "none"})
    labels = [job.label for job in jobs]
    assert "main/scifar100/fgadahat_ig/seed1" in labels
    assert not any("fgadahat_fa" in label for label in labels)  # feature ablation runs on Permuted MNIST only


def fake_record(folder: Path, seconds: float) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"seconds": seconds, "metrics": {}}))
    (folder / "done").write_text("x")


def test_dry_run_summary_and_estimate(tmp_path, capsys):
    args = ["--package", "fg_adahat", "--study", "main", "--benchmarks", "pmnist", "--seeds", "1-3",
            "--methods", "hat,lwf", "--dry-run", f"out_dir={tmp_path}", "references=none"]
    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1, 2, 3], ["hat", "lwf"],
                      {"out_dir": str(tmp_path), "references": "none"})
    fake_record(jobs[0].folder, 100.0)        # hat seed 1 finished in 100 s
    jobs[1].folder.mkdir(parents=True)        # hat seed 2 crashed
    assert sweep.main(args) == 0
    out = capsys.readouterr().out
    hat = next(line for line in out.splitlines() if line.startswith("pmnist-20") and " hat " in line)
    assert hat.split()[2:6] == ["1", "1", "0", "1"] and hat.endswith("3 min")  # 2 left x 100 s
    lwf = next(line for line in out.splitlines() if " lwf " in line)
    assert lwf.split()[2:6] == ["0", "3", "0", "0"] and lwf.endswith("no estimate")
    assert "6 jobs: 1 finished, 4 to run, 0 running, 1 failed" in out
    assert "no estimate for 3 jobs" in out and "main/pmnist" not in out   # one line per job only with --verbose
    assert sweep.main(args + ["--verbose"]) == 0
    assert "to run   main/pmnist/lwf/seed1: -m fg_adahat.run" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["done", "metrics.json"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_dry_run_of_table1_is_quick_and_offline(tmp_path):
    """DRY_RUN=1 bash scripts/reproduce_table1.sh: no data, no network, a summary per benchmark, in under 20 s."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "DRY_RUN": "1", "PYTHON": sys.executable,
           "OUT_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tmp_path / "no_data"),
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    start, cpu_before = time.time(), children_cpu()
    done = subprocess.run(["bash", "scripts/reproduce_table1.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    elapsed, cpu = time.time() - start, children_cpu() - cpu_before
    assert done.returncode == 0, done.stderr
    # 20 s on an idle 2-core machine; under load (other processes on the cores) the CPU time is the fair measure
    assert cpu < 20 and (elapsed < 20 or os.getloadavg()[0] > os.cpu_count()), (elapsed, cpu)
    out = done.stdout
    assert "390 jobs: 0 finished, 390 to run" in out  # 14 rows (13 off PMNIST) x 10/5/5 seeds + references
    assert "combined20-20" in out and "scifar100-20" in out and "estimated time: no estimate" in out
    assert not (tmp_path / "no_data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script", ["reproduce_table1.sh", "reproduce_amnesiachat.sh"])
@pytest.mark.parametrize("device, expected", [("cuda", ["--jobs-per-gpu", "3"]), ("cpu", [])])
def test_jobs_per_gpu_reaches_the_sweep_on_cuda_only(tmp_path, script, device, expected):
    """JOBS_PER_GPU=K with DEVICE=cuda becomes the sweep's --jobs-per-gpu K; on the CPU it is ignored."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "PYTHON": str(fake), "DEVICE": device, "JOBS_PER_GPU": "3",
           "SEEDS": "1", "BENCHMARKS": "pmnist", "COLUMNS_": "pmnist-5-til"}
    done = subprocess.run(["bash", f"scripts/{script}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sweeps = [line.split() for line in (tmp_path / "calls").read_text().splitlines() if "scripts.sweep" in line]
    assert sweeps and all(("--jobs-per-gpu" in args) == bool(expected) for args in sweeps)
    assert all(args[args.index("--jobs-per-gpu"):args.index("--jobs-per-gpu") + 2] == expected
               for args in sweeps if expected)


@pytest.mark.parametrize("args, message", [
    (["--package", "fg_adaht", "--study", "main"], "unknown package 'fg_adaht'; packages: adahat, amnesiachat"),
    (["--package", "fg_adahat", "--study", "mian"], "unknown study 'mian' of fg_adahat; studies: ablation"),
    (["--package", "fg_adahat", "--study", "main", "--benchmarks", "pmnst"],
     "benchmark 'pmnst' is not part of study fg_adahat/main (its benchmarks: pmnist, scifar100, combined20)"),
    (["--package", "fg_adahat", "--study", "main", "--methods", "hatt"], "method 'hatt' is not part of study"),
    (["--package", "fg_adahat", "--study", "main", "--seeds", "1-x"], "--seeds '1-x': expected integers"),
    (["--package", "fg_adahat", "--study", "main", "--methods", "fgadahat_fa", "--benchmarks", "scifar100"],
     "no run of study fg_adahat/main matches: methods fgadahat_fa on scifar100"),
])
def test_bad_input_gets_one_line(args, message, capsys):
    assert sweep.main([*args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_help_documents_both_launchers():
    done = subprocess.run([sys.executable, "-m", "scripts.sweep", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for text in ("--launcher {local,slurm}", "--jobs-per-gpu", "--partition", "--gpus-per-job", "--time",
                 "afterok", "submitit"):
        assert text in done.stdout, text


def test_finished_jobs_are_skipped(tmp_path, capsys):
    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1], ["hat"], {"out_dir": str(tmp_path), "references": "none"})
    fake_record(jobs[0].folder, 1.0)
    assert sweep.run_jobs(jobs, parallel=1, threads=1) == 0
    assert "1 finished, 0 to run" in capsys.readouterr().out


def fake_jobs(tmp_path, fail=()):
    """A reference and two main jobs whose commands write a record (or fail), in the plan's shape."""
    def job(name, needs=()):
        folder = tmp_path / name / "seed1"
        code = ("import pathlib, sys, time; f = pathlib.Path(sys.argv[1]); time.sleep(0.2); "
                "f.mkdir(parents=True, exist_ok=True); (f / 'started').write_text(str(time.time())); "
                f"sys.exit(3) if {name in fail} else (f / 'done').write_text('x')")
        j = planner.Job(name, "main", name, "baselines", {}, {"benchmark": "x", "num_tasks": 1}, (folder,),
                        list(needs))
        j.command = lambda threads=0, python=sys.executable: [python, "-c", code, str(folder)]
        return j

    ref = job("ref")
    return [ref, job("a", [ref]), job("b", [ref])]


def test_local_launcher_starts_a_job_only_after_its_references(tmp_path, capsys):
    jobs = fake_jobs(tmp_path)
    assert launchers.run_local(jobs, parallel=3, poll=0.05) == 0
    started = {j.label: float((j.folder / "started").read_text()) for j in jobs}
    ref_done = (jobs[0].folder / "done").stat().st_mtime
    assert started["a"] >= ref_done - 0.05 and started["b"] >= ref_done - 0.05
    assert all(j.done for j in jobs)


def test_local_launcher_skips_jobs_whose_reference_failed(tmp_path, capsys):
    jobs = fake_jobs(tmp_path, fail={"ref"})
    assert launchers.run_local(jobs, parallel=2, poll=0.05) == 3
    out = capsys.readouterr().out
    assert "FAILED (exit 3" in out and out.count("SKIPPED") == 2
    assert not (jobs[1].folder / "started").exists()


def test_local_launcher_gives_each_job_a_gpu(tmp_path, monkeypatch):
    seen = []
    real = subprocess.Popen

    def popen(cmd, **kwargs):
        seen.append(kwargs["env"].get("CUDA_VISIBLE_DEVICES"))
        return real(cmd, **kwargs)

    monkeypatch.setattr(launchers.subprocess, "Popen", popen)
    assert launchers.run_local(fake_jobs(tmp_path), gpus=["0", "1"], jobs_per_gpu=1, poll=0.05) == 0
    assert seen[0] == "0" and sorted(seen[1:]) == ["0", "1"]


@pytest.mark.parametrize("cluster", ["debug", "local"])
def test_slurm_launcher_through_submitit(tmp_path, cluster, capsys):
    jobs = fake_jobs(tmp_path)
    assert launchers.levels(jobs) == [[jobs[0]], jobs[1:]]
    assert launchers.run_slurm(jobs, tmp_path / "slurm", jobs_per_gpu=2, cluster=cluster) == 0
    out = capsys.readouterr().out
    assert "level 0: 1 runs in 1 array tasks" in out and "level 1: 2 runs in 1 array tasks" in out
    assert all(j.done for j in jobs)
    ref_done = (jobs[0].folder / "done").stat().st_mtime
    assert all(float((j.folder / "started").read_text()) >= ref_done - 0.05 for j in jobs[1:])
    assert launchers.levels(jobs) == []  # nothing left: a second submission would submit nothing


def test_slurm_launcher_stops_after_a_failed_level(tmp_path, capsys):
    jobs = fake_jobs(tmp_path, fail={"ref"})
    assert launchers.run_slurm(jobs, tmp_path / "slurm", cluster="debug") == 1
    assert "later levels not submitted" in capsys.readouterr().out
    assert not (jobs[1].folder / "started").exists()


def test_slurm_levels_are_chained_with_afterok(tmp_path, monkeypatch):
    """On SLURM (a stand-in for submitit's executor): one array per level, the next held back with afterok on the
    previous array, partition, time, GPUs and the runs per GPU passed on; nothing is waited for."""
    import contextlib
    import types

    import submitit

    calls = []

    class Executor:
        cluster = "slurm"

        def __init__(self, folder, cluster):
            self.arrays = 0

        def update_parameters(self, **params):
            calls.append(params)

        @contextlib.contextmanager
        def batch(self):
            self.arrays += 1
            self.index = 0
            yield

        def submit(self, fn, commands, outs, gpus):
            self.index += 1
            calls.append(("task", len(commands), gpus))
            return types.SimpleNamespace(job_id=f"{100 + self.arrays}_{self.index - 1}")

    monkeypatch.setattr(submitit, "AutoExecutor", Executor)
    jobs = fake_jobs(tmp_path)
    assert launchers.run_slurm(jobs, tmp_path, "gpu", 90, gpus_per_job=1, jobs_per_gpu=1, cluster="slurm") == 0
    first, task0, second, task1, task2 = calls
    assert first["slurm_partition"] == "gpu" and first["timeout_min"] == 90 and first["gpus_per_node"] == 1
    assert "dependency" not in first["slurm_additional_parameters"] and task0 == ("task", 1, 1)
    assert second["slurm_additional_parameters"]["dependency"] == "afterok:101"
    assert task1 == task2 == ("task", 1, 1)
    assert not any(j.done for j in jobs)


def test_job_state_reads_the_run_lock(tmp_path):
    from common.runner import RunLock

    jobs = sweep.plan("fg_adahat", "main", ["pmnist"], [1], ["hat"], {"out_dir": str(tmp_path), "references": "none"})
    job = jobs[0]
    assert job.state == "to run"
    lock = RunLock(job.folder)
    lock.acquire(print)
    job.folder.mkdir(parents=True)
    assert job.state == "running"
    lock.path.write_text("999999999@another-node")  # held on a cluster node: cannot be checked from here
    assert job.state == "running"
    lock.path.write_text("999999999")               # a dead process on this host
    assert job.state == "failed"
    lock.release()
