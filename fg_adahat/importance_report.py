"""Where FG-AdaHAT's plasticity goes: per task, how much of each layer earlier tasks occupy and how large the
accumulated importance of used and free units is (`docs/fg_adahat.md`, rate to task importance).

    python -m fg_adahat.importance_report method=fgadahat_icu benchmark=pmnist num_tasks=6 [key=value ...]
    python -m fg_adahat.importance_report study=fg_semantics method=icu_alpha6e-7 num_tasks=6

Trains the tasks in order (no run record is written) and, at the start of every task t >= 2, prints for each
weighted layer: the units in the union of earlier masks, the median I^{<t} of those used units and of the free
ones, and the largest rate a free unit's incoming weights can get, alpha / ((t + b_L) b_R I + alpha) (the rate at
R_l = 0 with the median free importance). After each task it prints the test accuracy on that task.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import config as config_lib
from common.benchmark_config import benchmark_args
from common.benchmarks import build_benchmark
from common.data import DataMissingError
from common.engine import test_accuracy, train_task
from common.runner import set_threads
from common.studies import apply_study
from fg_adahat import METHODS
from fg_adahat.fgadahat import FGAdaHAT


def median(values: torch.Tensor) -> float:
    return values.median().item() if values.numel() else float("nan")


def layer_lines(algo: FGAdaHAT, task_id: int) -> list[str]:
    """One line per weighted layer at the start of task `task_id`."""
    cfg, lines = algo.cfg, []
    for l, (importance, union) in enumerate(zip(algo.importance_sum, algo.cumulative)):
        used, free = importance[union > 0], importance[union == 0]
        lines.append(f"  layer {l + 1}: {used.numel()}/{union.numel()} units used by earlier tasks, "
                     f"median I used {median(used):.3g}, free {median(free):.3g}")
    c_min = (task_id + cfg["base_linear"]) * cfg["base_sparsity_reg"]
    free_first = algo.importance_sum[0][algo.cumulative[0] == 0]
    if free_first.numel() and cfg["importance_scheduler"] == "linear_sparsity_reg":
        bound = cfg["alpha"] / (c_min * median(free_first) + cfg["alpha"])
        lines.append(f"  largest rate of a median free unit of layer 1: {bound:.3g}")
    return lines


def report(cfg: dict, out=print) -> list[float]:
    """Train `cfg`'s tasks, printing the importance summary; returns the accuracy on each task right after it."""
    tasks = build_benchmark(cfg["benchmark"], cfg["num_tasks"], cfg["data_dir"], cfg["device"], cfg["train_subset"],
                            **benchmark_args(cfg))
    torch.manual_seed(cfg["seed"])
    algo = METHODS[cfg["method"]](cfg, [t.num_classes for t in tasks], tasks[0].input_shape).to(cfg["device"])
    if not isinstance(algo, FGAdaHAT):
        raise ValueError(f"{cfg['method']} is not an FG-AdaHAT method")
    accuracies = []
    for task in tasks:
        algo.begin_task(task)
        if task.id > 1:
            out(f"task {task.id}, start:")
            for line in layer_lines(algo, task.id):
                out(line)
        train_task(algo, task, cfg, lambda _message: None)
        algo.end_task(task)
        accuracies.append(test_accuracy(algo, task, cfg["eval_batch_size"]))
        out(f"task {task.id}: accuracy {100 * accuracies[-1]:.2f} right after training it")
    return accuracies


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        cli, layer = apply_study(Path(__file__).parent, config_lib.parse_cli(argv))
        cfg = config_lib.resolve(cli, METHODS, layer)
        set_threads(cfg)
        report(cfg)
    except (config_lib.ConfigError, DataMissingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
