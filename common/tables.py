"""Tables from run records: collect a study's finished runs, aggregate over seeds, write LaTeX, Markdown and CSV.

Cells are mean ± sample std (ddof 1) over the seeds that finished, x100; `—` where no run finished. Where a
published value exists it is shown beside ours with a match mark: a cell matches when our mean lies within the
published mean ± 2 published std, or ± 1.5 points where the published std is below 0.75. A row without any
published counterpart shows `—` in the published columns (`Cell.no_published`).
"""

from __future__ import annotations

import csv
import functools
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import config as config_lib
from common import records
from common.metrics import all_metrics
from common.record_store import find_record
from common.studies import apply_study, finished_references, read_study, study_entries

MISSING = "—"


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per finished seed, already in table units
    published: tuple[float, float | None] | None = None  # (mean, std); std None: shown without a match mark
    fmt: str = ".2f"                                    # number format of this cell
    no_published: str = ""                              # shown as the published value when there is none

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    @property
    def match(self) -> bool | None:
        if not self.values or self.published is None or math.isnan(self.published[0]) or self.published[1] is None:
            return None
        pub_mean, pub_std = self.published
        tolerance = 1.5 if pub_std < 0.75 else 2 * pub_std
        return abs(self.mean - pub_mean) <= tolerance

    def text(self) -> str:
        if not self.values:
            return MISSING
        spread = f" ± {format(self.std, self.fmt)}" if len(self.values) > 1 else " (1 run)"
        return f"{format(self.mean, self.fmt)}{spread}"

    def published_text(self) -> str:
        if self.published is None:
            return self.no_published
        if math.isnan(self.published[0]):
            return ""
        if self.published[1] is None:  # a published value without a spread: shown, not judged
            return format(self.published[0], self.fmt)
        mark = {True: "✓", False: "✗", None: ""}[self.match]
        return f"{format(self.published[0], self.fmt)} ± {format(self.published[1], self.fmt)} {mark}".rstrip()


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]]  # row label -> column -> cell
    notes: list[str] = field(default_factory=list)

    @property
    def has_published(self) -> bool:
        return any(c.published is not None for row in self.rows.values() for c in row.values())


def exit_on_record_error(main):
    """For a table script's `main`: a corrupt record or a bad setting prints one line (the folder or key and what to
    do) and exits with 2 instead of a traceback."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except (records.RecordError, config_lib.ConfigError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return wrapped


# ----- collecting --------------------------------------------------------------------------------------------------
def resolve_entry(package_dir: Path, study: str, entry: str, benchmark: str, seed: int, methods: dict,
                  overrides: dict | None = None) -> dict:
    """The configuration of one (study entry, benchmark, seed), resolved exactly as `run.py` would."""
    cli = {"package": package_dir.name, "study": study, "method": entry, "benchmark": benchmark, "seed": seed,
           **(overrides or {})}
    cli, layer = apply_study(package_dir, cli)
    return config_lib.resolve(cli, methods, layer)


def find_run(package_dir: Path, study: str, entry: str, benchmark: str, seed: int, methods: dict,
             overrides: dict | None = None) -> Path:
    """The record folder of one (study entry, benchmark, seed): under `out_dir`, else the store's copy
    (`common.record_store.find_record`)."""
    return find_record(resolve_entry(package_dir, study, entry, benchmark, seed, methods, overrides))


def collect(package_dir: Path, study: str, methods: dict, seeds: list[int] | None = None,
            benchmarks: list[str] | None = None, overrides: dict | None = None) -> dict:
    """{(entry, benchmark): [record, ...]} of every finished run of the study (under `out_dir`, else in the committed
    store: `common.record_store`); unfinished ones are skipped, and a
    corrupt record raises RecordError (one line naming the folder and what to do; the table scripts print it)."""
    spec = read_study(package_dir, study)
    found = {}
    for benchmark in benchmarks or spec["benchmarks"]:
        for entry in study_entries(spec, benchmark):
            runs = []
            for seed in seeds or spec["seeds"]:
                cfg = resolve_entry(package_dir, study, entry, benchmark, seed, methods, overrides)
                folder = find_record(cfg)
                if not records.is_done(folder):
                    continue
                try:
                    records.check_same_config(folder, cfg)
                except records.CorruptRecordError:
                    raise
                except records.RecordError as err:
                    print(f"left out: {err}")  # a run made with other settings than the study's current ones
                    continue
                runs.append(with_reference_metrics(records.read_record(folder), methods))
            found[(entry, benchmark)] = runs
    return found


def with_reference_metrics(record: dict, methods: dict) -> dict:
    """Recompute the reference-based metrics (FWT, FR) from the cached reference runs when they exist, so every
    table uses the current definitions (and runs made with references=none get them too)."""
    refs = finished_references(record["config"], methods) if record["config"]["method"] in methods else None
    if refs is not None:
        fresh = all_metrics(record["acc"], **refs)
        record["metrics"] = {**record["metrics"], **{k: fresh[k] for k in ("fwt", "fr", "fr_1_over_n",
                                                                           "fr_independent")}}
    return record


def metric_values(runs: list[dict], metric: str, scale: float = 100.0) -> list[float]:
    """One value per run; runs whose metric is missing (None / NaN) are left out."""
    out = []
    for run in runs:
        value = run["metrics"].get(metric)
        if value is not None and not math.isnan(value):
            out.append(scale * value)
    return out


def read_targets(path: Path) -> dict[str, dict[str, float]]:
    """A published-numbers CSV (`method, <bench>_<metric>_mean, <bench>_<metric>_std, ...`) as nested dicts."""
    with open(path) as f:
        return {row["method"]: {k: float(v) if v else math.nan for k, v in row.items() if k != "method"}
                for row in csv.DictReader(f)}


# ----- writing -----------------------------------------------------------------------------------------------------
def to_markdown(table: Table) -> str:
    header = ["method"] + [c for col in table.columns for c in ([col, "published"] if table.has_published else [col])]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cells in table.rows.items():
        parts = [label]
        for col in table.columns:
            cell = cells.get(col, Cell())
            parts.append(cell.text())
            if table.has_published:
                parts.append(cell.published_text())
        lines.append("| " + " | ".join(parts) + " |")
    lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$").replace("—", "--")


def to_latex(table: Table) -> str:
    pub = table.has_published
    spec = "l" + "r" * (len(table.columns) * (2 if pub else 1))
    header = ["Method"] + [c for col in table.columns for c in ([col, "pub."] if pub else [col])]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(table.title)} (mean $\pm$ std over seeds)}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(h) for h in header) + r" \\",
             r"\midrule"]
    for label, cells in table.rows.items():
        parts = [latex_escape(label)]
        for col in table.columns:
            cell = cells.get(col, Cell())
            parts.append(latex_escape(cell.text()))
            if pub:
                parts.append(latex_escape(cell.published_text().replace("✓", r"\checkmark").replace("✗", r"$\times$")))
        lines.append(" & ".join(parts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv_rows(table: Table) -> list[dict]:
    rows = []
    for label, cells in table.rows.items():
        for col in table.columns:
            cell = cells.get(col, Cell())
            rows.append({"table": table.title, "method": label, "column": col, "n": len(cell.values),
                         "mean": "" if not cell.values else f"{cell.mean:.4f}",
                         "std": "" if len(cell.values) < 2 else f"{cell.std:.4f}",
                         "published_mean": "" if cell.published is None else cell.published[0],
                         "published_std": "" if cell.published is None else cell.published[1],
                         "match": "" if cell.match is None else int(cell.match)})
    return rows


def write_tables(tables: list[Table], out_stem: Path, header: str = "") -> list[Path]:
    """Write `<stem>.md`, `<stem>.tex` and `<stem>.csv` holding every table; returns the paths."""
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    md = out_stem.with_suffix(".md")
    md.write_text(header + "\n".join(to_markdown(t) for t in tables))
    tex = out_stem.with_suffix(".tex")
    tex.write_text("% " + header.replace("\n", "\n% ") + "\n" + "\n".join(to_latex(t) for t in tables))
    rows = [r for t in tables for r in to_csv_rows(t)]
    path_csv = out_stem.with_suffix(".csv")
    with open(path_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["table"])
        writer.writeheader()
        writer.writerows(rows)
    return [md, tex, path_csv]
