"""The reader of the AmnesiacHAT paper code's outputs (`scripts/clarena_check/compare_amnesiac.py`) on a tiny
synthetic output folder in the driver's layout: the metrics it takes, the ones it recomputes, and that a missing
or crashed run is reported, not dropped."""

from __future__ import annotations

import pytest

from scripts.clarena_check import compare_amnesiac as ca

ACC_HEAD = "after_training_task,average_accuracy," + ",".join(f"test_on_task_{t}" for t in range(1, 6))
MAIN_ACC = ACC_HEAD + """
1,0.9,0.9
2,0.5,0.1,0.9
3,0.6,0.1,0.8,0.9
4,0.5,0.1,0.1,0.8,0.9
5,0.4,0.1,0.1,0.8,0.9,0.2
"""
ORIGINAL_ACC = ACC_HEAD + """
5,0.9,0.9,0.9,0.85,0.95,0.9
"""
PER_TASK = ",".join(f"unlearning_test_on_task_{t}" for t in range(1, 6))
DD = "average_distribution_distance_on_unlearned," + PER_TASK + """
0.9,0.9,0.9,0.9,0.9,0.9
0.3,0.2,0.4,0.5,0.5,0.3
"""
AG = "average_acc_gain_on_remaining," + PER_TASK + """
-0.05,-0.8,-0.8,-0.05,-0.05,-0.7
"""
CONFIG = "train_tasks: 5\nunlearning_requests:\n  2: [1]\n  4: [2]\n  5: [5]\n"


def bundle_run(folder, dd=True):
    files = {"results/acc.csv": MAIN_ACC, "reforiginal/results/acc.csv": ORIGINAL_ACC, "results/ag.csv": AG,
             ".hydra/config.yaml": CONFIG, "timing.json": '{"CULMainExperiment": 10.0, "refretrain": 2.5}',
             "command.json": '{"argv": [], "driver": ["run_bundle_amnesiac.py", "--seed", "1"]}'}
    if dd:
        files["results/dd.csv"] = DD
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_bundle_values_reads_and_recomputes(tmp_path):
    v = ca.bundle_values(bundle_run(tmp_path / "run"))
    assert v["unlearned"] == [1, 2, 5]
    assert v["aa_remaining"] == pytest.approx(0.85)                # tasks 3, 4 of the final row
    assert v["unlearned_acc"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert v["dd"] == pytest.approx(0.3)                           # the last row of dd.csv (a rerun appends)
    assert v["dd_per_task"][2] == pytest.approx(0.4)
    assert v["ag"] == pytest.approx(-0.05)                         # its own ag.csv
    assert v["ag_from_acc"] == pytest.approx(((0.8 - 0.85) + (0.9 - 0.95)) / 2)
    assert v["seconds"] == pytest.approx(12.5)


def test_missing_runs_are_reported_and_the_table_written(tmp_path, monkeypatch):
    bundle_run(tmp_path / "amnesiachat" / "seed1")
    bundle_run(tmp_path / "amnesiachat" / "seed2", dd=False)      # crashed before the full evaluation
    ours = {"aa_remaining": 0.9, "dd": 0.5, "ag": -0.04, "ag_from_acc": -0.04, "unlearned_acc": 0.1,
            "seconds": 100.0, "unlearned": [1, 2, 5], "dd_per_task": {1: 0.5}, "commit": "abcdef0123"}
    monkeypatch.setattr(ca, "our_values", lambda method, seed, study: dict(ours) if seed == 1 else None)
    out = tmp_path / "table"
    assert ca.main(["--bundle_out", str(tmp_path / "{method}" / "seed{seed}"), "--methods", "amnesiachat",
                    "--seeds", "1-2", "--out", str(out)]) == 0
    text = (out / "reference_check.md").read_text()
    assert "bundle run amnesiachat seed 2: no " in text and "dd.csv" in text
    assert "our run amnesiachat seed 2 has not finished" in text
    assert ("| AmnesiacHAT | 85.00 (n=1) | 90.00 (n=1) | 0.3000 (n=1) | 0.5000 (n=1) | -5.00 (n=1) | -4.00 (n=1) | "
            "-5.00 (n=1) | -4.00 (n=1) |") in text
    assert "python run_bundle_amnesiac.py --seed 1" in text
    assert "| AmnesiacHAT | DD | — | — | fewer than two seeds on a side |  |" in text
    assert (out / "bundle_runs" / "amnesiachat" / "seed1" / "results" / "dd.csv").read_text() == DD
    assert not (out / "bundle_runs" / "amnesiachat" / "seed2").exists()
    assert "aa_remaining,bundle,1," in (out / "summary.csv").read_text()


def test_agreement_against_the_combined_seed_spread():
    # bundle 1, 2, 3: mean 2, sd 1; ours 3, 5, 7: mean 5, sd 2; spread sqrt(1 + 4) = 2.236
    judged = ca.agreement([1.0, 2.0, 3.0], [3.0, 5.0, 7.0])
    assert judged["delta"] == pytest.approx(3.0)
    assert judged["spread"] == pytest.approx(5 ** 0.5)
    assert judged["verdict"] == "beyond"
    assert ca.agreement([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])["verdict"] == "within"   # delta 2 <= 2.236
    assert ca.agreement([1.0], [2.0, 4.0]) is None                                  # no spread from one seed


def test_a_difference_beyond_the_spread_names_its_cause_or_says_it_is_not_known():
    def runs(method, bundle, ours):
        return {(method, s): {"bundle": {"aa_remaining": b, "dd": 0.5}, "ours": {"aa_remaining": o, "dd": 0.5}}
                for s, b, o in zip((1, 2, 3), bundle, ours)}
    lines = ca.agreement_lines(runs("amnesiac_derpp", [0.70, 0.72, 0.74], [0.84, 0.85, 0.86]), ["amnesiac_derpp"],
                               [1, 2, 3], "main")
    cause = ca.BEYOND[("main", "amnesiac_derpp", "aa_remaining")]
    assert lines[2] == f"| DER++ | AA remaining (%) | +13.00 | 2.24 | beyond | {cause} |"
    assert lines[3] == "| DER++ | DD | +0.0000 | 0.0000 | within |  |"
    lines = ca.agreement_lines(runs("amnesiachat", [0.70, 0.72, 0.74], [0.84, 0.85, 0.86]), ["amnesiachat"],
                               [1, 2, 3], "main")
    assert lines[2].endswith("| beyond | not known |")
