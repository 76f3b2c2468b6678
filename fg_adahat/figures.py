"""The FG-AdaHAT paper's figures from run records (drawn by `python -m fg_adahat.make_figures`; helpers in
`common/plots.py`). Each function takes the figure context (`common.figures.Context`) and returns a Figure.
Published values come from `fg_adahat/targets/` (the paper's Tables 1 and 2, Permuted MNIST)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from common import config as config_lib
from common.plots import (acc_matrix, colours, empty, heatmap, legend_outside, mean_std, panel_grid, plt,
                          seeds_label)
from common.studies import published_row, read_study, row_label
from common.tables import metric_values, read_targets
from fg_adahat import METHODS

HERE = Path(__file__).parent
BENCHMARK = "pmnist"
MATRIX_SEED = 1


@lru_cache(maxsize=None)
def targets(table: str) -> dict[str, dict[str, float]]:
    """The paper's table `table` (in `fg_adahat/targets/`), read once."""
    return read_targets(HERE / "targets" / table)


def published(metric: str, method: str | None) -> tuple[float, float]:
    """(mean, std) of the paper's Permuted MNIST `metric` for `method`; NaN where it has none."""
    row = targets("table1.csv" if metric in ("aa", "fr") else "table2.csv").get(method or "", {})
    return row.get(f"{BENCHMARK}_{metric}_mean", math.nan), row.get(f"{BENCHMARK}_{metric}_std", math.nan)


def tradeoff(ctx):
    """Stability against plasticity: BWT (x) and FWT (y) of every method, mean ± sample std over seeds, with the
    published point of the same method (open marker, joined by a thin line); the 2025 research configs of IG, OG
    and ICU (study configs2025) as triangles; the α path of IG, OG, CU and ICU (study alpha_path: a tenth, the
    published and ten times the published α) as a dashed line through their means."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    drawn, main = 0, read_study(HERE, "main")
    entry_colour = dict(zip(main["methods"], colours(len(main["methods"]))))
    method_colour = {}  # an entry of another study takes the colour of the Table 1 row of its measure
    for entry, colour in entry_colour.items():
        method_colour.setdefault(published_row(main, entry), colour)
    main_points = {}  # entry of the main study -> (alpha, mean BWT, mean FWT), for the α paths
    for study, marker in (("main", "o"), ("configs2025", "^")):
        spec = read_study(HERE, study)
        found = ctx.runs(study, [BENCHMARK])
        for entry in spec["methods"]:
            colour = entry_colour[entry] if study == "main" else method_colour.get(published_row(spec, entry), "0.4")
            runs = found.get(entry, BENCHMARK)
            (bwt, bwt_sd), (fwt, fwt_sd) = mean_std(metric_values(runs, "bwt")), mean_std(metric_values(runs, "fwt"))
            if runs:
                drawn += 1
                if study == "main":
                    main_points[entry] = (found.configs[(entry, BENCHMARK)].get("alpha"), bwt, fwt)
                ax.errorbar(bwt, fwt, xerr=bwt_sd, yerr=fwt_sd, marker=marker, color=colour, capsize=2,
                            markersize=5, label=seeds_label(row_label(spec, entry), len(runs)))
            if study == "main":
                method = published_row(spec, entry)
                pub_bwt, pub_fwt = published("bwt", method)[0], published("fwt", method)[0]
                if math.isfinite(pub_bwt) and math.isfinite(pub_fwt):
                    ax.plot(pub_bwt, pub_fwt, marker, mfc="none", color=colour, markersize=7)
                    if runs:
                        ax.plot([bwt, pub_bwt], [fwt, pub_fwt], color=colour, linewidth=0.5, alpha=0.6)
    drawn += alpha_paths(ctx, ax, main, main_points, method_colour)
    ax.plot([], [], "o", mfc="none", color="0.3", label="published (FG-AdaHAT paper)")
    ax.set_xlabel("BWT after 20 tasks (%; right: less forgetting)")
    ax.set_ylabel("FWT (%; up: more plasticity)")
    ax.set_title("Stability against plasticity, Permuted MNIST 20 tasks\n(filled: ours, mean ± sample std over "
                 "seeds; open: published; triangles: 2025 configs)")
    legend_outside(ax)
    if not drawn:
        empty(ax)
    return fig


def alpha_paths(ctx, ax, main: dict, main_points: dict, method_colour: dict) -> int:
    """Draws, per measure, the dashed path of mean (BWT, FWT) through its α values (study alpha_path plus the main
    study's run at the published α), smallest α first, the largest α's end marked "α max"; returns the number of
    alpha_path entries drawn."""
    spec = read_study(HERE, "alpha_path")
    found = ctx.runs("alpha_path", [BENCHMARK])
    paths: dict = {}  # measure (published row) -> [(alpha, bwt, fwt)]
    drawn = 0
    for entry in spec["methods"]:
        runs = found.get(entry, BENCHMARK)
        if runs:
            alpha = found.configs[(entry, BENCHMARK)]["alpha"]
            bwt, fwt = mean_std(metric_values(runs, "bwt"))[0], mean_std(metric_values(runs, "fwt"))[0]
            paths.setdefault(published_row(spec, entry), []).append((alpha, bwt, fwt))
            drawn += 1
    for measure, path in paths.items():
        path += [main_points[e] for e in main["methods"] if published_row(main, e) == measure and e in main_points]
        path.sort()
        colour = method_colour.get(measure, "0.4")
        ax.plot([b for _, b, _ in path], [f for _, _, f in path], "--", marker="x", color=colour, linewidth=0.8,
                markersize=4)
        ax.annotate("α max", (path[-1][1], path[-1][2]), fontsize=6, color=colour, xytext=(3, 3),
                    textcoords="offset points")
    if paths:
        ax.plot([], [], "--", marker="x", color="0.3", label="α path: α/10, α, 10α, mean over seeds")
    return drawn


def measures(ctx):
    """The nine importance measures side by side: AA and FR (filled circles: mean ± sample std over seeds, dots:
    seeds), published mean ± std as open diamonds."""
    spec = read_study(HERE, "main")
    entries = [e for e in spec["methods"] if published_row(spec, e).startswith("fgadahat_")]
    found = ctx.runs("main", [BENCHMARK], entries)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    names = [row_label(spec, e).replace("FG-AdaHAT ", "").strip("()") for e in entries]
    for ax, metric in zip(axes, ("aa", "fr")):
        for i, entry in enumerate(entries):
            values = metric_values(found.get(entry, BENCHMARK), metric)
            mean, std = mean_std(values)
            if values:
                ax.errorbar(i - 0.15, mean, yerr=std, marker="o", color="tab:blue", capsize=2, markersize=4,
                            linestyle="none", label="ours" if i == 0 else None)
                ax.plot([i - 0.15] * len(values), values, ".", color="black", markersize=2)
            pub_mean, pub_std = published(metric, published_row(spec, entry))
            if math.isfinite(pub_mean):
                ax.errorbar(i + 0.15, pub_mean, yerr=pub_std, marker="D", mfc="none", color="tab:red", capsize=2,
                            markersize=4, linestyle="none", label="published" if i == 0 else None)
        ax.set_xticks(range(len(entries)), names, rotation=30)
        ax.set_ylabel(f"{metric.upper()} after 20 tasks (%)")
        ax.set_xlim(-0.6, len(entries) - 0.4)
    legend_outside(axes[1])
    fig.suptitle("FG-AdaHAT's importance measures, Permuted MNIST 20 tasks (circles: ours, mean ± sample std; "
                 "diamonds: published)")
    return fig


def hparams(ctx):
    """AA of FG-AdaHAT (ICU) over the α × b_L grid (study hparams), mean over seeds; the published setting boxed."""
    spec = read_study(HERE, "hparams")
    found = ctx.runs("hparams", [BENCHMARK])
    cells = {(found.configs[(e, BENCHMARK)]["alpha"], found.configs[(e, BENCHMARK)]["base_linear"]): e
             for e in spec["methods"]}
    alphas, bls = sorted({a for a, _ in cells}), sorted({b for _, b in cells})
    grid = [[mean_std(metric_values(found.get(cells[(a, b)], BENCHMARK), "aa"))[0] if (a, b) in cells else math.nan
             for b in bls] for a in alphas]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    heatmap(ax, grid, [f"{b:g}" for b in bls], [f"{a:g}" for a in alphas], "AA after 20 tasks (%)")
    icu = config_lib.resolve({"method": "fgadahat_icu", "benchmark": BENCHMARK}, METHODS)
    setting = (icu["alpha"], icu["base_linear"])  # the published ICU setting (its YAML), as in Table 1
    if setting in cells:
        i, j = alphas.index(setting[0]), bls.index(setting[1])
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_xlabel("b_L (base of the linear importance scheduler)")
    ax.set_ylabel("α")
    ax.set_title("FG-AdaHAT (ICU), α × b_L: AA, Permuted MNIST 20 tasks (red box: published setting)")
    if not found.records:
        empty(ax, "no finished run of the hparams study")
    return fig


def accuracy_matrices(ctx):
    """One accuracy matrix per method of Table 1 (seed 1): tasks learned against tasks tested."""
    spec = read_study(HERE, "main")
    entries = list(spec["methods"])
    found = ctx.runs("main", [BENCHMARK], seeds=[MATRIX_SEED])
    fig, _, panels = panel_grid(len(entries), 4, (3.0, 2.8))
    for ax, entry in zip(panels, entries):
        runs = found.get(entry, BENCHMARK)
        if runs:
            acc_matrix(ax, runs[0]["acc"], f"{row_label(spec, entry)}, seed {MATRIX_SEED}")
        else:
            ax.set_title(row_label(spec, entry))
            ax.set_xticks([])
            ax.set_yticks([])
            empty(ax)
    fig.suptitle(f"Accuracy matrices, Permuted MNIST 20 tasks, seed {MATRIX_SEED} (row: after learning task t; "
                 "column: tested on task j; %)")
    return fig


FIGURES = {
    "tradeoff": ("Stability against plasticity: BWT against FWT of every method of Table 1 (study main) and of the "
                 "2025 research configs (study configs2025), mean ± sample std over seeds, with the published "
                 "point of each Table 1 method (open marker), and the α path of IG, OG, CU and ICU (study "
                 "alpha_path with the main study's run: α/10, α, 10α; dashed).", tradeoff),
    "measures": ("The nine importance measures side by side: AA and FR with the published mean ± std.", measures),
    "hparams": ("FG-AdaHAT (ICU): AA over the α × b_L grid (study hparams), the published setting boxed.", hparams),
    "accuracy_matrices": ("Accuracy matrices of every method of Table 1, seed 1 (tasks learned against tasks "
                          "tested).", accuracy_matrices),
}
