"""The AmnesiacHAT study's figures from run records (drawn by `python -m amnesiachat.make_figures`; helpers in
`common/plots.py`). Each function takes the figure context (`common.figures.Context`) and returns a Figure.
There are no published AmnesiacHAT numbers to draw beside ours."""

from __future__ import annotations

import math
from pathlib import Path

from common.plots import colours, empty, heatmap, legend_outside, mean_std, panel_grid, plt
from common.studies import read_study, row_label
from common.tables import metric_values as values

HERE = Path(__file__).parent
BENCHMARK = "pmnist"
TRAJECTORY_SEED = 1


def trajectories(ctx):
    """Accuracy of every task after each task of the sequence (PMNIST-5 TIL, seed 1), one panel per method:
    unlearned tasks dashed (their accuracy falls when the request comes), remaining tasks solid."""
    spec = read_study(HERE, "main")
    entries = list(spec["methods"])
    found = ctx.runs("main", [BENCHMARK], seeds=[TRAJECTORY_SEED])
    fig, axes, panels = panel_grid(len(entries), 4, (2.75, 2.6), sharey=True)
    for ax, entry in zip(panels, entries):
        ax.set_title(row_label(spec, entry))
        runs = found.get(entry, BENCHMARK)
        if not runs:
            empty(ax)
            continue
        acc, unlearned = runs[0]["acc"], set(runs[0]["metrics"].get("unlearned") or [])
        for j, colour in zip(range(1, len(acc) + 1), colours(len(acc))):
            points = [(t, 100 * row[j - 1]) for t, row in enumerate(acc, start=1) if len(row) >= j]
            ax.plot(*zip(*points), marker=".", color=colour, linestyle="--" if j in unlearned else "-",
                    label=f"task {j}" + (" (unlearned)" if j in unlearned else ""))
        ax.set_xticks(range(1, len(acc) + 1))
        ax.set_xlabel("after task")
        ax.set_ylim(0, 100)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    legend_outside(next((ax for ax in panels if ax.get_lines()), panels[0]))
    fig.suptitle(f"Continual unlearning, Permuted MNIST 5 tasks TIL, seed {TRAJECTORY_SEED}: accuracy of each task "
                 "through the sequence (dashed: unlearned tasks)")
    return fig


def dd_ag(ctx):
    """DD (lower: closer to never having learned the unlearned tasks) and AG (remaining tasks against the original
    reference) per method, PMNIST-5 TIL: mean ± sample std over seeds, seeds as dots."""
    spec = read_study(HERE, "main")
    entries = list(spec["methods"])
    found = ctx.runs("main", [BENCHMARK])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for ax, (key, scale, label) in zip(axes, (("dd", 1.0, "DD = 1 - linear CKA to the retrain reference"),
                                              ("ag", 100.0, "AG, remaining tasks (%)"))):
        for i, entry in enumerate(entries):
            runs = found.get(entry, BENCHMARK)
            got = values(runs, key, scale)
            mean, std = mean_std(got)
            if got:
                ax.bar(i, mean, 0.6, yerr=std, color="tab:blue", capsize=2)
                ax.plot([i] * len(got), got, ".", color="black", markersize=2)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xticks(range(len(entries)), [row_label(spec, e) for e in entries], rotation=35, ha="right")
        ax.set_ylabel(label)
        if not found.records:
            empty(ax)
    fig.suptitle("Unlearning quality per method, Permuted MNIST 5 tasks TIL (mean ± sample std over seeds)")
    return fig


def hparams(ctx):
    """AmnesiacHAT's buffer size × repair steps (study hparams): AA on the remaining tasks and DD, mean over seeds."""
    spec = read_study(HERE, "hparams")
    found = ctx.runs("hparams", [BENCHMARK])
    grid_entries = {(found.configs[(e, BENCHMARK)]["buffer_size"], found.configs[(e, BENCHMARK)]["repair_steps"]): e
                    for e in spec["methods"] if found.configs[(e, BENCHMARK)]["unlearnable_age"] == 4}
    buffers, repairs = sorted({b for b, _ in grid_entries}), sorted({r for _, r in grid_entries})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for ax, (key, scale, label, fmt) in zip(axes, (("aa_remaining", 100.0, "AA on remaining tasks (%)", ".1f"),
                                                   ("dd", 1.0, "DD", ".3f"))):
        grid = [[mean_std(values(found.get(grid_entries[(b, r)], BENCHMARK), key, scale))[0]
                 if (b, r) in grid_entries else math.nan for r in repairs] for b in buffers]
        heatmap(ax, grid, repairs, buffers, label, fmt=fmt)
        ax.set_xlabel("repair steps")
        ax.set_ylabel("replay buffer size")
        if not found.records:
            empty(ax)
    fig.suptitle("AmnesiacHAT, buffer size × repair steps, Permuted MNIST 5 tasks TIL (mean over seeds)")
    return fig


def pruning(ctx):
    """The update store on PMNIST-20 (study pruning): its memory as stored and dense, and AA on the remaining tasks,
    per variant (mean ± sample std over seeds)."""
    spec = read_study(HERE, "pruning")
    entries = list(spec["methods"])
    found = ctx.runs("pruning", [BENCHMARK])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    width, labelled = 0.38, set()
    for i, entry in enumerate(entries):
        runs = found.get(entry, BENCHMARK)
        for offset, key, colour, label in ((-width / 2, "update_store_peak_mb", "tab:blue", "as stored"),
                                           (width / 2, "update_store_dense_peak_mb", "0.6", "dense")):
            mean, std = mean_std(values(runs, key, 1.0))
            if math.isfinite(mean):
                axes[0].bar(i + offset, mean, width, yerr=std, color=colour, capsize=2,
                            label=None if label in labelled else label)
                labelled.add(label)
        mean, std = mean_std(values(runs, "aa_remaining"))
        if math.isfinite(mean):
            axes[1].bar(i, mean, 0.6, yerr=std, color="tab:green", capsize=2)
    for ax, label in zip(axes, ("update store, peak (MiB)", "AA on remaining tasks (%)")):
        ax.set_xticks(range(len(entries)), [row_label(spec, e) for e in entries], rotation=20, ha="right")
        ax.set_ylabel(label)
        if not found.records:
            empty(ax)
    legend_outside(axes[0])
    fig.suptitle("AmnesiacHAT's update store, Permuted MNIST 20 tasks TIL: memory against pruning (mean ± sample std)")
    return fig


FIGURES = {
    "trajectories": ("Accuracy of every task through the unlearning sequence, one panel per method (study main, "
                     "PMNIST-5 TIL, seed 1); unlearned tasks dashed.", trajectories),
    "dd_ag": ("DD and AG per method (study main, PMNIST-5 TIL), mean ± sample std over seeds.", dd_ag),
    "hparams": ("AmnesiacHAT's buffer size × repair steps grid (study hparams): AA on the remaining tasks and DD.",
                hparams),
    "pruning": ("Update-store memory (as stored and dense) and AA on the remaining tasks per pruning variant "
                "(study pruning, PMNIST-20 TIL).", pruning),
}
