"""The AdaHAT study's figures from run records (drawn by `python -m adahat.make_figures`; helpers in
`common/plots.py`). Each function takes the figure context (`common.figures.Context`) and returns a Figure."""

from __future__ import annotations

from pathlib import Path

from common.plots import (CAPACITY_FLOOR, capacity_points, colours, empty, legend_outside, mean_std, plt, read_csv,
                          seeds_label, task_boundaries)
from common.studies import published_row, read_study, row_label, table_entries
from common.tables import metric_values, read_targets

HERE = Path(__file__).parent
CAPACITY_SEED = 1


def capacity(ctx):
    """Network capacity per step of one seed (x in tasks), published end-of-task values as open circles."""
    spec = read_study(HERE, "long_sequence")
    entries = table_entries(spec, "capacity")
    found = ctx.runs("long_sequence", ["pmnist"], entries, [CAPACITY_SEED])
    published = read_targets(HERE / "targets" / "capacity.csv")
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    num_tasks = found.configs[(entries[0], "pmnist")]["num_tasks"]
    task_boundaries(ax, num_tasks)
    for entry, colour in zip(entries, colours(len(entries))):
        label = row_label(spec, entry)
        runs = [r for r in found.get(entry, "pmnist") if (Path(r["folder"]) / "capacity.csv").exists()]
        if runs:
            ax.plot(*capacity_points(read_csv(Path(runs[0]["folder"]) / "capacity.csv")), color=colour,
                    linewidth=0.8, label=label)
        values = published.get(published_row(spec, entry))
        if values:
            tasks = [int(k[1:]) for k in values]
            ax.plot(tasks, [max(v, CAPACITY_FLOOR) for v in values.values()], "o", mfc="none", color=colour,
                    markersize=5, label=f"{label}, published")
    ax.set_yscale("log")
    ax.set_xlim(0, num_tasks)
    ax.set_xlabel("task (the steps of task t lie in (t-1, t]; grey lines: task boundaries)")
    ax.set_ylabel(f"network capacity (0 drawn at {CAPACITY_FLOOR:g})")
    ax.set_title(f"Network capacity, Permuted MNIST {num_tasks} tasks, seed {CAPACITY_SEED}")
    legend_outside(ax)
    return fig


def long_sequence(ctx):
    """AA after each task over the long sequence: mean over seeds, band = ± sample std."""
    spec = read_study(HERE, "long_sequence")
    found = ctx.runs("long_sequence", ["pmnist"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    for entry, colour in zip(spec["methods"], colours(len(spec["methods"]))):
        runs = found.get(entry, "pmnist")
        n = max((len(r["acc"]) for r in runs), default=0)
        points = [mean_std([100 * sum(r["acc"][t - 1]) / t for r in runs if len(r["acc"]) >= t])
                  for t in range(1, n + 1)]
        if points:
            x = list(range(1, n + 1))
            ax.plot(x, [m for m, _ in points], color=colour, label=seeds_label(row_label(spec, entry), len(runs)))
            ax.fill_between(x, [m - s for m, s in points], [m + s for m, s in points], color=colour, alpha=0.2)
    ax.set_xlabel("tasks learned N")
    ax.set_ylabel("AA after task N (%)")
    ax.set_title("Average accuracy over the long sequence, Permuted MNIST (band: ± sample std over seeds)")
    legend_outside(ax)
    if not found.records:
        empty(ax)
    return fig


def alpha(ctx):
    """AA, BWT and FWT against α (log axis): mean ± sample std over seeds, seeds as dots."""
    spec = read_study(HERE, "alpha")
    found = ctx.runs("alpha", ["pmnist"])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3), layout="constrained")
    for ax, metric in zip(axes, ("aa", "bwt", "fwt")):
        xs, stats = [], []
        for entry in spec["methods"]:
            value = found.configs[(entry, "pmnist")]["alpha"]
            values = metric_values(found.get(entry, "pmnist"), metric)
            ax.plot([value] * len(values), values, ".", color="0.6", markersize=3)
            if values:
                xs.append(value)
                stats.append(mean_std(values))
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", markersize=3, capsize=2,
                    label="AdaHAT")
        ax.set_xscale("log")
        ax.set_xlabel("adjustment intensity α (log scale)")
        ax.set_ylabel(f"{metric.upper()} after 20 tasks (%)")
        if not xs:
            empty(ax)
    fig.suptitle("AdaHAT α study, Permuted MNIST 20 tasks (mean ± sample std over seeds; grey: single seeds)")
    return fig


def ablation(ctx):
    """AdaHAT and its ablations: AA, FR, BWT, FWT as bars (mean ± sample std), single seeds as dots."""
    spec = read_study(HERE, "ablation")
    found = ctx.runs("ablation", ["pmnist"])
    metrics = ("aa", "fr", "bwt", "fwt")
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    width = 0.8 / len(spec["methods"])
    for i, (entry, colour) in enumerate(zip(spec["methods"], colours(len(spec["methods"])))):
        runs = found.get(entry, "pmnist")
        for k, metric in enumerate(metrics):
            values = metric_values(runs, metric)
            mean, std = mean_std(values)
            x = k + (i - (len(spec["methods"]) - 1) / 2) * width
            ax.bar(x, mean, width, yerr=std, color=colour, capsize=2,
                   label=seeds_label(row_label(spec, entry), len(runs)) if k == 0 else None)
            ax.plot([x] * len(values), values, ".", color="black", markersize=2)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(range(len(metrics)), [m.upper() for m in metrics])
    ax.set_ylabel("value after 50 tasks (%)")
    ax.set_title("AdaHAT ablation, Permuted MNIST 50 tasks (mean ± sample std over seeds)")
    legend_outside(ax)
    return fig


FIGURES = {
    "capacity": ("Network capacity per training step of the HAT family and AdaHAT (study long_sequence, seed 1), "
                 "x in tasks with the task boundaries marked; open circles: the published end-of-task values "
                 "(`adahat/targets/capacity.csv`).", capacity),
    "long_sequence": ("AA after each task over the 50-task Permuted MNIST sequence (study long_sequence), mean and "
                      "± sample std over seeds.", long_sequence),
    "alpha": ("AA, BWT and FWT against α, log axis (study alpha), mean ± sample std over seeds.", alpha),
    "ablation": ("AdaHAT, AdaHAT-no-sum and AdaHAT-no-reg: AA, FR, BWT, FWT (study ablation).", ablation),
}
