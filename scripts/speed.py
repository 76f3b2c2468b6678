"""Time methods on Permuted MNIST (20 tasks x 2 epochs, evaluation included) against the bare training loop.

    python -m scripts.speed [--methods finetuning,hat,adahat,fgadahat_ig] [--floor PATH] [--threads N] [key=value ...]

Runs the floor script (the bare PyTorch loop of the same work on random data) and then each method in a
temporary folder (references=none), one after the other on the same machine, and prints seconds, seconds per task
and the ratio to the floor. Keep the machine otherwise idle while it runs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import config as config_lib
from common import records
from fg_adahat import METHODS

DEFAULT_FLOOR = Path(__file__).resolve().parent.parent.parent / "shared" / "tools" / "floor_pmnist.py"


def run_floor(path: Path) -> float:
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"total ([\d.]+) s", out).group(1))


def run_method(method: str, out_dir: str, extra: list[str]) -> dict:
    args = [f"method={method}", "benchmark=pmnist", "seed=1", "references=none", f"out_dir={out_dir}", *extra]
    subprocess.run([sys.executable, "-m", "fg_adahat.run", *args], check=True, capture_output=True)
    cfg = config_lib.resolve(config_lib.parse_cli(args), METHODS)
    return json.loads((records.run_folder(cfg) / "metrics.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="finetuning,hat,adahat,fgadahat_ig")
    parser.add_argument("--floor", type=Path, default=DEFAULT_FLOOR)
    parser.add_argument("overrides", nargs="*", help="key=value for every run (e.g. threads=2, device=cuda)")
    args = parser.parse_args(argv)
    floor = run_floor(args.floor) if args.floor.exists() else None
    print(f"floor (bare training loop + evaluation): {floor:.1f} s" if floor else f"no floor script at {args.floor}")
    with tempfile.TemporaryDirectory() as tmp:
        for method in [m for m in args.methods.split(",") if m]:
            result = run_method(method, tmp, args.overrides)
            seconds = result["seconds"]
            ratio = f", {seconds / floor:.2f} x floor" if floor else ""
            per_task = sum(result["seconds_per_task"]) / len(result["seconds_per_task"])
            print(f"{method:14s} {seconds:7.1f} s ({per_task:.1f} s per task{ratio}); "
                  f"AA {100 * result['metrics']['aa']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
