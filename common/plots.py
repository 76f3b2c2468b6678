"""Drawing helpers shared by the papers' figures, and the figures of one run folder.

    python -m common.plots RUN_FOLDER [--out DIR]

draws the run's accuracy matrix (tasks learned x tasks tested), its training curves (if recorded) and its network
capacity (HAT family) as `acc_matrix`, `train_curve` and `capacity` `.png` + `.pdf` in the run folder or `--out`.
Output is byte-for-byte reproducible: no creation date in the PDFs, no software tag in the PNGs.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "svg.hashsalt": "repro",
                     "pdf.compression": 6})
CAPACITY_FLOOR = 1e-9  # a capacity of 0 is drawn here on the log axis


def save(fig, stem: Path) -> list[Path]:
    """Write `<stem>.png` and `<stem>.pdf` without timestamps or version tags (regenerating gives identical files)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=130, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Producer": None, "Creator": None})
    return [png, pdf]


def mean_std(values: list[float]) -> tuple[float, float]:
    """(mean, sample std) of the finite values; NaN where there are none (std 0 for a single value)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def colours(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, so it never hides data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, **kwargs)


def seeds_label(label: str, n: int) -> str:
    """A legend entry with its number of seeds: 'HAT (1 seed)', 'HAT (3 seeds)'."""
    return f"{label} ({n} seed{'' if n == 1 else 's'})"


def note(fig, text: str) -> None:
    """A line of text at the bottom of the figure (what is missing, what was drawn where), below the axes: a
    constrained layout keeps room for it at the bottom (0.18 inch a line of about 150 characters)."""
    if text:
        engine = fig.get_layout_engine()
        if engine is not None and type(engine).__name__ == "ConstrainedLayoutEngine":
            lines = 1 + len(text) * 7 // int(fig.get_figwidth() * 130)
            bottom = min(0.3, 0.02 + 0.13 * lines / fig.get_figheight())
            engine.set(rect=(0, bottom, 1, 1 - bottom))
        fig.text(0.01, 0.005, text, fontsize=6.5, color="firebrick", ha="left", va="bottom", wrap=True)


def empty(ax, text: str = "no finished run") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")


def panel_grid(count: int, columns: int, panel: tuple[float, float], **kwargs):
    """A figure of `count` panels in rows of `columns` (constrained layout), the unused panels hidden; returns the
    figure, the 2-D array of axes and the list of the `count` panels in order."""
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(panel[0] * columns, panel[1] * rows), layout="constrained",
                             squeeze=False, **kwargs)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, axes, list(axes.flat)[:count]


def heatmap(ax, values: list[list[float]], xlabels, ylabels, colour_label: str, fmt: str = ".1f",
            cmap: str = "viridis", vmin=None, vmax=None):
    """A heat map of a matrix (NaN cells blank), each cell annotated with its value; returns the colour bar."""
    import numpy as np

    data = np.ma.masked_invalid(np.array(values, dtype=float))
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(xlabels)), [str(x) for x in xlabels])
    ax.set_yticks(range(len(ylabels)), [str(y) for y in ylabels])
    if data.size <= 150:
        for (i, j), value in np.ndenumerate(data.filled(np.nan)):
            if math.isfinite(value):
                ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=6,
                        color="black" if image.norm(value) > 0.5 else "white")
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(colour_label)
    return bar


def acc_matrix(ax, acc: list[list[float]], title: str = "") -> None:
    """The accuracy matrix in %: row t = after learning task t, column j = tested on task j (blank above the
    diagonal)."""
    n = max(len(acc), max((len(r) for r in acc), default=0))
    grid = [[100 * row[j] if j < len(row) else math.nan for j in range(n)] for row in acc]
    ticks = list(range(1, n + 1))
    heatmap(ax, grid, ticks, ticks[:len(acc)], "test accuracy (%)", fmt=".0f", vmin=0, vmax=100)
    if n > 10:
        step = 5 if n <= 25 else 10
        ax.set_xticks([j - 1 for j in ticks if j % step == 0 or j == 1], [j for j in ticks if j % step == 0 or j == 1])
        ax.set_yticks([j - 1 for j in ticks if j % step == 0 or j == 1], [j for j in ticks if j % step == 0 or j == 1])
    ax.set_xlabel("tested on task")
    ax.set_ylabel("after learning task")
    ax.set_title(title)


def capacity_points(rows: list[dict]) -> tuple[list[float], list[float]]:
    """(x in tasks, capacity) of a capacity curve: the steps of task t spread over (t - 1, t], so x = t is the last
    step of task t; capacity 0 is drawn at CAPACITY_FLOOR."""
    bounds: dict[int, list[int]] = {}
    for row in rows:
        task, step = int(row["task"]), int(row["step"])
        lo, hi = bounds.get(task, [step, step])
        bounds[task] = [min(lo, step), max(hi, step)]
    xs, ys = [], []
    for row in rows:
        task, step = int(row["task"]), int(row["step"])
        lo, hi = bounds[task]
        xs.append(task - 1 + (step - lo + 1) / (hi - lo + 1))
        ys.append(max(float(row["capacity"]), CAPACITY_FLOOR))
    return xs, ys


def task_boundaries(ax, num_tasks: int) -> None:
    """Thin vertical lines at the end of every task (every fifth darker beyond 20 tasks)."""
    for t in range(1, num_tasks):
        strong = num_tasks <= 20 or t % 5 == 0
        ax.axvline(t, color="0.75" if strong else "0.9", linewidth=0.5, zorder=0)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----- one run folder ----------------------------------------------------------------------------------------------
def run_figures(folder: Path) -> dict[str, object]:
    """{name: Figure} of a run folder: acc_matrix always, train_curve and capacity when recorded."""
    from common.records import read_acc

    folder = Path(folder)
    name = "/".join(folder.parts[-3:])
    figures = {}
    acc = read_acc(folder)
    fig, ax = plt.subplots(figsize=(5, 4.2), layout="constrained")
    acc_matrix(ax, acc, f"accuracy matrix, {name}")
    figures["acc_matrix"] = fig
    if (folder / "train_curve.csv").exists():
        rows = read_csv(folder / "train_curve.csv")
        fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
        x = [int(r["task"]) - 1 + int(r["epoch"]) / max(int(s["epoch"]) for s in rows) for r in rows]
        loss.plot(x, [float(r["train_loss"]) for r in rows], label="train loss", marker=".")
        loss.plot(x, [float(r["val_loss"]) for r in rows], label="validation loss", marker=".")
        accuracy.plot(x, [100 * float(r["val_acc"]) for r in rows], color="tab:green", marker=".")
        for ax, ylabel in ((loss, "loss (cross-entropy)"), (accuracy, "validation accuracy (%)")):
            task_boundaries(ax, int(rows[-1]["task"]))
            ax.set_xlabel("task (epochs spread over each task)")
            ax.set_ylabel(ylabel)
        legend_outside(loss)
        fig.suptitle(f"training curves, {name}")
        figures["train_curve"] = fig
    if (folder / "capacity.csv").exists():
        rows = read_csv(folder / "capacity.csv")
        fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
        ax.plot(*capacity_points(rows), linewidth=0.8)
        task_boundaries(ax, int(rows[-1]["task"]))
        ax.set_yscale("log")
        ax.set_xlabel("task (training steps spread over each task)")
        ax.set_ylabel(f"network capacity (0 drawn at {CAPACITY_FLOOR:g})")
        ax.set_title(f"network capacity, {name}")
        figures["capacity"] = fig
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.plots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a run folder (runs/... or results/records/...)")
    parser.add_argument("--out", type=Path, default=None, help="where the figures go (default: the run folder)")
    args = parser.parse_args(argv)
    from common.records import RecordError

    try:
        figures = run_figures(args.folder)
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, fig in figures.items():
        for path in save(fig, (args.out or args.folder) / name):
            print(f"wrote {path}")
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
