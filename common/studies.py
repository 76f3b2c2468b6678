"""Study files and seed ranges: what every paper folder's `run.py`, its `make_tables.py`, `common/tables.py` and the
sweep script read to know which runs a study holds.

A study file is `<package>/configs/studies/<study>.yaml` (layout in `read_study`); `apply_study` turns one of its
entries into a command line and a configuration layer, `study_entries` lists the entries run on a benchmark, and
`finished_references` finds the joint / independent / random reference runs a finished run is measured against
(without training anything). `parse_seeds` reads the seed ranges of the command lines (`1-3`, `1,4`).
"""

from __future__ import annotations

from pathlib import Path

from common import config as config_lib
from common import records
from common.record_store import find_record

STUDY_KEYS = ("description", "benchmarks", "seeds", "settings", "methods", "labels", "published", "tuned",
              "table_order")


def read_study(package_dir: Path, study: str) -> dict:
    """A study file `<package>/configs/studies/<study>.yaml`:

        description: one line
        benchmarks: [pmnist, ...]   # what the study runs (the sweep iterates these)
        seeds: [1, 2, 3]
        settings: {num_tasks: 20}   # applied to every run of the study
        methods:                    # the study's runs by name, each with its own overrides
          finetuning: {weight_decay: 3.5e-4}
          hat: {}
          adahat_alpha2e-6: {method: adahat, alpha: 2.0e-6}   # a named variant of a registered method
          fgadahat_fa: {benchmarks: [pmnist]}                 # an entry run on some benchmarks only

    and, for the tables made from it (`make_tables.py`), optionally:

        labels: {finetuning: Finetuning}          # row label of an entry (default: the entry's name)
        published: {case1_no_linear: null}        # the published row an entry is compared with (default: the
                                                  # method it runs; null: none, its published cells show `—`)
        tuned: {adahat: "why"}                    # an entry whose setting was chosen to match published numbers (not
                                                  # taken from the paper's configs): every table marks its cells with †
        table_order: {capacity: [hat, adahat]}    # a table showing other entries or another order than `methods`

    Every table lists the study's entries in the order of `methods` unless `table_order` names its rows.
    """
    path = config_lib.study_file(package_dir, study)
    data = config_lib.load_yaml(path)
    unknown = set(data) - set(STUDY_KEYS)
    if unknown or not isinstance(data.get("methods"), dict):
        raise config_lib.ConfigError(f"{path}: a study file has the keys {', '.join(STUDY_KEYS)} "
                                     f"(unexpected: {', '.join(sorted(unknown)) or 'none'}; methods must be a mapping)")
    check_table_keys(path, data)
    return data


def check_table_keys(path: Path, data: dict) -> None:
    """`labels`, `published`, `tuned` and `table_order` may only name entries of `methods` (a typo would go
    unnoticed); a `tuned` entry must say why."""
    named = {key: list(data.get(key) or {}) for key in ("labels", "published", "tuned")}
    for table, entries in (data.get("table_order") or {}).items():
        named[f"table_order.{table}"] = list(entries or [])
    for key, entries in named.items():
        strangers = [e for e in entries if e not in data["methods"]]
        if strangers:
            raise config_lib.ConfigError(f"{path}: {key} names {', '.join(map(str, strangers))}, which "
                                         f"{'is' if len(strangers) == 1 else 'are'} not in its methods "
                                         f"({', '.join(data['methods'])})")
    unexplained = [e for e, why in (data.get("tuned") or {}).items() if not isinstance(why, str) or not why.strip()]
    if unexplained:
        raise config_lib.ConfigError(f"{path}: tuned names {', '.join(map(str, unexplained))} without saying why "
                                     f"(tuned: {{entry: \"why the setting was chosen\"}})")
    labels = [row_label(data, e) for e in data["methods"]]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise config_lib.ConfigError(f"{path}: two entries have the same table label {', '.join(twice)}")


def row_label(spec: dict, entry: str) -> str:
    """The label of study entry `entry` in the tables (`labels`, else the entry's name)."""
    return (spec.get("labels") or {}).get(entry, entry)


def published_row(spec: dict, entry: str) -> str | None:
    """The published row study entry `entry` is compared with: `published` if it names one (None: no published
    row), else the registered method the entry runs."""
    published = spec.get("published") or {}
    if entry in published:
        return published[entry]
    return (spec["methods"][entry] or {}).get("method", entry)


def tuned_reason(spec: dict, entry: str) -> str:
    """Why study entry `entry`'s setting was chosen to match published numbers (`tuned`); "" for a sourced one."""
    return (spec.get("tuned") or {}).get(entry, "")


def table_entries(spec: dict, table: str) -> list[str]:
    """The entries shown as rows of table `table`, in order: `table_order` if it names the table, else `methods`."""
    return list((spec.get("table_order") or {}).get(table) or spec["methods"])


def study_entries(spec: dict, benchmark: str) -> list[str]:
    """The study's entries that run on `benchmark`, in the study file's order."""
    return [name for name, entry in spec["methods"].items()
            if benchmark in ((entry or {}).get("benchmarks") or [benchmark])]


def apply_study(package_dir: Path, cli: dict) -> tuple[dict, dict | None]:
    """(command line, study layer) for the study named on the command line (no layer for studies without a file).

    A study's `methods` entries are keyed by run name; an entry may name the registered method it runs
    (`adahat_alpha2e-6: {method: adahat, alpha: 2.0e-6}`), so `method=adahat_alpha2e-6` selects that entry.
    """
    study = cli.get("study")
    if config_lib.study_path(package_dir, study) is None:  # the default study; an unknown name is an error
        return cli, None
    data = read_study(package_dir, study)
    entry_name, benchmark = cli.get("method"), cli.get("benchmark")
    if entry_name not in data["methods"]:
        raise config_lib.ConfigError(f"method {entry_name!r} is not part of study {study!r} "
                                     f"(its methods: {', '.join(data['methods'])})")
    if benchmark is not None and benchmark not in data.get("benchmarks", [benchmark]):
        raise config_lib.ConfigError(f"benchmark {benchmark!r} is not part of study {study!r} "
                                     f"(its benchmarks: {', '.join(data['benchmarks'])})")
    entry = dict(data["methods"][entry_name] or {})
    only = entry.pop("benchmarks", None)
    if benchmark is not None and only is not None and benchmark not in only:
        raise config_lib.ConfigError(f"{entry_name!r} runs only on {', '.join(only)} in study {study!r}")
    cli = {**cli, "method": entry.pop("method", entry_name)}
    if cli["method"] != entry_name:
        cli.setdefault("run_name", entry_name)
    return cli, {**(data.get("settings") or {}), **entry}


def finished_references(cfg: dict, methods: dict) -> dict | None:
    """The joint / independent / random accuracy matrices for the ordinary run `cfg` (made with any `references`
    setting) if all three finished (under `out_dir` or in the store, `common.record_store`), else None; the
    references are the planner's (`common.planner`)."""
    from common import planner  # planner reads studies through this module

    if planner.is_unlearning(cfg):
        return None
    needed = planner.reference_configs({**cfg, "references": "auto"}, methods)
    folders = {name: find_record(ref) for name, ref in needed.items()}
    if not folders or not all(records.is_done(f) for f in folders.values()):
        return None
    return {name: records.read_acc(f) for name, f in folders.items()}


def parse_seeds(text: str) -> list[int]:
    """'1-3' -> [1, 2, 3]; '1,4' -> [1, 4]; '2' -> [2]. A part that is not a number or an increasing range of
    numbers is a ValueError naming it."""
    seeds = []
    for part in text.split(","):
        lo, dash, hi = (piece.strip() for piece in part.partition("-"))
        try:
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise ValueError(f"seeds {text!r}: {part.strip()!r} is not a seed or a range like 1-3") from None
        if last < first:
            raise ValueError(f"seeds {text!r}: the range {part.strip()!r} is empty (it must go upwards, like 1-3)")
        seeds += range(first, last + 1)
    return seeds
