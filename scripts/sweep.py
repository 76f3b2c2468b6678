"""Run every job of a study: references first, then the main runs; resumable, parallel, with a time estimate.

    python -m scripts.sweep --package fg_adahat --study main [--benchmarks pmnist] [--seeds 1-3]
                            [--methods finetuning,lwf] [--jobs 2] [--threads 1] [--dry-run] [key=value ...]

Finished runs (folders with `done`) are skipped, so an interrupted sweep picks up where it stopped. Each job is
`python -m <package>.run study=... method=... benchmark=... seed=...` in its own process; its output goes to
`<run folder>/../seed<k>.out`. Extra key=value pairs are passed to every job (e.g. device=cuda out_dir=runs_quick).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

from common import config as config_lib
from common import records
from common.runner import REFERENCES, is_unlearning, unlearning_reference_config
from common.studies import apply_study, parse_seeds, read_study, study_entries  # noqa: F401 (parse_seeds: re-export)

ROOT = Path(__file__).resolve().parent.parent


def plan(package: str, study: str, benchmarks, seeds, entries, extra: dict) -> list[tuple[str, list[str], Path]]:
    """[(label, command, run folder)] — unique reference runs first, then the study's runs."""
    methods = importlib.import_module(package).METHODS
    spec = read_study(ROOT / package, study)
    refs, mains = {}, []
    for benchmark in benchmarks or spec["benchmarks"]:
        for entry in [e for e in entries or spec["methods"] if e in study_entries(spec, benchmark)]:
            for seed in seeds or spec["seeds"]:
                cli = {**extra, "study": study, "method": entry, "benchmark": benchmark, "seed": str(seed)}
                resolved_cli, layer = apply_study(ROOT / package, cli)
                cfg = config_lib.resolve(resolved_cli, methods, layer)
                args = [f"{k}={v}" for k, v in cli.items()]
                mains.append((f"{study}/{benchmark}/{entry}/seed{seed}",
                              [sys.executable, "-m", f"{package}.run", *args], records.run_folder(cfg)))
                if is_unlearning(cfg):
                    if cfg["references"] == "auto":  # one job trains both unlearning references of this run
                        folder = records.run_folder(unlearning_reference_config(cfg, "original", methods))
                        refs.setdefault(folder, (f"unlearning references {benchmark} {entry} seed{seed}",
                                                 [*mains[-1][1], "references=only"], folder))
                elif cfg["references"] == "auto" and cfg["method"] not in REFERENCES:
                    for name in REFERENCES:
                        ref_cli = config_lib.reference_config(cfg, name)
                        folder = records.run_folder(config_lib.resolve(ref_cli, methods))
                        ref_args = [f"{k}={v}" for k, v in ref_cli.items()]
                        refs.setdefault(folder, (f"reference {name} {benchmark} seed{seed} ({folder.parent.parent.name})",
                                                 [sys.executable, "-m", "baselines.run", *ref_args], folder))
    return list(refs.values()) + mains


def run_jobs(jobs, parallel: int, threads: int) -> int:
    """Run the pending jobs, `parallel` at a time; returns the number that failed."""
    pending = [j for j in jobs if not records.is_done(j[2])]
    print(f"{len(jobs)} jobs: {len(jobs) - len(pending)} finished, {len(pending)} to run", flush=True)
    running, failed, finished, durations = [], 0, 0, []
    start = time.time()
    while pending or running:
        # a main run may need references that are still running: only start jobs whose references are done
        while pending and len(running) < parallel:
            label, cmd, folder = pending.pop(0)
            folder.parent.mkdir(parents=True, exist_ok=True)
            out = open(folder.parent / f"{folder.name}.out", "w")
            proc = subprocess.Popen(cmd + ([f"threads={threads}"] if threads else []), cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT)
            running.append((label, proc, time.time(), out))
            print(f"start  {label}", flush=True)
        time.sleep(1)
        for item in list(running):
            label, proc, began, out = item
            if proc.poll() is None:
                continue
            running.remove(item)
            out.close()
            finished += 1
            durations.append(time.time() - began)
            failed += proc.returncode != 0
            left = len(pending) + len(running)
            eta = sum(durations) / len(durations) * left / parallel
            status = "done  " if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {out.name})"
            print(f"{status} {label} in {durations[-1]:.0f} s; {left} left, about {eta / 60:.0f} min to go "
                  f"({(time.time() - start) / 60:.0f} min so far)", flush=True)
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, help="paper folder: baselines, adahat, fg_adahat, ...")
    parser.add_argument("--study", required=True)
    parser.add_argument("--benchmarks", default="", help="comma-separated (default: the study's)")
    parser.add_argument("--methods", default="", help="comma-separated study entries (default: all)")
    parser.add_argument("--seeds", default="", help="e.g. 1-3 or 1,2,5 (default: the study's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (CPU: one per core; GPU: several)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch default)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and their state, run nothing")
    parser.add_argument("overrides", nargs="*", help="key=value passed to every run")
    args = parser.parse_args(argv)
    extra = config_lib.parse_cli(args.overrides)
    jobs = plan(args.package, args.study, [b for b in args.benchmarks.split(",") if b],
                parse_seeds(args.seeds) if args.seeds else None, [m for m in args.methods.split(",") if m], extra)
    if args.dry_run:
        for label, cmd, folder in jobs:
            state = "done" if records.is_done(folder) else ("partial" if folder.exists() else "to run")
            print(f"{state:7s} {label}: {' '.join(cmd[1:])}")
        return 0
    return 1 if run_jobs(jobs, args.jobs, args.threads) else 0


if __name__ == "__main__":
    sys.exit(main())
