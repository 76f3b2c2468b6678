"""Metrics of a reference-library run next to this repository's run of the same method and seed, both computed
with this repository's metric code and its joint / independent / random reference runs of that seed.

    python -m scripts.clarena_check.compare --clarena outputs/ig/results --method fgadahat_ig [--seed 1] [--study main]

`--clarena` is the folder holding the reference library's `acc.csv` (same layout as this repository's records).
Our run and its references must have finished (`runs/`); prints one Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import records
from common.metrics import all_metrics, diagonal
from common.studies import finished_references
from common.tables import resolve_entry
from fg_adahat import METHODS

SHOWN = ("aa", "fr", "bwt", "fwt")
FG_ADAHAT = Path(__file__).resolve().parents[2] / "fg_adahat"


def row(label: str, acc: list[list[float]], refs: dict) -> str:
    values = all_metrics(acc, refs["joint"], refs["independent"], refs["random"])
    diag = diagonal(acc)
    cells = [f"{100 * values[k]:.2f}" for k in SHOWN]
    return f"| {label} | {' | '.join(cells)} | {100 * diag[0]:.1f} → {100 * diag[-1]:.1f} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clarena", type=Path, required=True, help="folder with the reference library's acc.csv")
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--study", default="main")
    args = parser.parse_args(argv)
    cfg = resolve_entry(FG_ADAHAT, args.study, args.method, "pmnist", args.seed, METHODS)
    refs = finished_references(cfg, METHODS)
    folder = records.run_folder(cfg)
    if refs is None or not records.is_done(folder):
        print(f"error: run {folder} or its reference runs have not finished", file=sys.stderr)
        return 2
    theirs = records.read_acc(args.clarena)
    ours = records.read_acc(folder)
    if len(theirs) != len(ours):
        print(f"error: {len(theirs)} tasks in {args.clarena}, {len(ours)} in {folder}", file=sys.stderr)
        return 2
    print(f"| {args.method}, seed {args.seed} | AA | FR | BWT | FWT | accuracy right after task 1 → task N |")
    print("|---|---|---|---|---|---|")
    print(row("reference library", theirs, refs))
    print(row("this repository", ours, refs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
