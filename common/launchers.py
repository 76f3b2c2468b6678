"""Launch planned jobs (`common.planner`): on this machine (a process pool) or on a SLURM cluster (submitit).

Both start a job only once the jobs it `needs` (its references) have finished, so no process sits waiting for a
lock. A job whose reference failed is not started and counts as failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common.planner import ROOT, Job, fmt_seconds


def pending_jobs(jobs: list[Job]) -> list[Job]:
    return [job for job in jobs if not job.done]


def run_local(jobs: list[Job], parallel: int = 1, threads: int = 0, gpus: list[str] | None = None,
              jobs_per_gpu: int = 1, poll: float = 1.0, python: str = sys.executable) -> int:
    """Run the unfinished jobs, at most `parallel` at once (with `gpus`: `jobs_per_gpu` on each GPU, each job
    seeing only its GPU through CUDA_VISIBLE_DEVICES). Returns the number of jobs that failed or could not run."""
    todo = pending_jobs(jobs)
    slots = len(gpus) * jobs_per_gpu if gpus else parallel
    print(f"{len(jobs)} jobs: {len(jobs) - len(todo)} finished, {len(todo)} to run, {slots} at once", flush=True)
    failed: set[Job] = set()
    running: dict[Job, tuple[subprocess.Popen, float, object, str | None]] = {}
    durations, start = [], time.time()
    while todo or running:
        for job in list(todo):
            if any(need in failed for need in job.needs):
                todo.remove(job)
                failed.add(job)
                print(f"SKIPPED {job.label}: a reference it needs failed", flush=True)
        ready = [job for job in todo if all(need.done for need in job.needs)]
        for job in ready:
            if len(running) >= slots:
                break
            if job.state == "running":  # another sweep trains it: wait for it without taking a slot
                continue
            todo.remove(job)
            gpu = least_busy(gpus, running) if gpus else None
            job.out_file.parent.mkdir(parents=True, exist_ok=True)
            out = open(job.out_file, "w")
            env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
            proc = subprocess.Popen(job.command(threads, python), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
            running[job] = (proc, time.time(), out, gpu)
            print(f"start  {job.label}" + (f" on GPU {gpu}" if gpu is not None else ""), flush=True)
        if todo and not running and not ready:
            if not any(need.state == "running" for job in todo for need in job.needs) and \
                    not any(job.state == "running" for job in todo):
                for job in todo:  # needs that are neither done, running nor planned here
                    failed.add(job)
                    print(f"SKIPPED {job.label}: its references are not finished", flush=True)
                todo.clear()
        time.sleep(poll)
        for job, (proc, began, out, _) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[job]
            out.close()
            durations.append(time.time() - began)
            ok = proc.returncode == 0 and job.done
            if not ok:
                failed.add(job)
            left = len(todo) + len(running)
            eta = sum(durations) / len(durations) * left / max(1, slots)
            status = "done  " if ok else f"FAILED (exit {proc.returncode}, see {job.out_file})"
            print(f"{status} {job.label} in {fmt_seconds(durations[-1])}; {left} left, about {fmt_seconds(eta)} to go "
                  f"({fmt_seconds(time.time() - start)} so far)", flush=True)
    return len(failed)


def least_busy(gpus: list[str], running: dict) -> str:
    load = {gpu: 0 for gpu in gpus}
    for _, _, _, gpu in running.values():
        load[gpu] += 1
    return min(gpus, key=lambda g: load[g])


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else every device torch sees."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


# ----- SLURM through submitit ---------------------------------------------------------------------------------------
def levels(jobs: list[Job]) -> list[list[Job]]:
    """Unfinished jobs grouped by dependency depth: level 0 needs nothing unfinished, level k needs level < k."""
    todo = pending_jobs(jobs)
    depth: dict[Job, int] = {}

    def level(job: Job) -> int:
        if job not in depth:
            depth[job] = 1 + max((level(n) for n in job.needs if not n.done), default=-1)
        return depth[job]

    out: list[list[Job]] = []
    for job in todo:
        k = level(job)
        out += [[] for _ in range(k + 1 - len(out))]
        out[k].append(job)
    return out


def run_bundle(commands: list[list[str]], out_files: list[str], gpus_per_task: int) -> list[int]:
    """One array task: run its commands at once (run i on the task's GPU i mod gpus_per_task) and wait; raises if
    any failed, so that SLURM holds back the jobs that depend on this level."""
    gpus = visible_gpus() if gpus_per_task else []
    procs = []
    for i, (cmd, out_file) in enumerate(zip(commands, out_files)):
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if gpus else {}))
        with open(out_file, "w") as out:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        bad = [out for out, code in zip(out_files, codes) if code]
        raise RuntimeError(f"{len(bad)} of {len(codes)} runs failed; see {', '.join(bad)}")
    return codes


def run_slurm(jobs: list[Job], log_dir: Path, partition: str = "", time_min: int = 240, gpus_per_job: int = 0,
              jobs_per_gpu: int = 1, cpus_per_job: int = 1, threads: int = 0, cluster: str | None = None,
              python: str = sys.executable) -> int:
    """Submit the unfinished jobs as one job array per dependency level; each array task runs `jobs_per_gpu` runs
    per GPU (`jobs_per_gpu` runs without GPUs). On SLURM the levels are chained with `afterok` and this returns
    after submitting; with submitit's `local` or `debug` executor (`cluster`) each level is awaited in turn.
    Returns the number of array tasks that failed (0 on SLURM: see `squeue` and the logs in `log_dir`)."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(log_dir), cluster=cluster)
    per_task = max(1, gpus_per_job) * jobs_per_gpu
    params = {"timeout_min": time_min, "cpus_per_task": cpus_per_job * per_task, "name": "sweep"}
    if gpus_per_job:
        params["gpus_per_node"] = gpus_per_job
    if partition:
        params["slurm_partition"] = partition
    on_slurm = executor.cluster == "slurm"
    failed, previous = 0, []
    for k, level_jobs in enumerate(levels(jobs)):
        bundles = [level_jobs[i:i + per_task] for i in range(0, len(level_jobs), per_task)]
        extra = {"kill-on-invalid-dep": "yes"}
        if previous and on_slurm:
            extra["dependency"] = "afterok:" + ":".join(sorted({j.job_id.split("_")[0] for j in previous}))
        executor.update_parameters(**params, **({"slurm_additional_parameters": extra} if on_slurm else {}))
        with executor.batch():
            submitted = [executor.submit(run_bundle, [j.command(threads, python) for j in bundle],
                                         [str(j.out_file) for j in bundle], gpus_per_job) for bundle in bundles]
        print(f"level {k}: {len(level_jobs)} runs in {len(bundles)} array tasks "
              f"(job {submitted[0].job_id.split('_')[0]})", flush=True)
        if not on_slurm:
            for task in submitted:
                try:
                    task.result()
                except Exception as err:  # submitit re-raises the task's error with its traceback
                    failed += 1
                    print(f"FAILED array task {task.job_id}: {str(err).strip().splitlines()[-1]}", flush=True)
            if failed:
                print("later levels not submitted: a level failed", flush=True)
                return failed
        previous = submitted
    return failed
