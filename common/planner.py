"""Plan runs: which jobs a study needs, where their records go, what state they are in, what they depend on.

The one place that decides a run's references (`reference_configs`): the single-run command (`common.runner.run`),
the sweep (`scripts/sweep.py`), its dry run and every launcher (`common.launchers`) go through it.

    plan(package, study, benchmarks, seeds, entries, overrides) -> [Job, ...]   references first, then main runs

A job is one process, `python -m <package>.run key=value ...`; it writes one record (a reference or a main run)
or, for the unlearning references of a continual-unlearning run, two (`references=only`).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import config as config_lib
from common import records

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = config_lib.REFERENCES
UNLEARNING_REFERENCES = ("retrain", "original")
STATES = ("finished", "to run", "running", "failed")


def is_unlearning(cfg: dict) -> bool:
    return bool(str(cfg.get("unlearning_requests") or "").strip())


def unlearning_reference_config(cfg: dict, kind: str, methods: dict) -> dict:
    """The retrain or original reference of an unlearning run: the same method, settings and seed, run without
    unlearning (`cul_reference`). Settings that only act when unlearning (the method's `unlearning_keys`, the ages)
    are put back to their defaults, so variants that differ only in how they unlearn share their references. The
    folder name `ref-<kind>-<method>-<digest>` carries a digest of the identity keys (`common.config`) that differ
    from the method's and benchmark's defaults, so a key added later leaves existing names alone."""
    method_cls = methods[cfg["method"]]
    from common.benchmark_config import benchmark_args

    defaults = config_lib.resolve({"method": cfg["method"], "benchmark": cfg["benchmark"], **benchmark_args(cfg)},
                                  methods)
    ref = dict(cfg, cul_reference=kind, run_name="")
    for key in (*getattr(method_cls, "unlearning_keys", ()), "unlearnable_age", "unlearnable_ages"):
        ref[key] = defaults[key]
    ref["run_name"] = f"ref-{kind}-{cfg['method']}-{settings_digest(ref, defaults)}"
    return ref


def settings_digest(cfg: dict, defaults: dict) -> str:
    """8 hex digits naming the identity keys of `cfg` that differ from `defaults` (seed excluded: the folder has it)."""
    changed = {k: v for k, v in cfg.items()
               if config_lib.is_distinct(k) and k != "seed" and (k not in defaults or defaults[k] != v)}
    return hashlib.sha1(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]


def reference_configs(cfg: dict, methods: dict) -> dict[str, dict]:
    """{name: resolved config} of the reference runs that run `cfg` needs before it can be trained (empty: none).

    Ordinary runs need joint / independent / random (FR, FWT) unless `references=none` or they are references
    themselves; unlearning runs need their retrain and original references (DD, AG)."""
    if cfg.get("references") == "none" or cfg.get("cul_reference"):
        return {}
    if is_unlearning(cfg):
        return {kind: unlearning_reference_config(cfg, kind, methods) for kind in UNLEARNING_REFERENCES}
    if cfg.get("references") == "only":
        raise config_lib.ConfigError("references=only is for unlearning runs (it trains their two references)")
    if cfg["method"] in REFERENCES:
        return {}
    return {name: config_lib.resolve(config_lib.reference_config(cfg, name), methods) for name in REFERENCES}


@dataclass(eq=False)
class Job:
    """One process of a plan. `folders` are the records it writes; `needs` the jobs whose records it reads."""

    label: str          # e.g. main/pmnist/hat/seed1
    kind: str           # main | reference | unlearning references
    name: str           # row of the summary: the study entry, `reference <method>` or `unlearning references`
    package: str        # whose `run` command runs it
    cli: dict           # its key=value arguments
    cfg: dict           # resolved configuration (of the first record)
    folders: tuple[Path, ...]
    needs: list["Job"] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.folders[-1]

    @property
    def benchmark(self) -> str:
        return f"{self.cfg['benchmark']}-{self.cfg['num_tasks']}"

    @property
    def done(self) -> bool:
        return all(records.is_done(f) for f in self.folders)

    @property
    def state(self) -> str:
        """finished (every record done) | running (a live lock) | failed (a record begun, not done) | to run."""
        from common.runner import RunLock

        if self.done:
            return "finished"
        if any(RunLock(f).held() for f in self.folders):
            return "running"
        if any(f.exists() and not records.is_done(f) for f in self.folders):
            return "failed"
        return "to run"

    def command(self, threads: int = 0, python: str = sys.executable) -> list[str]:
        args = [f"{k}={v}" for k, v in self.cli.items()] + ([f"threads={threads}"] if threads else [])
        return [python, "-m", f"{self.package}.run", *args]

    @property
    def out_file(self) -> Path:
        """Where a launcher sends the job's output: `<run folder>/../seed<k>.out`."""
        return self.folder.parent / f"{self.folder.name}.out"

    def seconds(self) -> float | None:
        """Wall time of the finished job from its records' metrics.json (None if unknown)."""
        total = 0.0
        for folder in self.folders:
            try:
                total += float(json.loads((folder / "metrics.json").read_text())["seconds"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return total


def cli_text(value) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def reference_jobs(package: str, cli: dict, cfg: dict, methods: dict) -> list[Job]:
    """The jobs that train the references `cfg` needs (see `reference_configs`)."""
    refs = reference_configs(cfg, methods)
    bench = f"{cfg['benchmark']}-{cfg['num_tasks']}"
    if is_unlearning(cfg) and refs:  # one job trains both, with the main run's own command
        folders = tuple(records.run_folder(refs[k]) for k in UNLEARNING_REFERENCES)
        label = f"unlearning references {bench} {config_lib.run_name(cfg)} seed{cfg['seed']}"
        return [Job(label, "unlearning references", "unlearning references", package,
                    {**cli, "references": "only"}, refs["original"], folders)]
    jobs = []
    for name, ref in refs.items():
        ref_cli = {k: cli_text(v) for k, v in config_lib.reference_config(cfg, name).items()}
        ref_cli["package"] = ref["package"]
        folder = records.run_folder(ref)
        label = f"reference {name} {bench} seed{cfg['seed']} ({folder.parent.parent.name})"
        jobs.append(Job(label, "reference", f"reference {name}", package, ref_cli, ref, (folder,)))
    return jobs


def package_methods(package: str) -> dict:
    """The method registry of a paper package; ConfigError listing the packages if there is none."""
    valid = packages()
    if package not in valid:
        raise config_lib.ConfigError(f"unknown package {package!r}; packages: {', '.join(valid)}")
    import importlib

    return importlib.import_module(package).METHODS


def packages() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/run.py") if (p.parent / "__init__.py").exists())


def studies(package: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / package / "configs" / "studies").glob("*.yaml"))


def plan(package: str, study: str, benchmarks=None, seeds=None, entries=None, overrides: dict | None = None
         ) -> list[Job]:
    """Every job of `study` of `package` (default benchmarks, seeds and entries: the study's; `seeds` may also map
    benchmarks to their seeds): the unique reference jobs first, then the main runs, each main job `needs` its
    reference jobs. Bad names raise ConfigError."""
    from common.studies import apply_study, read_study, study_entries

    methods = package_methods(package)
    if study not in studies(package):
        raise config_lib.ConfigError(f"unknown study {study!r} of {package}; studies: {', '.join(studies(package))}")
    spec = read_study(ROOT / package, study)
    benchmarks = list(benchmarks or spec["benchmarks"])
    for benchmark in benchmarks:
        if benchmark not in spec["benchmarks"]:
            raise config_lib.ConfigError(f"benchmark {benchmark!r} is not part of study {package}/{study} "
                                         f"(its benchmarks: {', '.join(spec['benchmarks'])})")
    unknown = [e for e in entries or [] if e not in spec["methods"]]
    if unknown:
        raise config_lib.ConfigError(f"method {unknown[0]!r} is not part of study {package}/{study} "
                                     f"(its methods: {', '.join(spec['methods'])})")
    by_folders, mains = {}, []
    for benchmark in benchmarks:
        for entry in [e for e in entries or spec["methods"] if e in study_entries(spec, benchmark)]:
            for seed in (seeds.get(benchmark) if isinstance(seeds, dict) else seeds) or spec["seeds"]:
                cli = {"package": package, **(overrides or {}), "study": study, "method": entry,
                       "benchmark": benchmark, "seed": str(seed)}
                resolved_cli, layer = apply_study(ROOT / package, cli)
                cfg = config_lib.resolve(resolved_cli, methods, layer)
                needs = []
                for ref in reference_jobs(package, cli, cfg, methods):
                    needs.append(by_folders.setdefault(ref.folders, ref))
                label = f"{study}/{benchmark}/{entry}/seed{seed}"
                mains.append(Job(label, "main", entry, package, cli, cfg, (records.run_folder(cfg),), needs))
    if not mains:
        raise config_lib.ConfigError(f"no run of study {package}/{study} matches: methods "
                                     f"{', '.join(entries or [])} on {', '.join(benchmarks)} (which entries run on "
                                     "which benchmark is in the study file)")
    return list(by_folders.values()) + mains


# ----- summary and time estimate -------------------------------------------------------------------------------------
def fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary(jobs: list[Job], parallel: int = 1) -> str:
    """A table per benchmark and method (finished, to run, running, failed, estimated time of what is left) and a
    total. Estimates are the mean `seconds` of the finished jobs of the same method and benchmark."""
    groups: dict[tuple[str, str], list[tuple[Job, str]]] = {}
    for job in jobs:
        groups.setdefault((job.benchmark, job.name), []).append((job, job.state))
    header = (f"{'benchmark':14s} {'method':26s} {'finished':>8s} {'to run':>7s} {'running':>8s} {'failed':>7s}"
              "  estimate")
    lines, total, unknown = [header, "-" * len(header)], 0.0, 0
    for (bench, name), items in groups.items():
        counts = {s: sum(1 for _, state in items if state == s) for s in STATES}
        left = counts["to run"] + counts["failed"]
        times = [t for job, state in items if state == "finished" for t in [job.seconds()] if t is not None]
        if not left:
            estimate = "-"
        elif times:
            estimate = fmt_seconds(statistics.fmean(times) * left)
            total += statistics.fmean(times) * left
        else:
            estimate, unknown = "no estimate", unknown + left
        lines.append(f"{bench:14s} {name:26s} {counts['finished']:8d} {counts['to run']:7d} {counts['running']:8d} "
                     f"{counts['failed']:7d}  {estimate}")
    states = [state for items in groups.values() for _, state in items]
    counts = {s: states.count(s) for s in STATES}
    lines.append(f"{len(jobs)} jobs: " + ", ".join(f"{counts[s]} {s}" for s in STATES))
    if unknown == counts["to run"] + counts["failed"] > 0:
        lines.append("estimated time: no estimate (no finished run of the same method and benchmark yet)")
    elif counts["to run"] + counts["failed"]:
        text = f"estimated time: {fmt_seconds(total)} of run time"
        if parallel > 1:
            text += f", about {fmt_seconds(total / parallel)} with {parallel} at once"
        if unknown:
            text += (f"; no estimate for {unknown} jobs (no finished run of the same method and benchmark; "
                     "their time is not included)")
        lines.append(text)
    return "\n".join(lines)
