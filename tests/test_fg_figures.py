"""FG-AdaHAT figures (`fg_adahat/figures.py`) drawn from the hand-made records of `tests/fixtures/records/`
(Finetuning seeds 1-3, HAT 1-2, both AdaHAT rows and FG-AdaHAT (IG) seed 1 of the main study, its seed 2 unfinished;
IG at a tenth and ten times its α, seed 1, of the alpha_path study):
what each figure shows, the published markers, and the missing-runs path."""

import pytest
from matplotlib.colors import to_rgba

from common import figures as figures_lib
from common.plots import plt
from fg_adahat import figures, make_figures

RECORDS = figures_lib.planner.ROOT / "tests" / "fixtures" / "records"


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RECORDS", str(tmp_path / "empty_store"))  # only the fixture records count
    return figures_lib.Context("fg_adahat", [1, 2, 3], overrides={"out_dir": str(RECORDS)})


def draw(ctx, name):
    ctx.figure = name
    fig = figures.FIGURES[name][1](ctx)
    return fig, [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def open_markers(ax, marker):
    return [line for line in ax.get_lines() if line.get_marker() == marker and line.get_markerfacecolor() == "none"
            and len(line.get_xdata()) == 1]


def test_tradeoff_shows_each_finished_method_and_every_published_point(ctx):
    fig, (ax,) = draw(ctx, "tradeoff")
    labels = ax.get_legend_handles_labels()[1]
    counted = [l for l in labels if l.endswith(("seed)", "seeds)"))]
    assert counted == ["Finetuning (3 seeds)", "HAT (2 seeds)", "AdaHAT (1 seed)",  # IG's seed 2 crashed (no done)
                       "AdaHAT (2024 sparsity, α 5e-7) (1 seed)", "FG-AdaHAT (IG) (1 seed)"]
    published = open_markers(ax, "o")
    assert len(published) == 14  # every Table 1 row has a published Permuted MNIST point (both AdaHAT rows)
    hat = [l for l in published if l.get_xdata()[0] == pytest.approx(-0.0) and l.get_ydata()[0] == -31.12]
    assert len(hat) == 1  # HAT's published BWT, FWT
    assert "BWT" in ax.get_xlabel() and "FWT" in ax.get_ylabel()
    plt.close(fig)


def test_tradeoff_draws_the_alpha_path_through_the_main_run_smallest_alpha_first(ctx):
    fig, (ax,) = draw(ctx, "tradeoff")
    (path,) = [line for line in ax.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata()) > 0]
    # α 1.5e-8 (alpha_path), 1.5e-7 (main study's IG), 1.5e-6 (alpha_path): BWT and FWT x100 of the fixtures
    assert list(path.get_xdata()) == pytest.approx([-2.0, -7.7, -18.0])
    assert list(path.get_ydata()) == pytest.approx([-15.0, -5.55, -1.0])
    handles, labels = ax.get_legend_handles_labels()
    ig = handles[labels.index("FG-AdaHAT (IG) (1 seed)")]
    assert to_rgba(path.get_color()) == to_rgba(ig[0].get_color())  # the colour of the measure's Table 1 row
    (end,) = [t for t in ax.texts if t.get_text() == "α max"]
    assert end.xy == pytest.approx((-18.0, -1.0))
    assert any(l.startswith("α path") for l in ax.get_legend_handles_labels()[1])
    plt.close(fig)


def test_measures_show_ours_where_run_and_published_for_all_nine(ctx):
    fig, axes = draw(ctx, "measures")
    ax_aa, ax_fr = axes
    assert [t.get_text() for t in ax_aa.get_xticklabels()] == ["IG", "OG", "CU", "ICU", "AFI", "FA", "II", "GS", "DL"]
    ours = [line for line in ax_aa.get_lines() if line.get_marker() == "o"]
    assert len(ours) == 1 and ours[0].get_xdata()[0] == pytest.approx(-0.15)  # IG only
    diamonds = [line for line in ax_aa.get_lines() if line.get_marker() == "D"]
    assert len(diamonds) == 9 and diamonds[0].get_ydata()[0] == 84.05  # IG's published AA
    assert "AA" in ax_aa.get_ylabel() and "FR" in ax_fr.get_ylabel()
    plt.close(fig)


def test_accuracy_matrices_draw_seed_1_of_each_finished_method(ctx):
    fig, axes = draw(ctx, "accuracy_matrices")
    titles = [ax.get_title() for ax in axes if ax.get_title()]
    assert "Finetuning, seed 1" in titles and "FG-AdaHAT (IG), seed 1" in titles and "FG-AdaHAT (OG)" in titles
    drawn = [ax for ax in axes if ax.get_title().endswith("seed 1")]
    assert len(drawn) == 5 and all(ax.images for ax in drawn)
    plt.close(fig)


def test_hparams_without_runs_is_blank_with_the_published_setting_boxed(ctx):
    fig, axes = draw(ctx, "hparams")
    ax = axes[0]
    data = ax.images[0].get_array()
    assert data.mask.all()  # no run of the hparams study among the fixtures
    (box,) = ax.patches
    assert to_rgba(box.get_edgecolor()) == to_rgba("red")
    y, x = box.get_xy()[1] + 0.5, box.get_xy()[0] + 0.5
    assert ax.get_yticklabels()[round(y)].get_text() == "1.5e-07" and ax.get_xticklabels()[round(x)].get_text() == "5"
    assert len(ctx.missing["hparams"]) == 60  # 20 settings x 3 seeds, all missing
    plt.close(fig)


def test_command_draws_every_figure_and_lists_missing_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_RECORDS", str(tmp_path / "empty_store"))
    out = tmp_path / "figs"
    assert make_figures.main(["--out", str(out), "--seeds", "1-3", f"out_dir={RECORDS}"]) == 0
    for name in figures.FIGURES:
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.pdf").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "missing runs (" in printed and "python -m scripts.sweep --package fg_adahat --study hparams" in printed
    readme = (out / "README.md").read_text()
    assert "## tradeoff" in readme and "missing runs are made by:" in readme


def test_reproduce_figures_script_draws_every_paper(tmp_path):
    """scripts/reproduce_figures.sh calls each paper's make_figures, with seeds 1-3 unless SEEDS says otherwise."""
    import subprocess
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    repo = figures_lib.planner.ROOT
    for seeds, expected in ((None, "--seeds 1-3"), ("1-5", "--seeds 1-5"), ("", "")):
        (tmp_path / "calls").unlink(missing_ok=True)
        env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), **({} if seeds is None else {"SEEDS": seeds})}
        done = subprocess.run(["bash", "scripts/reproduce_figures.sh"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        calls = (tmp_path / "calls").read_text().splitlines()
        assert [c.split()[1] for c in calls] == ["adahat.make_figures", "fg_adahat.make_figures",
                                                 "amnesiachat.make_figures"]
        assert all(c.split(maxsplit=2)[2:] == ([expected] if expected else []) for c in calls)


def test_readme_keeps_the_dirty_mark_of_each_commit(tmp_path):
    """A clean and a `+dirty` record of one commit stay two entries in the figure README, shortened like the tables'."""
    from common.figures import Context, write_readme
    commit = "6ed7d8cae6ace98111c1806e63244fbf4c782463"
    ctx = Context("fg_adahat", needed={"hparams": 2}, commits={"hparams": {commit, commit + "+dirty"}})
    text = write_readme(tmp_path, ctx, {"hparams": ("the grid", None)}, "python -m fg_adahat.make_figures").read_text()
    assert "runs: 2 of 2 finished; trained at commits: 6ed7d8c, 6ed7d8c+dirty" in text
