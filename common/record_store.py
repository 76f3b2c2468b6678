"""The committed store of run records, `results/records/`: what regenerates every table and figure without training.

It mirrors the layout of `runs/` (`<package>/<study>/<benchmark>-<tasks>/<entry>/seed<k>` and `references/...`)
but holds only what the tables and figures read: `config.yaml`, `acc.csv`, `metrics.json`, `done`, and the curves
(`train_curve.csv`, `capacity.csv`, ...) thinned to at most `POINTS_PER_TASK` rows per task (the first and last
row of every task kept exactly). Weights, checkpoints, logs and locks stay out.

    python -m common.records export [--out-dir runs] [--to results/records] [--include-default]

`find_record(cfg)` is the one lookup every table and figure goes through: the run folder under `out_dir` if it is
finished, else, for runs of the default `out_dir`, the store's copy. `REPRO_RECORDS` names another store.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

from common import config as config_lib
from common import records

ROOT = Path(__file__).resolve().parent.parent
STORE_ENV = "REPRO_RECORDS"
KEPT = ("config.yaml", "acc.csv", "metrics.json")  # copied as they are; `done` is written last
POINTS_PER_TASK = 32


def store_dir() -> Path:
    """The store's root: `$REPRO_RECORDS` if set, else the repository's `results/records/`."""
    return Path(os.environ.get(STORE_ENV) or ROOT / "results" / "records")


def stored_folder(cfg: dict, store: Path | None = None) -> Path:
    """Where run `cfg` lies in the store: its run folder's path below `out_dir`, below the store's root."""
    return (store or store_dir()) / records.run_folder(cfg).relative_to(Path(cfg["out_dir"]))


def find_record(cfg: dict) -> Path:
    """The folder to read run `cfg` from: its run folder if finished; else, when `cfg` uses the default `out_dir`,
    the store's copy if that is finished; else the (unfinished or absent) run folder."""
    folder = records.run_folder(cfg)
    if records.is_done(folder) or Path(cfg["out_dir"]) != Path(config_lib.ENGINE_KEYS["out_dir"][0]):
        return folder
    stored = stored_folder(cfg)
    return stored if records.is_done(stored) else folder


# ----- export ------------------------------------------------------------------------------------------------------
def thin_rows(rows: list[dict], points: int = POINTS_PER_TASK) -> list[dict]:
    """At most `points` rows per task (per whole curve without a `task` column), evenly spaced, keeping the first and
    the last row of each task."""
    points, groups = max(points, 2), {}
    for row in rows:
        groups.setdefault(row.get("task"), []).append(row)
    kept = []
    for group in groups.values():
        n = len(group)
        picks = range(n) if n <= points else sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
        kept += [group[i] for i in picks]
    return kept


def thinned_csv(path: Path, points: int = POINTS_PER_TASK) -> str:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), reader.fieldnames or []
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(thin_rows(rows, points))
    return out.getvalue()


def compact_files(folder: Path, points: int = POINTS_PER_TASK) -> dict[str, str]:
    """{file name: text} of the compact copy of a finished record (see the module docstring)."""
    files = {name: (folder / name).read_text() for name in KEPT}
    for curve in sorted(p for p in folder.glob("*.csv") if p.name not in KEPT):
        files[curve.name] = thinned_csv(curve, points)
    files["done"] = (folder / "done").read_text()
    return files


def finished_records(out_dir: Path, include_default: bool = False) -> list[Path]:
    """The finished records under `out_dir` (ad-hoc runs of a package's `default` study only if asked)."""
    found = []
    for done in sorted(Path(out_dir).rglob("done")):
        folder = done.parent
        parts = folder.relative_to(out_dir).parts
        if len(parts) == 5 and parts[1] == "default" and parts[0] != "references" and not include_default:
            continue
        if folder.name.startswith("seed"):
            found.append(folder)
    return found


def export(out_dir: Path, store: Path, include_default: bool = False, points: int = POINTS_PER_TASK,
           echo=print) -> dict[str, int]:
    """Copy the compact form of every finished record under `out_dir` into `store`; a stored copy that differs is
    replaced, an equal one left alone. Returns {"written": n, "unchanged": m}."""
    counts = {"written": 0, "unchanged": 0}
    for folder in finished_records(Path(out_dir), include_default):
        records.read_record(folder)  # a corrupt record stops the export with its one-line message
        target = Path(store) / folder.relative_to(out_dir)
        files = compact_files(folder, points)
        if target.is_dir() and sorted(p.name for p in target.iterdir()) == sorted(files) and all(
                (target / name).read_text() == text for name, text in files.items()):
            counts["unchanged"] += 1
            continue
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name, text in files.items():
            if name != "done":
                (target / name).write_text(text)
        (target / "done").write_text(files["done"])  # last, as in a run folder
        counts["written"] += 1
        echo(f"exported {target}")
    return counts


def export_command(args) -> int:
    """`python -m common.records export` (arguments parsed by `common.records.main`)."""
    store = Path(args.to) if args.to else store_dir()
    counts = export(Path(args.out_dir), store, args.include_default, args.points_per_task)
    print(f"{counts['written']} records written, {counts['unchanged']} unchanged, in {store}")
    return 0
