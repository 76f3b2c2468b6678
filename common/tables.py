"""Tables from run records: collect a study's finished runs, aggregate over seeds, write LaTeX, Markdown and CSV.

Cells are mean ± sample std (ddof 1) over the seeds that finished, x100; `—` where no run finished. Where a
published value exists it is shown beside ours with a match mark: a cell matches when our mean lies within the
published mean ± 2 published std, or ± 1.5 points where the published std is below 0.75. A row without any
published counterpart shows `—` in the published columns (`Cell.no_published`). A cell over fewer seeds than the
paper's (or the study's) shows `(n=k)`, one over a single seed always. A cell of a tuned study entry (a setting
chosen to match the published numbers, `tuned` in the study file) shows `†` where a match would show `✓` (beside
our value where nothing is judged). The notes under a table are its footnotes; the helpers at the end of this
module write the shared ones (`†`, `(n=k)`, the commits that trained the runs).
"""

from __future__ import annotations

import csv
import functools
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from typing import Iterable
from pathlib import Path

from common import config as config_lib
from common import records
from common.metrics import all_metrics
from common.record_store import find_record
from common.studies import apply_study, finished_references, read_study, study_entries

MISSING = "—"
TUNED = "†"


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # one per finished seed, already in table units
    published: tuple[float, float | None] | None = None  # (mean, std); std None: shown without a match mark
    fmt: str = ".2f"                                    # number format of this cell
    no_published: str = ""                              # shown as the published value when there is none
    expected_n: int | None = None                       # the paper's (or study's) seeds; fewer show `(n=k)`
    tuned: bool = False                                 # a setting chosen to match the published numbers

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

    @property
    def judged(self) -> bool:
        """Whether the published cell carries the mark (a published value with a spread)."""
        return self.published is not None and not math.isnan(self.published[0]) and self.published[1] is not None

    @property
    def count_text(self) -> str:
        """`(n=k)` for a single seed or fewer seeds than expected, else ""."""
        n = len(self.values)
        return f"(n={n})" if n == 1 or (n and self.expected_n and n < self.expected_n) else ""

    @property
    def mark(self) -> str:
        """✓ / ✗ against the published value; † instead of ✓ for a tuned setting; "" when not judged."""
        if self.match is None:
            return ""
        return (TUNED if self.tuned else "✓") if self.match else "✗"

    def text(self) -> str:
        if not self.values:
            return MISSING
        parts = [format(self.mean, self.fmt)]
        if len(self.values) > 1:
            parts.append(f"± {format(self.std, self.fmt)}")
        if self.count_text:
            parts.append(self.count_text)
        if self.tuned and not self.judged:  # nothing published to mark: the mark goes beside our value
            parts.append(TUNED)
        return " ".join(parts)

    def published_text(self) -> str:
        if self.published is None:
            return self.no_published
        if math.isnan(self.published[0]):
            return ""
        if self.published[1] is None:  # a published value without a spread: shown, not judged
            return format(self.published[0], self.fmt)
        return f"{format(self.published[0], self.fmt)} ± {format(self.published[1], self.fmt)} {self.mark}".rstrip()


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


LATEX = {"_": r"\_", "%": r"\%", "±": r"$\pm$", "—": "--", "−": "-", "✓": r"\checkmark", "✗": r"$\times$",
         TUNED: r"$\dagger$", "α": r"$\alpha$", "×": r"$\times$", "&": r"\&", "#": r"\#"}


def latex_escape(text: str) -> str:
    text = "".join(LATEX.get(ch, ch) for ch in text)
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", text)


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
                parts.append(latex_escape(cell.published_text()))
        lines.append(" & ".join(parts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\footnotesize " + latex_escape(note) for note in table.notes]
    lines += [r"\end{table}"]
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
                         "match": "" if cell.match is None else int(cell.match), "tuned": int(cell.tuned)})
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


# ----- shared footnotes ------------------------------------------------------------------------------------------
def cells_of(table: Table) -> Iterable[Cell]:
    return (cell for row in table.rows.values() for cell in row.values())


def tuned_note(table: Table, reasons: dict[str, str]) -> list[str]:
    """The footnote of the † marks: {row label: why the setting was chosen} for the tuned rows of `table`."""
    shown = {label: why for label, why in reasons.items() if why and label in table.rows}
    if not shown:
        return []
    whys = "; ".join(f"{label}: {why.strip().rstrip('.')}" for label, why in shown.items())
    return [f"{TUNED} = a setting chosen to match the published numbers, not taken from the paper's configuration; "
            f"where it is within the tolerance it shows {TUNED} instead of ✓, since agreement was the criterion it "
            f"was chosen by ({whys})"]


def count_note(table: Table, expected: str) -> list[str]:
    """The footnote of the `(n=k)` marks, when a cell of `table` shows one; `expected` says what k falls short of."""
    if not any(cell.count_text for cell in cells_of(table)):
        return []
    return [f"(n=k): mean over the k seeds that finished, fewer than {expected}; with one seed no std is shown"]


def short_commit(commit: str | None) -> str:
    if not commit:
        return "not recorded"
    dirty = commit.endswith("+dirty")
    return commit.removesuffix("+dirty")[:7] + ("+dirty" if dirty else "")


def commits_note(runs: Iterable[dict]) -> list[str]:
    """Which commits trained the runs of a table (`environment.git_commit` of their metrics.json), distinct, in
    order; `+dirty`: the run was made with uncommitted edits."""
    commits = sorted({short_commit((run.get("environment") or {}).get("git_commit")) for run in runs})
    if not commits:
        return []
    return [f"runs trained at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} (from each record's "
            "metrics.json; +dirty: with uncommitted edits)"]
