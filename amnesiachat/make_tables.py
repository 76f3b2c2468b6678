"""The AmnesiacHAT study's tables from run records.

    python -m amnesiachat.make_tables [--seeds 1-5] [--out results/amnesiachat]
                                      [--parts main,ablation,hparams,pruning] [--columns pmnist-5-til,...] [key=value ...]

* main: AA on the remaining tasks, DD (1 - linear CKA against the retrain reference, averaged over the unlearned
  tasks) and AG (accuracy gain over the original reference, averaged over the remaining tasks) for every method on
  PMNIST-5 TIL and DIL, RMNIST-5 TIL and DIL, SCIFAR10-5 TIL, PMNIST-20 TIL, Combined-5 TIL (one table per metric);
* ablation: backup compensation x replay repair (PMNIST-5 TIL);
* hparams: buffer size x repair steps, and unlearnable age 3 (PMNIST-5 TIL);
* pruning: memory of the stored updates on PMNIST-20 TIL, and what magnitude pruning does to AA and DD.
Rows are the studies' entries in the order of their files (the main table: `main`'s, then those only `main_dil`
has), labelled by the studies' `labels`. Cells are mean ± sample std over the finished seeds (`(n=k)` for fewer than the study's seeds); `—` marks cells without runs. There are no
published AmnesiacHAT numbers to compare with.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from amnesiachat import METHODS
from common import config as config_lib
from common.records import git_commit
from common.studies import parse_seeds, read_study, row_label, table_entries, tuned_reason
from common.tables import (Cell, Table, collect, commits_note, count_note, exit_on_record_error, metric_values,
                           tuned_note, write_tables)

HERE = Path(__file__).parent
# column label -> (study, benchmark, overrides)
MAIN_COLUMNS = {
    "PMNIST-5 TIL": ("main", "pmnist", {}), "PMNIST-5 DIL": ("main_dil", "pmnist", {}),
    "RMNIST-5 TIL": ("main", "rmnist", {}), "RMNIST-5 DIL": ("main_dil", "rmnist", {}),
    "SCIFAR10-5 TIL": ("main", "scifar10", {}), "PMNIST-20 TIL": ("main", "pmnist", {"num_tasks": 20}),
    "Combined-5 TIL": ("main", "combined5", {}),
}
# metric key -> (title, scale, number format)
METRICS = {"aa_remaining": ("AA on remaining tasks (%)", 100.0, ".2f"),
           "dd": ("DD: 1 - linear CKA to the retrain reference, unlearned tasks (lower is better)", 1.0, ".4f"),
           "ag": ("AG: accuracy gain over the original reference, remaining tasks (%)", 100.0, ".2f"),
           "aa": ("AA over all tasks, unlearned ones included (%)", 100.0, ".2f"),
           "update_store_peak_mb": ("update store, as stored (MiB)", 1.0, ".2f"),
           "update_store_dense_peak_mb": ("update store, dense (MiB)", 1.0, ".2f")}
MAIN_METRICS = ("aa_remaining", "dd", "ag", "aa")
NOTES = ["mean ± sample std over seeds", "remaining tasks: never unlearned (tasks 3, 4 of every block of five)"]
LWF_NOTES = {True: "LwF ran with `distill_gradient: true` (the AmnesiacHAT reference code): the distillation term "
                   "reaches the backbone through the detached old heads",
             False: "LwF ran with `distill_gradient: false` (the FG-AdaHAT reference code): the distillation term "
                    "sends no gradient, so LwF repeats Finetuning wherever the networks have no batch norm"}


def lwf_notes(found: dict) -> list[str]:
    """Which distillation behaviour the LwF runs of a table had (none found: the configured default)."""
    ran = {bool(r["config"]["distill_gradient"]) for runs in found.values() for r in runs
           if r.get("config", {}).get("method") == "amnesiac_lwf"}
    if not ran:
        ran = {bool(config_lib.load_yaml(HERE / "configs" / "amnesiac_lwf.yaml").get("distill_gradient", False))}
    return [LWF_NOTES[v] for v in sorted(ran, reverse=True)]


def cell(runs: list[dict], metric: str, spec: dict | None = None, entry: str = "") -> Cell:
    """One cell; with the study `spec`: `(n=k)` under its seeds and † for a tuned `entry`."""
    _, scale, fmt = METRICS[metric]
    return Cell(metric_values(runs, metric, scale), fmt=fmt, expected_n=len(spec["seeds"]) if spec else None,
                tuned=bool(spec and tuned_reason(spec, entry)))


def add_notes(table: Table, specs: dict, runs) -> Table:
    """The shared footnotes; `specs`: {entry: its study} of the rows."""
    table.notes = [*table.notes, *tuned_note(table, {row_label(spec, e): tuned_reason(spec, e)
                                                     for e, spec in specs.items()})]
    seeds = sorted({len(spec["seeds"]) for spec in specs.values()})
    table.notes += count_note(table, "the study's " + " / ".join(map(str, seeds)))
    table.notes += commits_note(runs)
    return table


def main_tables(seeds, overrides: dict, columns: list[str]) -> list[Table]:
    found, labels, specs = {}, {}, {}
    for column in columns:
        study, benchmark, extra = MAIN_COLUMNS[column]
        spec = read_study(HERE, study)
        for entry in table_entries(spec, "main"):
            labels.setdefault(entry, row_label(spec, entry))
            specs.setdefault(entry, spec)
        for (entry, _), runs in collect(HERE, study, METHODS, seeds, [benchmark], {**extra, **overrides}).items():
            found[(entry, column)] = runs
    tables = []
    for metric in MAIN_METRICS:
        title = METRICS[metric][0]
        rows = {label: {c: cell(found.get((e, c), []), metric, specs[e], e) for c in columns}
                for e, label in labels.items()}
        table = Table(f"AmnesiacHAT main table: {title}", columns, rows, [*NOTES, *lwf_notes(found)])
        tables.append(add_notes(table, specs, [r for runs in found.values() for r in runs]))
    return tables


def study_table(study: str, title: str, seeds, overrides: dict, metrics=("aa_remaining", "dd", "ag")) -> Table:
    found, spec = collect(HERE, study, METHODS, seeds, overrides=overrides), read_study(HERE, study)
    benchmark = spec["benchmarks"][-1]  # these studies run on one benchmark
    columns = [METRICS[m][0] for m in metrics]
    entries = table_entries(spec, study)
    rows = {row_label(spec, e): {col: cell(found.get((e, benchmark), []), m, spec, e)
                                 for col, m in zip(columns, metrics)} for e in entries}
    return add_notes(Table(title, columns, rows, NOTES), {e: spec for e in entries},
                     [r for e in entries for r in found.get((e, benchmark), [])])


def column_slug(column: str) -> str:
    """'PMNIST-5 TIL' and 'pmnist-5-til' name the same main-table column."""
    return column.strip().lower().replace(" ", "-")


@exit_on_record_error
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="", help="e.g. 1-5 (default: each study's)")
    parser.add_argument("--out", default="results/amnesiachat")
    parser.add_argument("--parts", default="main,ablation,hparams,pruning")
    parser.add_argument("--columns", default=",".join(MAIN_COLUMNS), help="main-table columns")
    parser.add_argument("overrides", nargs="*", help="key=value applied to every run looked up (e.g. out_dir=...)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    overrides = config_lib.parse_cli(args.overrides)
    by_slug = {column_slug(c): c for c in MAIN_COLUMNS}
    asked = [c for c in args.columns.split(",") if c.strip()]
    unknown = [c for c in asked if column_slug(c) not in by_slug]
    if unknown:
        parser.error(f"unknown column(s) {', '.join(unknown)}; known: {', '.join(MAIN_COLUMNS)}")
    columns = [by_slug[column_slug(c)] for c in asked]
    parts = set(args.parts.split(","))
    out = Path(args.out)
    header = (f"Generated by `python -m amnesiachat.make_tables {shlex.join(argv if argv is not None else sys.argv[1:])}`"
              f" at commit {git_commit()}.\n\n")
    written = []
    if "main" in parts:
        written += write_tables(main_tables(seeds, overrides, columns), out / "main", header)
    if "ablation" in parts:
        written += write_tables([study_table("ablation", "AmnesiacHAT ablation, PMNIST-5 TIL", seeds, overrides)],
                                out / "ablation", header)
    if "hparams" in parts:
        written += write_tables([study_table("hparams", "AmnesiacHAT hyperparameters, PMNIST-5 TIL", seeds,
                                             overrides)], out / "hparams", header)
    if "pruning" in parts:
        table = study_table("pruning", "AmnesiacHAT update store and magnitude pruning, PMNIST-20 TIL", seeds,
                            overrides, ("update_store_peak_mb", "update_store_dense_peak_mb", "aa_remaining", "dd",
                                        "ag"))
        table.notes[len(NOTES):len(NOTES)] = ["store sizes in MiB: the largest the store of updates grew during the "
                                              "run, as stored (sparse where entries are zero) and as one dense copy "
                                              "per task"]
        written += write_tables([table], out / "pruning", header)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
