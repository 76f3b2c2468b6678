"""The command `python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]`."""

from __future__ import annotations

import argparse
import os

import torch

from common.data.fetch import prepare
from common.data.loading import load_source
from common.data.sources import COMBINED, SOURCES

DESCRIPTION = "Raw dataset sources, read once and cached as uint8 tensors."


def _describe(name: str, data_dir: str | os.PathLike, shape: tuple[int, int, int] | None = None) -> str:
    """Shapes and class balance of a cached dataset, for the CLI's status line."""
    raw = load_source(name, data_dir, shape=shape)
    counts = torch.bincount(raw.train_y, minlength=raw.num_classes)
    val = f"val {tuple(raw.val_x.shape)}, " if raw.val_x is not None else ""
    return (f"train {tuple(raw.train_x.shape)}, {val}test {tuple(raw.test_x.shape)}, {raw.num_classes} classes, "
            f"train per class {int(counts.min())}..{int(counts.max())}")


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]`;
    non-zero if any is missing."""
    parser = argparse.ArgumentParser(prog="python -m common.data", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="fetch and cache datasets; report what is present, fetched, missing")
    prep.add_argument("name", choices=[*SOURCES, "all", *COMBINED])
    prep.add_argument("--data-dir", default="data")
    prep.add_argument("--no-download", action="store_true", help="only build caches from files already there")
    args = parser.parse_args(argv)

    shape = None
    if args.name in COMBINED:
        shape, names = COMBINED[args.name]
        print(f"{args.name}: {len(names)} datasets as {'x'.join(map(str, shape))} uint8, in task order", flush=True)
    else:
        names = list(SOURCES) if args.name == "all" else [args.name]
    missing = []
    for name in names:
        status = prepare(name, args.data_dir, download=not args.no_download, shape=shape)
        if status.startswith("missing"):
            missing.append(name)
            print(f"{name}: {status}", flush=True)
        else:
            print(f"{name}: {status} ({_describe(name, args.data_dir, shape)})", flush=True)
    if missing and len(names) > 1:
        manual = [n for n in missing if SOURCES[n].manual]
        print(f"{len(missing)} of {len(names)} datasets missing: {', '.join(missing)}"
              + (f" (to be placed by hand: {', '.join(manual)}; see README 'Datasets placed by hand')"
                 if manual else ""), flush=True)
    return 1 if missing else 0

