"""FG-AdaHAT Tables 1 (AA, FR) and 2 (BWT, FWT) from run records, with the published values and match marks.

    python -m fg_adahat.make_tables [--benchmarks pmnist] [--seeds 1-3] [--methods hat,adahat] [--out results/fg_adahat]
                                    [key=value ...]

Rows are the study's entries in the order of its file (`methods`; for `main` the paper's: Finetuning, LwF, HAT,
AdaHAT, FG-AdaHAT with each importance measure), labelled by its `labels` and compared with the published row of
the method each runs (or the one its `published` names); a row or benchmark without finished runs shows `—`, and so
do the published cells of an entry without a published row. A tuned entry (`tuned` in the study file: a setting
chosen to match the published numbers) shows † where a match would show ✓; a cell over fewer seeds than the paper's
(10 on PMNIST, 5 elsewhere) shows `(n=k)`. The footnotes under each table say what the marks mean, that AFI is
computed as ICU (paper-time code), which rows were not run, FR's divisor and the commits that trained the runs.
Extra key=value pairs select runs made with those settings (e.g. out_dir=...).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from common import config as config_lib
from common.records import git_commit
from common.studies import parse_seeds, published_row, read_study, row_label, study_entries, table_entries, tuned_reason
from common.tables import (MISSING, Cell, Table, collect, commits_note, count_note, exit_on_record_error,
                           metric_values, read_targets, resolve_entry, tuned_note, write_tables)
from fg_adahat import METHODS

HERE = Path(__file__).parent
BENCHMARKS = {"pmnist": "PMNIST", "scifar100": "SCIFAR100", "combined20": "Combined-20"}
PUBLISHED_SEEDS = {"pmnist": 10, "scifar100": 5, "combined20": 5}  # the seeds behind each published column
TABLES = {"table1": ("aa", "fr"), "table2": ("bwt", "fwt")}
FR_NOTE = ("FR divides the sum of the N per-task ratios by N - 1, as the notebook behind the published FR values "
           "does (docs/metrics.md#fr); every record also holds the 1/N version, `fr_1_over_n`")
AFI_NOTE = ("{afi}: run with `afi_semantics: paper`; the paper-time code computed ICU under AFI's name, so its cells "
            "repeat {icu}'s (docs/fg_adahat.md#afi), while the published AFI row differs from the published ICU row")
FA_NOTE = "{fa}: not run; feature ablation is the most expensive measure (docs/fg_adahat.md#fa)"
ONLY_NOTE = "{label}: run on {benchmarks} only, as in the paper (its `benchmarks` in the study file)"


SMOKE_TEST = ("**Smoke test, not a reproduction** (quick mode: short task sequence, 1 epoch, one seed; no published "
              "values). What a short sequence can show: Finetuning and LwF forget most, HAT's BWT is 0, and every "
              "HAT-family method is far above Finetuning in AA. AdaHAT's and FG-AdaHAT's gain over HAT needs a long "
              "sequence (the published 20 tasks), so here they may sit level with HAT or below it.\n\n")


def row_plan(spec: dict, table: str = "") -> dict[str, tuple[str, str | None]]:
    """{study entry: (row label, published row or None)} for the rows of `table`, in the study file's order."""
    return {e: (row_label(spec, e), published_row(spec, e)) for e in table_entries(spec, table)}


def build_table(name: str, found: dict, targets: dict, benchmarks: list[str], plan: dict,
                tuned: dict | None = None, measures: dict | None = None) -> Table:
    """Table `name` with the rows of `plan`; `tuned`: {entry: why} of the tuned entries; `measures`: {entry: its
    resolved configuration} for the footnotes on AFI and FA."""
    metrics, tuned = TABLES[name], tuned or {}
    columns = [f"{BENCHMARKS[b]} {m.upper()}" for b in benchmarks for m in metrics]
    rows = {}
    for entry, (label, pub_row) in plan.items():
        cells = {}
        no_published = "" if pub_row in targets else MISSING  # an entry without any published row
        for b in benchmarks:
            for m in metrics:
                published = targets.get(pub_row, {})
                pub = (published.get(f"{b}_{m}_mean"), published.get(f"{b}_{m}_std"))
                has_pub = pub[0] is not None and not math.isnan(pub[0])
                cells[f"{BENCHMARKS[b]} {m.upper()}"] = Cell(
                    metric_values(found.get((entry, b), []), m), pub if has_pub else None, no_published=no_published,
                    expected_n=PUBLISHED_SEEDS.get(b), tuned=bool(tuned.get(entry)))
        rows[label] = cells
    notes = ["mean ± sample std over the seeds that finished" + ("; published values from the FG-AdaHAT paper; "
             "✓ = within published mean ± 2 std (± 1.5 points where the published std < 0.75)" if targets else "")]
    title = {"table1": "Table 1: average accuracy (AA) and forgetting ratio (FR), %",
             "table2": "Table 2: backward transfer (BWT) and forward transfer (FWT), %"}[name]
    table = Table(title, columns, rows, notes)
    table.notes += tuned_note(table, {plan[e][0]: why for e, why in tuned.items() if e in plan})
    table.notes += count_note(table, "the paper's " + ", ".join(f"{PUBLISHED_SEEDS[b]} on {BENCHMARKS[b]}"
                                                                for b in benchmarks if b in PUBLISHED_SEEDS))
    table.notes += measure_notes(table, plan, measures or {})
    if "fr" in metrics:
        table.notes.append(FR_NOTE)
    table.notes += commits_note(run for (entry, b), runs in sorted(found.items(), key=lambda kv: kv[0])
                                if entry in plan and b in benchmarks for run in runs)
    return table


def measure_notes(table: Table, plan: dict, configs: dict) -> list[str]:
    """Footnotes on the AFI rows computed as ICU and on FA rows without runs."""
    notes = []
    labels = {cfg.get("importance"): plan[e][0] for e, cfg in configs.items() if e in plan}
    for entry, cfg in configs.items():
        if entry not in plan:
            continue
        label = plan[entry][0]
        if cfg.get("importance") == "afi" and cfg.get("afi_semantics") == "paper":
            notes.append(AFI_NOTE.format(afi=label, icu=labels.get("icu", "FG-AdaHAT (ICU)")))
        if cfg.get("importance") == "fa" and not any(cell.values for cell in table.rows[label].values()):
            notes.append(FA_NOTE.format(fa=label))
    return notes


def restriction_notes(spec: dict, plan: dict, benchmarks: list[str]) -> list[str]:
    """Footnotes on the entries that run on some of the table's benchmarks only (FA: Permuted MNIST)."""
    notes = []
    for entry, (label, _) in plan.items():
        only = (spec["methods"].get(entry) or {}).get("benchmarks")
        if only and set(benchmarks) - set(only):
            notes.append(ONLY_NOTE.format(label=label, benchmarks=", ".join(BENCHMARKS.get(b, b) for b in only)))
    return notes


def entry_configs(study: str, spec: dict, entries, overrides: dict) -> dict:
    """{entry: its resolved configuration} (first seed, first benchmark it runs on) of the FG-AdaHAT entries."""
    configs = {}
    for entry in entries:
        benchmark = next(b for b in spec["benchmarks"] if entry in study_entries(spec, b))
        cfg = resolve_entry(HERE, study, entry, benchmark, spec["seeds"][0], METHODS, overrides)
        if "importance" in cfg:
            configs[entry] = cfg
    return configs


@exit_on_record_error
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", default="pmnist,scifar100,combined20")
    parser.add_argument("--seeds", default="", help="e.g. 1-3 (default: the study's)")
    parser.add_argument("--study", default="main")
    parser.add_argument("--out", default="results/fg_adahat")
    parser.add_argument("--tables", default="both", choices=("table1", "table2", "both"))
    parser.add_argument("--methods", default="", help="comma-separated study entries to show (default: all)")
    parser.add_argument("--no-published", action="store_true",
                        help="leave out the published values (for runs not made with the published settings)")
    parser.add_argument("--smoke-test", action="store_true",
                        help="tables of the quick mode: no published values, a header that says what they show")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    benchmarks = [b for b in args.benchmarks.split(",") if b]
    overrides = config_lib.parse_cli(args.overrides)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    study_benchmarks = read_study(HERE, args.study)["benchmarks"]
    available = [b for b in benchmarks if b in config_lib.available_benchmarks() and b in study_benchmarks]
    for b in set(benchmarks) - set(available):
        print(f"{b}: not a benchmark of study {args.study!r} here; its cells are shown as missing")
    found = collect(HERE, args.study, METHODS, seeds, available, overrides) if available else {}
    for (entry, b), runs in sorted(found.items()):
        print(f"{b:10s} {entry:12s} {len(runs)} finished run(s)")
    targets = {}
    if not (args.no_published or args.smoke_test):
        targets = read_targets(HERE / "targets" / "table1.csv")
        for method, values in read_targets(HERE / "targets" / "table2.csv").items():
            targets.setdefault(method, {}).update(values)
    command = "python -m fg_adahat.make_tables " + " ".join(argv if argv is not None else sys.argv[1:])
    header = f"Generated by `{command.strip()}` at commit {git_commit()}.\n\n" + (SMOKE_TEST if args.smoke_test else "")
    spec = read_study(HERE, args.study)
    for name in TABLES if args.tables == "both" else [args.tables]:
        plan = row_plan(spec, name)
        if args.methods:
            plan = {entry: row for entry, row in plan.items() if entry in args.methods.split(",")}
        tuned = {entry: tuned_reason(spec, entry) for entry in plan if tuned_reason(spec, entry)}
        table = build_table(name, found, targets, benchmarks, plan, tuned,
                            entry_configs(args.study, spec, plan, overrides))
        table.notes[1:1] = restriction_notes(spec, plan, benchmarks)
        paths = write_tables([table], Path(args.out) / name, header)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
