"""Moving run records of the layout without a package level (`<out_dir>/<study>/<benchmark>-<tasks>/<entry>/seed<k>`)
to `common.records.run_folder`'s layout: `python -m common.records migrate [--out-dir runs] [--dry-run]`."""

from __future__ import annotations

import shutil
from pathlib import Path

from common import config as config_lib
from common.records import RecordError, read_config, run_folder


def migrate(out_dir: Path, dry_run: bool = False, echo=print) -> list[tuple[Path, list[Path]]]:
    """Move the records of `<out_dir>/<study>/<benchmark>-<tasks>/<entry>/seed<k>` (the layout before run folders
    had a package level) to `run_folder`'s layout; nothing is retrained and no record is changed. The package of a
    record is read from its config.yaml: the package named there, else the package that defines the method (study
    `default`), else the package whose study resolves this entry to the closest configuration (a record that fits
    two packages' studies equally well was reused by both, so it is copied to each). Unlearning references are
    renamed to the current digest of their settings. Returns [(old folder, [new folders])]."""
    from common import planner

    out_dir = Path(out_dir)
    packages, done_moves = planner.packages(), []
    for folder in sorted(p.parent for p in out_dir.glob("*/*/*/seed*/config.yaml")):
        if folder.relative_to(out_dir).parts[0] in (*packages, "references"):
            continue
        try:
            cfg = read_config(folder)
            targets = [migrated_folder(cfg, package, out_dir) for package in record_packages(cfg, folder)]
        except (RecordError, config_lib.ConfigError) as err:
            echo(f"not moved: {folder}: {err}")
            continue
        if not targets:
            echo(f"not moved: {folder}: no package has study {cfg.get('study')!r} with this entry; move it by hand")
            continue
        for target in [t for t in targets if t.exists()]:
            echo(f"not moved to {target}: a record is already there")
            targets.remove(target)
        if not targets:
            continue
        echo(f"{'would move' if dry_run else 'moved'} {folder} -> {', '.join(map(str, targets))}")
        done_moves.append((folder, targets))
        if dry_run:
            continue
        out = folder.parent / f"{folder.name}.out"
        for i, target in enumerate(targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            last = i == len(targets) - 1
            (shutil.move if last else shutil.copytree)(str(folder), str(target))
            if out.exists():
                (shutil.move if last else shutil.copy2)(str(out), str(target.parent / out.name))
        for parent in list(folder.parents)[:3]:  # drop emptied <entry>, <benchmark>, <study> folders
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
    return done_moves


def migrated_folder(cfg: dict, package: str, out_dir: Path) -> Path:
    new = {**cfg, "package": package, "out_dir": str(out_dir)}
    if cfg.get("cul_reference"):
        from common import planner

        methods = planner.package_methods(package)
        defaults = config_lib.resolve({"method": cfg["method"], "benchmark": cfg["benchmark"]}, methods)
        digest = planner.settings_digest(new, defaults)
        new["run_name"] = f"ref-{cfg['cul_reference']}-{cfg['method']}-{digest}"
    return run_folder(new)


def record_packages(cfg: dict, folder: Path) -> list[str]:
    """The package(s) a record of the old layout belongs to (see `migrate`)."""
    from common import planner
    from common.studies import apply_study, read_study

    if cfg.get("package"):
        return [cfg["package"]]
    study, entry = cfg.get("study", "default"), folder.parent.name
    if study == "default":
        for package in planner.packages():
            methods = planner.package_methods(package)
            if cfg["method"] in methods:
                return [methods[cfg["method"]].__module__.split(".")[0]]
        return []
    scores = {}
    for package in planner.packages():
        if study not in planner.studies(package):
            continue
        spec = read_study(planner.ROOT / package, study)
        runs = {name: (item or {}).get("method", name) for name, item in spec["methods"].items()}
        if cfg.get("cul_reference"):  # unlearning references belong to the study that runs their method
            if cfg["method"] in runs.values():
                scores[package] = 0
            continue
        if entry not in runs:
            continue
        cli, layer = apply_study(planner.ROOT / package, {"study": study, "method": entry, "seed": cfg["seed"],
                                                          "benchmark": cfg["benchmark"], "package": package})
        resolved = config_lib.resolve(cli, planner.package_methods(package), layer)
        scores[package] = sum(1 for k in set(cfg) | set(resolved)
                              if config_lib.is_distinct(k) and k in cfg and cfg.get(k) != resolved.get(k))
    best = min(scores.values(), default=None)
    return [package for package, score in scores.items() if score == best]
