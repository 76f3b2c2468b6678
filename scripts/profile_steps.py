"""Operator-level profile of training steps (torch.profiler), to find the per-step cost of a method's machinery.

    python -m scripts.profile_steps --methods finetuning,hat,adahat,fgadahat_ig [--steps 200] [--out results/profiles]

Trains task 1 of Permuted MNIST for 20 steps, then profiles `--steps` steps of task 2 (one CPU thread) and writes
`<out>/<method>_ops.txt`: the operators sorted by their own CPU time, and the step's CPU milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common import config as config_lib
from common.algorithm import Step
from common.benchmarks import build_benchmark
from fg_adahat import METHODS

BATCH = 128


def prepared(method: str, tasks, overrides: list[str]):
    """The method after 20 steps of task 1, at the start of task 2."""
    cli = [f"method={method}", "benchmark=pmnist", "num_tasks=2", "references=none", *overrides]
    cfg = config_lib.resolve(config_lib.parse_cli(cli), METHODS)
    torch.manual_seed(1)
    algo = METHODS[method](cfg, [t.num_classes for t in tasks], tasks[0].input_shape)
    algo.begin_task(tasks[0])
    algo.train()
    for b in range(20):
        rows = slice(b * BATCH, (b + 1) * BATCH)
        algo.train_step(tasks[0].transform(tasks[0].train_x[rows]), tasks[0].train_y[rows], Step(b, 421, 0, 1))
    algo.end_task(tasks[0])
    algo.begin_task(tasks[1])
    algo.train()
    return algo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="finetuning,hat,adahat,fgadahat_ig")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("results/profiles"))
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("overrides", nargs="*", help="key=value for every method")
    opts = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = build_benchmark("pmnist", 2, "data", "cpu", 0)
    task = tasks[1]
    xs = [task.transform(task.train_x[b * BATCH:(b + 1) * BATCH]) for b in range(opts.steps)]
    ys = [task.train_y[b * BATCH:(b + 1) * BATCH] for b in range(opts.steps)]
    opts.out.mkdir(parents=True, exist_ok=True)
    for method in opts.methods.split(","):
        algo = prepared(method, tasks, opts.overrides)
        start = time.process_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in range(opts.steps):
                algo.train_step(xs[b], ys[b], Step(b, 421, 0, 2))
        ms = 1000 * (time.process_time() - start) / opts.steps
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=opts.rows)
        header = (f"{method}: {opts.steps} training steps of Permuted MNIST task 2, batch {BATCH}, one thread, "
                  f"{' '.join(opts.overrides)}\nCPU time per step under the profiler: {ms:.2f} ms\n\n")
        (opts.out / f"{method}_ops.txt").write_text(header + table + "\n")
        print(f"{method}: {ms:.2f} ms per step (profiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
