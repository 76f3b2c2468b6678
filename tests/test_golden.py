"""Trajectory guard: each golden run of tests/golden/manifest.yaml (one per method family, real Permuted MNIST, 3 tasks
x 2 epochs on 3000 images per task, seed 1, one CPU thread) is run again through its run command, and its accuracy
matrix must equal the committed tests/golden/<name>/acc.csv (numbers within 1e-6; one test image moves an accuracy
by 1e-4). Any change of a step, a default or the data pipeline that moves a number fails here; if the move is
intended, regenerate the file in a commit that says why (docs/fidelity.md#golden-runs). About 30 CPU seconds in all."""

import pytest

from golden import regenerate as golden

pytestmark = pytest.mark.realdata
NAMES = list(golden.manifest())


def test_every_golden_folder_is_in_the_manifest_and_has_its_files():
    folders = sorted(p.name for p in golden.GOLDEN.iterdir() if p.is_dir() and not p.name.startswith("__"))
    assert folders == sorted(NAMES)
    for name in NAMES:
        assert (golden.GOLDEN / name / "acc.csv").is_file() and (golden.GOLDEN / name / "config.yaml").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_golden_run_reproduces_its_accuracy_matrix(name, mnist_dir, tmp_path):
    folder = golden.run(name, mnist_dir, tmp_path)
    difference = golden.first_difference(golden.GOLDEN / name / "acc.csv", folder / "acc.csv")
    if difference is not None:
        changed = golden.config_changes(name, folder)
        pytest.fail(f"golden run {name!r} no longer reproduces tests/golden/{name}/acc.csv: first difference at "
                    f"{difference}.\n  command: {' '.join(golden.command(name, mnist_dir, tmp_path))}\n"
                    f"  resolved configuration changed: {'; '.join(changed) if changed else 'no'}\n"
                    f"  If this change of trajectory is intended, regenerate with `python -m tests.golden.regenerate "
                    f"{name}` and commit the new file saying why (docs/fidelity.md#golden-runs).", pytrace=False)


def test_comparison_finds_the_first_differing_cell(tmp_path):
    """The comparison itself: equal text and numbers within the tolerance pass, NaN equals NaN, a change of one test
    image (1e-4) is caught and located."""
    header = "after_training_task,average_accuracy,test_on_task_1,test_on_task_2\n"
    want = tmp_path / "want.csv"
    want.write_text(header + "1,0.5,0.5\n2,0.25,nan,0.5\n")
    got = tmp_path / "got.csv"
    got.write_text(header + "1,0.5000000001,0.5\n2,0.25,nan,0.5\n")
    assert golden.first_difference(want, got) is None
    got.write_text(header + "1,0.5,0.5\n2,0.25,nan,0.5001\n")
    assert golden.first_difference(want, got) == ("row after_training_task=2, column test_on_task_2: golden 0.5, "
                                                  "now 0.5001")
    got.write_text(header + "1,0.5,0.5\n")
    assert "2 rows in the golden file, 1 now" == golden.first_difference(want, got)
