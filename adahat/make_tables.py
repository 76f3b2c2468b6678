"""The AdaHAT study's tables from run records (the figures: `python -m adahat.make_figures`).

    python -m adahat.make_tables [--seeds 1-5] [--out results/adahat] [--parts main,long,ablation,alpha,capacity]
                                 [key=value ...]

* main: AA, FR, BWT, FWT of every method on Permuted MNIST and Split CIFAR-100 (20 tasks);
* long: AA after every fifth task on Permuted MNIST with 50 tasks (the full curve goes into the CSV);
* ablation: AdaHAT, AdaHAT-no-sum, AdaHAT-no-reg on Permuted MNIST with 50 tasks;
* alpha: AA, FR, BWT, FWT of every α of the α study (Permuted MNIST, 20 tasks);
* capacity: network capacity of the HAT variants and AdaHAT on Permuted MNIST with 50 tasks at the end of tasks
  1, 2, 5, 10, 20, 50, beside the published curve data.
Rows are each study's entries in the order of its file, labelled by its `labels`; the capacity rows are the
`long_sequence` study's `table_order: capacity`. Cells are mean ± sample std over the finished seeds; `—` marks cells
without runs (and published values an entry does not have).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from adahat import METHODS
from common import config as config_lib
from common.records import git_commit, is_done
from common.studies import parse_seeds, published_row, read_study, row_label, table_entries, tuned_reason
from common.tables import (MISSING, Cell, Table, collect, commits_note, count_note, exit_on_record_error, find_run,
                           metric_values, read_targets, tuned_note, write_tables)

HERE = Path(__file__).parent
METRICS = ("aa", "fr", "bwt", "fwt")
CAPACITY_TASKS = (1, 2, 5, 10, 20, 50)


def metric_table(title: str, found: dict, spec: dict, benchmarks) -> Table:
    columns = [f"{b} {m.upper()}" for b in benchmarks for m in METRICS]
    entries = table_entries(spec, "main")
    rows = {row_label(spec, e): {f"{b} {m.upper()}": Cell(metric_values(found.get((e, b), []), m),
                                                          expected_n=len(spec["seeds"]),
                                                          tuned=bool(tuned_reason(spec, e)))
                                 for b in benchmarks for m in METRICS} for e in entries}
    return with_notes(Table(title, columns, rows, ["mean ± sample std over seeds, %"]), spec, entries,
                      [r for e in entries for b in benchmarks for r in found.get((e, b), [])])


def with_notes(table: Table, spec: dict, entries: list[str], runs: list[dict]) -> Table:
    """The shared footnotes: †, `(n=k)` against the study's seeds, the training commits."""
    table.notes += tuned_note(table, {row_label(spec, e): tuned_reason(spec, e) for e in entries})
    table.notes += count_note(table, f"the study's {len(spec['seeds'])}")
    table.notes += commits_note(runs)
    return table


def long_sequence_table(found: dict, spec: dict, every: int = 5) -> tuple[Table, list[dict]]:
    """AA_N after task N (every `every`-th N in the table, every N in the returned curve rows)."""
    curve, rows = [], {}
    for e in table_entries(spec, "long_sequence"):
        runs = found.get((e, "pmnist"), [])
        n_max = max((len(r["acc"]) for r in runs), default=0)
        cells = {}
        for n in range(1, n_max + 1):
            values = [100 * sum(r["acc"][n - 1]) / n for r in runs if len(r["acc"]) >= n]
            cell = Cell(values, expected_n=len(spec["seeds"]), tuned=bool(tuned_reason(spec, e)))
            curve.append({"method": e, "after_task": n, "aa_mean": cell.mean, "aa_std": cell.std, "n": len(values)})
            if n % every == 0:
                cells[f"N={n}"] = cell
        rows[row_label(spec, e)] = cells
    columns = [f"N={n}" for n in range(every, 51, every)]
    entries = table_entries(spec, "long_sequence")
    table = Table("AA after task N, Permuted MNIST 50 tasks (%)", columns, rows)
    return with_notes(table, spec, entries, [r for e in entries for r in found.get((e, "pmnist"), [])]), curve


def end_of_task_capacity(folder: Path) -> dict[int, float]:
    """{task: capacity at its last recorded step} from the run's capacity.csv (rows in step order)."""
    with open(folder / "capacity.csv") as f:
        return {int(r["task"]): float(r["capacity"]) for r in csv.DictReader(f)}


def capacity_outputs(seed: int, out: Path, overrides: dict, header: str = "") -> list[Path]:
    """Capacity at the end of tasks 1, 2, 5, 10, 20, 50 (one seed, as published) beside the published values."""
    spec = read_study(HERE, "long_sequence")
    entries = table_entries(spec, "capacity")
    last = {}
    for entry in entries:
        folder = find_run(HERE, "long_sequence", entry, "pmnist", seed, METHODS, overrides)
        if is_done(folder) and (folder / "capacity.csv").exists():
            last[entry] = end_of_task_capacity(folder)
    if not last:
        print("capacity: no finished long-sequence HAT-family runs")
        return []
    published = read_targets(HERE / "targets" / "capacity.csv")
    columns = [f"t={t}" for t in CAPACITY_TASKS]
    rows = {}
    for entry in entries:
        at_end = last.get(entry, {})
        values = published.get(published_row(spec, entry))
        rows[row_label(spec, entry)] = {
            f"t={t}": Cell([at_end[t]] if t in at_end else [], (values[f"t{t}"], None) if values else None, fmt=".3g",
                           no_published=MISSING) for t in CAPACITY_TASKS}
    table = Table(f"Network capacity at the last step of task t (seed {seed}; published: AdaHAT paper data)",
                  columns, rows, ["capacity = mean gradient adjustment rate over the masked layers' weights and "
                                  "biases (bias entries counted for every unit)"])
    return write_tables([table], out / "capacity", header)


@exit_on_record_error
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="", help="e.g. 1-5 (default: each study's)")
    parser.add_argument("--out", default="results/adahat")
    parser.add_argument("--parts", default="main,long,ablation,alpha,capacity")
    parser.add_argument("--capacity-seed", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    overrides = config_lib.parse_cli(args.overrides)
    parts = set(args.parts.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = f"Generated by `python -m adahat.make_tables {' '.join(argv or sys.argv[1:])}` at commit {git_commit()}.\n\n"
    written = []
    if "main" in parts:
        found = collect(HERE, "main", METHODS, seeds, overrides=overrides)
        table = metric_table("AdaHAT main study, 20 tasks", found, read_study(HERE, "main"), ["pmnist", "scifar100"])
        written += write_tables([table], out / "main", header)
    if "long" in parts:
        found = collect(HERE, "long_sequence", METHODS, seeds, overrides=overrides)
        table, curve = long_sequence_table(found, read_study(HERE, "long_sequence"))
        written += write_tables([table], out / "long_sequence", header)
        with open(out / "long_sequence_curve.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["method", "after_task", "aa_mean", "aa_std", "n"])
            writer.writeheader()
            writer.writerows(curve)
    if "ablation" in parts:
        found = collect(HERE, "ablation", METHODS, seeds, overrides=overrides)
        table = metric_table("AdaHAT ablation, Permuted MNIST 50 tasks", found, read_study(HERE, "ablation"), ["pmnist"])
        written += write_tables([table], out / "ablation", header)
    if "alpha" in parts:
        found = collect(HERE, "alpha", METHODS, seeds, overrides=overrides)
        table = metric_table("AdaHAT α study, Permuted MNIST 20 tasks", found, read_study(HERE, "alpha"), ["pmnist"])
        written += write_tables([table], out / "alpha", header)
    if "capacity" in parts:
        written += capacity_outputs(args.capacity_seed, out, overrides, header)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
