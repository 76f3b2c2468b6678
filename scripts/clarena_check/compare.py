"""Metrics of reference-library runs next to this repository's runs of the same method and seeds, both computed
with this repository's metric code and (where finished) its joint / independent / random reference runs.

    python -m scripts.clarena_check.compare --clarena outputs/ig/results --method fgadahat_ig [--seed 1] [--study main]
    python -m scripts.clarena_check.compare --clarena 'outputs/adahat_seed{seed}/results' --seeds 1-3 \
        --ours '/tmp/ours/fg_adahat/default/pmnist-20/adahat/seed{seed}' --refs_dir runs --label adahat

`--clarena` is the folder holding the reference library's `acc.csv` (same layout as this repository's records);
`{seed}` in it (and in `--ours`) stands for each seed. Our run is the study entry's record (`--method`, `--study`)
or the folder `--ours`; its references are looked up under `--refs_dir` (default: the run's own `out_dir`), and
FR / FWT are "—" where they have not finished. Prints one Markdown table: a row per side and seed, then, for more
than one seed, the mean ± sample standard deviation of each side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from common import records
from common.metrics import all_metrics, diagonal
from common.studies import finished_references, parse_seeds
from common.tables import resolve_entry
from fg_adahat import METHODS

SHOWN = ("aa", "fr", "bwt", "fwt")
COLUMNS = ("AA", "FR", "BWT", "FWT")
FG_ADAHAT = Path(__file__).resolve().parents[2] / "fg_adahat"


def values(acc: list[list[float]], refs: dict | None) -> list[float | None]:
    """AA, FR, BWT, FWT (None without references) and the accuracy right after the first and the last task."""
    refs = refs or {}
    metrics = all_metrics(acc, refs.get("joint"), refs.get("independent"), refs.get("random"))
    diag = diagonal(acc)
    return [metrics[k] for k in SHOWN] + [diag[0], diag[-1]]


def cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def row(label: str, acc: list[list[float]], refs: dict | None) -> str:
    """One seed: AA, FR, BWT, FWT and the accuracy right after task 1 → task N, in percent."""
    v = values(acc, refs)
    return f"| {label} | {' | '.join(cell(x) for x in v[:4])} | {cell(v[4], 1)} → {cell(v[5], 1)} |"


def mean_row(label: str, rows: list[list[float | None]]) -> str:
    """Mean ± sample standard deviation over seeds of every column (— if a seed lacks it)."""
    cells = []
    for column in zip(*rows):
        if any(x is None for x in column):
            cells.append("—")
        else:
            cells.append(f"{100 * statistics.mean(column):.2f} ± {100 * statistics.stdev(column):.2f}")
    return f"| {label}, mean ± std ({len(rows)} seeds) | {' | '.join(cells[:4])} | {cells[4]} → {cells[5]} |"


def our_run(args, seed: int) -> tuple[Path, dict]:
    """(record folder, its configuration) of our run of `seed`."""
    if args.ours:
        folder = Path(args.ours.format(seed=seed))
        return folder, records.read_config(folder)
    cfg = resolve_entry(FG_ADAHAT, args.study, args.method, "pmnist", seed, METHODS)
    return records.run_folder(cfg), cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clarena", required=True, help="folder with the reference library's acc.csv ({seed})")
    parser.add_argument("--method", help="our study entry (without --ours)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", help="several seeds, e.g. 1-3 (overrides --seed)")
    parser.add_argument("--study", default="main")
    parser.add_argument("--ours", help="our run's record folder ({seed}); default: the study entry's record")
    parser.add_argument("--refs_dir", help="out_dir holding the reference runs (default: the run's out_dir)")
    parser.add_argument("--label", help="name in the table header (default: --method)")
    args = parser.parse_args(argv)
    if not (args.ours or args.method):
        parser.error("give --method or --ours")
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    lines, table = [], {"reference library": [], "this repository": []}
    for seed in seeds:
        folder, cfg = our_run(args, seed)
        if not records.is_done(folder):
            print(f"error: run {folder} has not finished", file=sys.stderr)
            return 2
        refs = finished_references({**cfg, "out_dir": args.refs_dir or cfg["out_dir"]}, METHODS)
        theirs = records.read_acc(Path(args.clarena.format(seed=seed)))
        ours = records.read_acc(folder)
        if len(theirs) != len(ours):
            print(f"error: {len(theirs)} tasks in {args.clarena}, {len(ours)} in {folder}", file=sys.stderr)
            return 2
        for side, acc in (("reference library", theirs), ("this repository", ours)):
            lines.append(row(f"{side}, seed {seed}", acc, refs))
            table[side].append(values(acc, refs))
    if len(seeds) > 1:
        lines += [mean_row(side, rows) for side, rows in table.items()]
    print(f"| {args.label or args.method} | {' | '.join(COLUMNS)} | accuracy right after task 1 → task N |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
