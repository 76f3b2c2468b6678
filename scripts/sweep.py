"""Run every job of a study: references first, then the main runs; resumable, on this machine or on SLURM.

    python -m scripts.sweep --package fg_adahat --study main [--benchmarks pmnist] [--seeds 1-3]
                            [--methods finetuning,lwf] [--dry-run [--verbose]] [key=value ...]
                            [--launcher local --jobs 2 --threads 1 | --launcher local --jobs-per-gpu 2 device=cuda]
                            [--launcher slurm --partition gpu --time 240 --gpus-per-job 1 --jobs-per-gpu 2]

The jobs come from `common.planner`: each is `python -m <package>.run study=... method=... benchmark=... seed=...`
(or a reference run) in its own process, with its output in `<run folder>/../seed<k>.out`. Finished runs (folders
with `done`) are skipped, so an interrupted sweep picks up where it stopped. Records go to
`<out_dir>/<package>/<study>/<benchmark>-<tasks>/<entry>/seed<k>`, references to `<out_dir>/references/`.

Launchers:
  local  a process pool on this machine: --jobs runs at once (CPU), or with device=cuda --jobs-per-gpu runs on each
         visible GPU; a run starts only when its references have finished.
  slurm  submitit job arrays, one per dependency level (references, then main runs, chained with afterok):
         --partition, --time (minutes per array task), --gpus-per-job (GPUs per array task), --jobs-per-gpu (runs
         sharing one GPU in a task), --cpus-per-job; logs in <out_dir>/slurm/. Returns once submitted.
         --slurm-cluster local|debug runs the same arrays through submitit's local or in-process executor.

--dry-run plans without touching data or network: a table per benchmark and method (finished, to run, running,
failed) with an estimated time from the `seconds` of finished runs of the same method and benchmark; --verbose adds
one line per job. Extra key=value pairs are passed to every run (e.g. device=cuda out_dir=runs_quick).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import config as config_lib
from common import launchers, planner
from common.studies import parse_seeds  # noqa: F401 (re-exported for older imports)

ROOT = Path(__file__).resolve().parent.parent


def parse_seed_option(text: str):
    """`--seeds`: '1-3' / '1,4' for every benchmark, or 'pmnist=1-10 scifar100=1-5' per benchmark (others: the
    study's seeds)."""
    if "=" not in text:
        return parse_seeds(text)
    pairs = [item.partition("=") for item in text.split()]
    return {bench: parse_seeds(seeds) for bench, _, seeds in pairs}


def plan(package: str, study: str, benchmarks, seeds, entries, extra: dict) -> list[planner.Job]:
    """The study's jobs (see `common.planner.plan`)."""
    return planner.plan(package, study, benchmarks, seeds, entries, extra)


def run_jobs(jobs, parallel: int, threads: int) -> int:
    """Run the pending jobs on this machine, `parallel` at a time; returns the number that failed."""
    return launchers.run_local(jobs, parallel, threads)


def split(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True, help="paper folder: " + ", ".join(planner.packages()))
    p.add_argument("--study", required=True, help="a study file of the package, e.g. main")
    p.add_argument("--benchmarks", default="", help="comma-separated (default: the study's)")
    p.add_argument("--methods", default="", help="comma-separated study entries (default: all)")
    p.add_argument("--seeds", default="", help="e.g. 1-3 or 1,2,5, or per benchmark 'pmnist=1-10 scifar100=1-5' "
                                                "(default: the study's)")
    p.add_argument("--dry-run", action="store_true", help="summarise the jobs and their state, run nothing")
    p.add_argument("--verbose", action="store_true", help="with --dry-run: one line per job")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local", help="where the jobs run")
    p.add_argument("--jobs", type=int, default=1, help="local: runs at once (CPU: one per core)")
    p.add_argument("--jobs-per-gpu", type=int, default=1,
                   help="local with device=cuda: runs at once on each visible GPU; slurm: runs per GPU in a task")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch default)")
    p.add_argument("--partition", default="", help="slurm: partition")
    p.add_argument("--time", type=int, default=240, help="slurm: minutes per array task")
    p.add_argument("--gpus-per-job", type=int, default=None, help="slurm: GPUs per array task (default: 1 with "
                                                                   "device=cuda, else 0)")
    p.add_argument("--cpus-per-job", type=int, default=1, help="slurm: CPUs per run")
    p.add_argument("--slurm-cluster", choices=("slurm", "local", "debug"), default="slurm",
                   help="slurm: submitit executor (default: SLURM; local/debug run the arrays on this machine)")
    p.add_argument("overrides", nargs="*", help="key=value passed to every run")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        seeds = parse_seed_option(args.seeds) if args.seeds else None
    except ValueError:
        print(f"error: --seeds {args.seeds!r}: expected integers, ranges and lists such as 1-3 or 1,4 "
              "(per benchmark: 'pmnist=1-10 scifar100=1-5')",
              file=sys.stderr)
        return 2
    try:
        extra = config_lib.parse_cli(args.overrides)
        jobs = plan(args.package, args.study, split(args.benchmarks), seeds, split(args.methods), extra)
    except config_lib.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cuda = str(jobs[0].cfg["device"]).startswith("cuda")
    gpus = launchers.visible_gpus() if cuda and args.launcher == "local" and not args.dry_run else None
    parallel = len(gpus) * args.jobs_per_gpu if gpus else args.jobs
    if args.dry_run:
        print(f"== {args.package}/{args.study}")
        print(planner.summary(jobs, parallel))
        if args.verbose:
            for job in jobs:
                print(f"{job.state:8s} {job.label}: {' '.join(job.command()[1:])}")
        return 0
    if args.launcher == "slurm":
        gpus_per_job = args.gpus_per_job if args.gpus_per_job is not None else int(cuda)
        log_dir = Path(jobs[0].cfg["out_dir"]) / "slurm"
        return 1 if launchers.run_slurm(jobs, log_dir, args.partition, args.time, gpus_per_job, args.jobs_per_gpu,
                                        args.cpus_per_job, args.threads, args.slurm_cluster) else 0
    if cuda and not gpus:
        print("error: device=cuda but no GPU is visible", file=sys.stderr)
        return 2
    return 1 if launchers.run_local(jobs, parallel, args.threads, gpus, args.jobs_per_gpu) else 0


if __name__ == "__main__":
    sys.exit(main())
