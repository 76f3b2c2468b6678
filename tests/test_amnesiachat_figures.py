"""AmnesiacHAT figures (`amnesiachat/figures.py`) drawn from hand-made records: what each figure shows (a panel or
bar per method, unlearned tasks dashed, the grid's cells), and the command's missing-runs path."""

import math

import pytest

from amnesiachat import figures, make_figures
from common import figures as figures_lib
from common import planner
from common.plots import plt

UNLEARNED = [1, 2, 5]  # the published PMNIST-5 schedule: tasks 3 and 4 remain
ACC = [[0.95], [0.95, 0.96], [0.10, 0.11, 0.94], [0.10, 0.11, 0.93, 0.95], [0.10, 0.11, 0.92, 0.94, 0.09]]


def record(seed: int, **metrics) -> dict:
    return {"acc": ACC, "metrics": {"unlearned": UNLEARNED, **metrics}, "seed": seed}


class HandMade(figures_lib.Context):
    """A figure context whose runs are hand-made records: entry -> list of records (the planned configs are real)."""

    def __init__(self, made: dict):
        super().__init__("amnesiachat", [1, 2])
        self.made = made

    def runs(self, study, benchmarks=None, entries=None, seeds=None, overrides=None):
        found = figures_lib.Found()
        for job in planner.plan("amnesiachat", study, benchmarks, seeds or self.seeds, entries, {}):
            if job.kind != "main":
                continue
            key = (job.name, job.cli["benchmark"])
            found.configs.setdefault(key, job.cfg)
            made = [r for r in self.made.get((study, job.name), []) if r["seed"] == int(job.cli["seed"])]
            found.records.setdefault(key, []).extend(made) if made else found.missing.append(job)
        return found


def draw(made, name):
    fig = figures.FIGURES[name][1](HandMade(made))
    return fig, [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_trajectories_one_panel_per_method_unlearned_tasks_dashed():
    made = {("main", "amnesiachat"): [record(1)], ("main", "independent"): [record(1)]}
    fig, axes = draw(made, "trajectories")
    panels = {ax.get_title(): ax for ax in axes if ax.get_title()}
    assert list(panels) == ["Independent", "Finetuning", "LwF", "EWC", "DER", "DER++", "CLPU-DER++", "AmnesiacHAT"]
    lines = panels["AmnesiacHAT"].get_lines()
    assert len(lines) == 5
    styles = {line.get_label(): line.get_linestyle() for line in lines}
    assert styles == {"task 1 (unlearned)": "--", "task 2 (unlearned)": "--", "task 3": "-", "task 4": "-",
                      "task 5 (unlearned)": "--"}
    task3 = next(line for line in lines if line.get_label() == "task 3")
    assert list(task3.get_xdata()) == [3, 4, 5] and list(task3.get_ydata()) == pytest.approx([94, 93, 92])
    assert not panels["EWC"].get_lines()  # no record: drawn empty
    plt.close(fig)


def test_dd_ag_bars_are_the_seed_means():
    made = {("main", "amnesiachat"): [record(1, dd=0.30, ag=-0.002), record(2, dd=0.34, ag=-0.004)]}
    fig, (ax_dd, ax_ag) = draw(made, "dd_ag")
    (bar,) = [p for p in ax_dd.patches if p.get_height() != 0]
    assert bar.get_height() == pytest.approx(0.32) and bar.get_x() + bar.get_width() / 2 == pytest.approx(7)
    (bar,) = [p for p in ax_ag.patches if p.get_height() != 0]
    assert bar.get_height() == pytest.approx(-0.3)  # AG in %
    assert "DD" in ax_dd.get_ylabel() and "AG" in ax_ag.get_ylabel()
    plt.close(fig)


def test_hparams_grid_has_a_cell_per_buffer_and_repair_setting():
    made = {("hparams", "amnesiachat_buffer50_repair200"): [record(1, aa_remaining=0.9, dd=0.25)]}
    fig, axes = draw(made, "hparams")
    data = axes[0].images[0].get_array()
    assert data.shape == (3, 3) and data.count() == 1
    assert data[1, 2] == pytest.approx(90.0)  # buffer 50 (row 2 of 20, 50, 200), 200 repair steps (column 3)
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["20", "50", "200"]
    plt.close(fig)


def test_pruning_shows_memory_as_stored_and_dense():
    made = {("pruning", "amnesiachat_prune90"): [record(1, update_store_peak_mb=2.0, update_store_dense_peak_mb=10.0,
                                                       aa_remaining=0.8)]}
    fig, (ax_mem, ax_aa) = draw(made, "pruning")
    heights = sorted(p.get_height() for p in ax_mem.patches if not math.isclose(p.get_height(), 0))
    assert heights == [2.0, 10.0]
    assert ax_mem.get_legend_handles_labels()[1] == ["as stored", "dense"]
    plt.close(fig)


def test_command_without_records_draws_every_figure_and_lists_the_sweeps(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_RECORDS", str(tmp_path / "empty_store"))
    out = tmp_path / "figs"
    assert make_figures.main(["--out", str(out), "--seeds", "1", f"out_dir={tmp_path / 'no_runs'}"]) == 0
    for name in figures.FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
    printed = capsys.readouterr().out
    assert "python -m scripts.sweep --package amnesiachat --study main --benchmarks pmnist --seeds 1" in printed
