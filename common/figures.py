"""The papers' figure commands: which runs a figure reads (planned by `common.planner`, so the runs a figure needs
are the runs a sweep makes), which of them are missing, and the README listing every figure.

A paper's `make_figures.py` gives `main` its FIGURES, `{name: (description, draw)}`, where `draw(ctx)` returns a
matplotlib Figure and reads its runs through `ctx.runs(study, ...)`. A figure whose runs are partly missing is drawn
with what exists and says on it what is missing; the command ends with the missing runs and the sweep commands that
make them, and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import config as config_lib
from common import planner, records
from common.plots import note, plt, save
from common.record_store import find_record
from common.studies import parse_seeds, read_study
from common.tables import short_commit, with_reference_metrics


@dataclass
class Found:
    """The runs of one study a figure reads: finished records and a resolved configuration per (entry, benchmark)."""
    records: dict = field(default_factory=dict)   # (entry, benchmark) -> [record, ...]
    configs: dict = field(default_factory=dict)   # (entry, benchmark) -> resolved config of its first seed
    missing: list = field(default_factory=list)   # planner jobs without a finished record

    def get(self, entry: str, benchmark: str) -> list[dict]:
        return self.records.get((entry, benchmark), [])


@dataclass
class Context:
    package: str
    seeds: list[int] | None = None
    benchmarks: list[str] | None = None
    overrides: dict = field(default_factory=dict)
    figure: str = ""
    missing: dict = field(default_factory=dict)   # figure -> [Job]
    needed: dict = field(default_factory=dict)    # figure -> number of runs
    commits: dict = field(default_factory=dict)   # figure -> {commit}

    def runs(self, study: str, benchmarks=None, entries=None, seeds=None, overrides=None) -> Found:
        """Every run `study` plans for these benchmarks / entries / seeds (default: the command's, else the study's)
        and the finished records among them (under out_dir, else in the record store)."""
        methods = planner.package_methods(self.package)
        jobs = planner.plan(self.package, study, benchmarks or self.benchmarks, seeds or self.seeds, entries,
                            {**self.overrides, **(overrides or {})})
        found = Found()
        for job in [j for j in jobs if j.kind == "main"]:
            key = (job.name, job.cli["benchmark"])
            found.configs.setdefault(key, job.cfg)
            folder = find_record(job.cfg)
            try:
                records.check_same_config(folder, job.cfg) if records.is_done(folder) else None
            except records.CorruptRecordError:
                raise
            except records.RecordError as err:
                print(f"left out: {err}")
                folder = None
            if folder is None or not records.is_done(folder):
                found.missing.append(job)
                continue
            record = with_reference_metrics(records.read_record(folder), methods)
            found.records.setdefault(key, []).append(record)
            self.commits.setdefault(self.figure, set()).add(record.get("environment", {}).get("git_commit", "?"))
        self.missing.setdefault(self.figure, []).extend(found.missing)
        self.needed[self.figure] = self.needed.get(self.figure, 0) + sum(1 for j in jobs if j.kind == "main")
        return found

    def missing_text(self) -> str:
        missing, needed = len(self.missing.get(self.figure, [])), self.needed.get(self.figure, 0)
        if not missing:
            return ""
        names = sorted({job.name for job in self.missing[self.figure]})
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        return f"missing {missing} of {needed} runs (of {shown}); the command that makes them: figures/README.md"


def seed_text(seeds) -> str:
    """[1, 2, 3, 5] -> '1-3,5'."""
    seeds, parts = sorted(set(seeds)), []
    for s in seeds:
        if parts and s == parts[-1][1] + 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in parts)


def sweep_commands(jobs) -> list[str]:
    """One `scripts.sweep` command per (package, study, extra settings) that makes every job of `jobs`."""
    groups: dict = {}
    fixed = ("package", "study", "method", "benchmark", "seed")
    for job in jobs:
        extra = tuple(sorted((k, v) for k, v in job.cli.items() if k not in fixed))
        group = groups.setdefault((job.package, job.cfg["study"], extra), [set(), set(), set()])
        group[0].add(job.cli["benchmark"])
        group[1].add(job.name)
        group[2].add(int(job.cli["seed"]))
    lines = []
    for (package, study, extra), (benches, entries, seeds) in groups.items():
        methods = "" if set(entries) == set(read_study(planner.ROOT / package, study)["methods"]) else \
            f" --methods {','.join(sorted(entries))}"
        settings = "".join(f" {k}={v}" for k, v in extra)
        lines.append(f"python -m scripts.sweep --package {package} --study {study} --benchmarks "
                     f"{','.join(sorted(benches))} --seeds {seed_text(seeds)}{methods}{settings}")
    return lines


def write_readme(out: Path, ctx: Context, figures: dict, command: str) -> Path:
    lines = [f"# Figures ({ctx.package})", "", f"Generated by `{command}` at commit {records.git_commit()} from run "
             "records (`runs/`, else the committed store `results/records/`); nothing is retrained.", ""]
    for name, (description, _) in figures.items():
        missing = ctx.missing.get(name, [])
        commits = ", ".join(sorted({short_commit(c) for c in ctx.commits.get(name, set())})) or \
            "none (no finished run)"
        lines += [f"## {name}", "", description, "", f"- files: `{name}.png`, `{name}.pdf`",
                  f"- runs: {ctx.needed.get(name, 0) - len(missing)} of {ctx.needed.get(name, 0)} finished; "
                  f"trained at commits: {commits}"]
        if missing:
            lines.append("- missing runs are made by:")
            lines += [f"      {c}" for c in sweep_commands(missing)]
        lines.append("")
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def main(package: str, figures: dict, argv=None, default_out: str = "") -> int:
    """The `python -m <package>.make_figures` command."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}.make_figures",
                                     description=f"Figures of {package} from run records: " + ", ".join(figures))
    parser.add_argument("--out", default=default_out or f"results/{package}/figures")
    parser.add_argument("--seeds", default="", help="e.g. 1-3 (default: each study's)")
    parser.add_argument("--benchmarks", default="", help="comma-separated (default: each figure's)")
    parser.add_argument("--figures", default="", help=f"comma-separated, of: {', '.join(figures)} (default: all)")
    parser.add_argument("overrides", nargs="*", help="key=value selecting runs made with those settings")
    args = parser.parse_args(argv)
    chosen = [f for f in args.figures.split(",") if f] or list(figures)
    unknown = [f for f in chosen if f not in figures]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(figures)}")
    ctx = Context(package, parse_seeds(args.seeds) if args.seeds else None,
                  [b for b in args.benchmarks.split(",") if b] or None, config_lib.parse_cli(args.overrides))
    out = Path(args.out)
    try:
        drawn = draw_all(ctx, {name: figures[name] for name in chosen}, out)
    except (records.RecordError, config_lib.ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    command = f"python -m {package}.make_figures " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {write_readme(out, ctx, {n: figures[n] for n in chosen}, command.strip())}")
    report_missing(ctx)
    return 0 if drawn is not None else 2


def draw_all(ctx: Context, figures: dict, out: Path) -> dict:
    drawn = {}
    for name, (_, draw) in figures.items():
        ctx.figure = name
        fig = draw(ctx)
        note(fig, ctx.missing_text())
        for path in save(fig, out / name):
            print(f"wrote {path}")
        plt.close(fig)
        drawn[name] = fig
    return drawn


def report_missing(ctx: Context) -> None:
    jobs = {job.label: job for name in ctx.missing for job in ctx.missing[name]}
    if not jobs:
        print("every run of these figures is finished")
        return
    print(f"missing runs ({len(jobs)}):")
    for label in sorted(jobs):
        print(f"  {ctx.package}/{label}")
    print("make them with:")
    for line in sweep_commands(list(jobs.values())):
        print(f"  {line}")
