"""The WSN / CBP results table from tiny Permuted MNIST runs of the wsn_cbp study."""

from pathlib import Path

import pytest

import baselines
from baselines import METHODS, make_tables
from common import runner

PACKAGE = Path(baselines.__file__).parent


@pytest.mark.realdata
def test_table_from_study_runs(tmp_path, mnist_dir):
    tiny = ["num_tasks=2", "epochs=1", "train_subset=256", "threads=1", f"data_dir={mnist_dir}", f"out_dir={tmp_path}"]
    for entry in ("wsn_c0.1", "cbp"):
        for seed in (1, 2):
            assert runner.main(["study=wsn_cbp", f"method={entry}", "benchmark=pmnist", f"seed={seed}", *tiny],
                               METHODS, PACKAGE) == 0
    out = tmp_path / "tables"
    assert make_tables.main(["--seeds", "1-2", "--out", str(out), *tiny]) == 0
    md = (out / "wsn_cbp.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert "±" in rows["WSN (c = 0.1)"] and "±" in rows["CBP"]
    assert rows["WSN (c = 0.1)"].split(" | ")[3].startswith("0.00 ± 0.00")  # BWT: WSN forgets nothing
    assert rows["WSN (c = 0.5)"].count("—") == 6 and rows["HAT"].count("—") == 6  # not run here
    assert "67.10 ± 0.56" in rows["HAT"]  # the FG-AdaHAT paper's HAT AA beside the (missing) run
    csv_text = (out / "wsn_cbp.csv").read_text()
    assert "WSN (c = 0.1),AA,2," in csv_text and "CBP,seconds,2," in csv_text
