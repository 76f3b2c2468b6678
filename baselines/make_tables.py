"""WSN and CBP beside Finetuning, HAT and AdaHAT on Permuted MNIST (AA, BWT, FWT, FR, seconds) from run records.

    python -m baselines.make_tables [--seeds 1-3] [--out results/baselines] [key=value ...]

WSN (two capacities) and CBP are the `wsn_cbp` study of this folder; Finetuning, HAT and AdaHAT are the runs of
fg_adahat's `main` study (the settings of the FG-AdaHAT tables), shown with that paper's published values. Extra
key=value pairs select runs made with those settings (e.g. out_dir=...). Cells: mean ± sample std over the seeds
that finished; `—` where none did.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import fg_adahat
from baselines import METHODS
from common import config as config_lib
from common.records import git_commit
from common.tables import (Cell, Table, collect, commits_note, count_note, metric_values, read_targets, tuned_note,
                           write_tables)
from fg_adahat import METHODS as FG_METHODS
from common.studies import parse_seeds, read_study, tuned_reason

HERE = Path(__file__).parent
FG_DIR = Path(fg_adahat.__file__).parent
BENCHMARK = "pmnist"
# (package dir, registry, study, entry, row label)
ROWS = [(FG_DIR, FG_METHODS, "main", "finetuning", "Finetuning"),
        (FG_DIR, FG_METHODS, "main", "hat", "HAT"),
        (FG_DIR, FG_METHODS, "main", "adahat", "AdaHAT"),
        (HERE, METHODS, "wsn_cbp", "wsn_c0.1", "WSN (c = 0.1)"),
        (HERE, METHODS, "wsn_cbp", "wsn_c0.5", "WSN (c = 0.5)"),
        (HERE, METHODS, "wsn_cbp", "cbp", "CBP")]
METRICS = ("aa", "bwt", "fwt", "fr")
NOTES = [
    "Permuted MNIST, 20 tasks, 2 epochs, batch 128, Adam 1e-3 (the pmnist benchmark YAML); mean ± sample std over "
    "the seeds that finished, in %; `published` for Finetuning, HAT and AdaHAT: the FG-AdaHAT paper (its Tables 1 "
    "and 2), ✓ = within published mean ± 2 std (± 1.5 points where that std < 0.75)",
    "WSN and CBP: neither paper reports a number on a benchmark of this repository. WSN's Permuted MNIST has 10 tasks "
    "on a two-layer 100-unit MLP (5 epochs, batch 10); CBP's is Online Permuted MNIST (800 tasks, one pass, "
    "accuracy per task, no average accuracy). No published value is shown for them.",
    "seconds: wall time of one run (training and testing), one CPU thread on a shared 2-core machine with other runs "
    "beside it; compare within a table only",
    "WSN capacity used: share of the backbone's weights in the union of the 20 task masks (`subnetworks.csv`)",
]


def capacity_used(run: dict) -> float | None:
    """Percent of backbone weights used by some task's mask after the last task (WSN runs only)."""
    path = Path(run["folder"]) / "subnetworks.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return 100.0 * int(last["used_total"]) / int(last["weights"])


def build_table(found: dict, targets: dict) -> Table:
    rows, reasons = {}, {}
    for package_dir, _, study, entry, label in ROWS:
        runs = found.get((study, entry), [])
        published = targets.get(entry, {}) if study == "main" else {}
        reasons[label] = tuned_reason(read_study(package_dir, study), entry)  # AdaHAT: the tuned row of fg_adahat
        expected = 10 if study == "main" else None  # the FG-AdaHAT paper's seeds on Permuted MNIST
        cells = {}
        for m in METRICS:
            pub = (published.get(f"{BENCHMARK}_{m}_mean"), published.get(f"{BENCHMARK}_{m}_std"))
            has_pub = pub[0] is not None and not math.isnan(pub[0])
            cells[m.upper()] = Cell(metric_values(runs, m), pub if has_pub else None, expected_n=expected,
                                    tuned=bool(reasons[label]))
        cells["seconds"] = Cell([r["seconds"] for r in runs], fmt=".0f")
        used = [v for v in (capacity_used(r) for r in runs) if v is not None]
        cells["WSN capacity used, %"] = Cell(used, fmt=".1f")
        rows[label] = cells
    columns = [m.upper() for m in METRICS] + ["seconds", "WSN capacity used, %"]
    table = Table("WSN and CBP beside Finetuning, HAT and AdaHAT: Permuted MNIST, 20 tasks", columns, rows, list(NOTES))
    table.notes += tuned_note(table, reasons)
    table.notes += count_note(table, "the FG-AdaHAT paper's 10 (Finetuning, HAT, AdaHAT)")
    table.notes += commits_note(r for runs in found.values() for r in runs)
    return table


def gather(seeds: list[int] | None, overrides: dict) -> dict:
    found = {}
    for package_dir, methods, study in {(r[0], id(r[1]), r[2]): r[:3] for r in ROWS}.values():
        entries = {r[3] for r in ROWS if r[2] == study}
        runs = collect(package_dir, study, methods, seeds, [BENCHMARK], overrides)
        for (entry, _), records in runs.items():
            if entry in entries:
                found[(study, entry)] = records
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1-3")
    parser.add_argument("--out", default="results/baselines")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    found = gather(parse_seeds(args.seeds), config_lib.parse_cli(args.overrides))
    for _, _, study, entry, label in ROWS:
        print(f"{label:16s} {len(found.get((study, entry), []))} finished run(s) ({study}/{entry})")
    targets = read_targets(FG_DIR / "targets" / "table1.csv")
    for method, values in read_targets(FG_DIR / "targets" / "table2.csv").items():
        targets.setdefault(method, {}).update(values)
    command = "python -m baselines.make_tables " + " ".join(argv if argv is not None else sys.argv[1:])
    header = f"Generated by `{command.strip()}` at commit {git_commit()}.\n\n"
    paths = write_tables([build_table(found, targets)], Path(args.out) / "wsn_cbp", header)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
