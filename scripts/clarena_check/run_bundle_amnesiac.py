"""Run the AmnesiacHAT paper's own code (the published bundle's `clarena` library and its experiment index files) on
Permuted MNIST, 5 tasks, TIL, for one method and seed, to compare it with this repository's runs (set-up and
commands: `scripts/clarena_check/README.md`; the table: `compare_amnesiac.py`).

    python run_bundle_amnesiac.py --bundle BUNDLE --method amnesiachat --seed 1 --data DATA_ROOT --out OUT
    [--smoke]

`--method` is this repository's method name, mapped to the bundle's index file
`configs/index/amnesiachat_paper/<file>_pmnist_5tasks.yaml` (`INDEX`). The run is the bundle's own full pipeline,
`clarena pipeline=CUL_FULL_EXPR index=...` as its `scripts/amnesiachat_paper/main_study_pmnist_5tasks_til.sh` calls
it: the unlearning run (`<out>/results/acc.csv`), the retrain reference trained on the tasks never requested for
unlearning (`<out>/refretrain/`), the original reference trained on all tasks without unlearning
(`<out>/reforiginal/`) and the full evaluation of DD and AG from the three saved models (`<out>/results/dd.csv`,
`ag.csv`). Wall time of each stage: `<out>/timing.json`.

Overrides of the index file, all on the command line given to the bundle's entry point:

* `pipeline=CUL_FULL_EXPR cl_paradigm=TIL global_seed=<seed> output_dir=<out>`: what the bundle's own script passes;
* `cl_dataset.root=<data>`: the MNIST files (torchvision layout, `<data>/MNIST/raw`); the index's `data/MNIST`
  would make torchvision look in `data/MNIST/MNIST/raw` below the bundle and try to download;
* `--smoke` only: `+trainer.limit_train_batches=20 +trainer.limit_val_batches=2 +trainer.limit_test_batches=2`.

Not overridden: the device (the index's `trainer: cpu.yaml` already trains on the CPU) and logging (its
`lightning_loggers: default.yaml` is a CSV logger only, no wandb). Outside the configuration: one thread
(`torch.set_num_threads(1)`), and an empty module stands in for wandb, which the library imports at module level.
"""

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
sys.modules.setdefault("wandb", types.ModuleType("wandb"))

# our method name -> the bundle's index file (configs/index/amnesiachat_paper/<file>_pmnist_5tasks.yaml)
INDEX = {
    "independent": "independent",
    "amnesiac_finetuning": "finetuning",
    "amnesiac_lwf": "lwf",
    "amnesiac_derpp": "derpp",
    "clpu_derpp": "clpu_derpp",
    "amnesiachat": "amnesiachat",
}
SMOKE = ["+trainer.limit_train_batches=20", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"]


def overrides(args) -> list[str]:
    """The command line handed to the bundle's `clarena` entry point (see the module docstring)."""
    out = [
        "pipeline=CUL_FULL_EXPR",
        f"index=amnesiachat_paper/{INDEX[args.method]}_pmnist_5tasks",
        "cl_paradigm=TIL",
        f"global_seed={args.seed}",
        f"output_dir={os.path.abspath(args.out)}",
        f"cl_dataset.root={os.path.abspath(args.data)}",
    ]
    return out + (SMOKE if args.smoke else [])


def time_stages(classes: list, path: Path) -> None:
    """Wrap every pipeline class's `run` so that each stage's wall time is appended to `path` (JSON)."""
    record = {}

    def wrap(cls):
        run = cls.run

        def timed(self):
            stage = Path(str(self.cfg.output_dir)).name
            stage = stage if stage in ("refretrain", "reforiginal") else cls.__name__
            t0 = time.time()
            run(self)
            record[stage] = round(time.time() - t0, 1)
            assert torch.get_num_threads() == 1, torch.get_num_threads()
            path.write_text(json.dumps(record, indent=1))
            print("STAGE_WALL_S", stage, record[stage], flush=True)

        cls.run = timed

    for cls in classes:
        wrap(cls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="the bundle's folder holding continual-learning-research/")
    ap.add_argument("--method", required=True, choices=sorted(INDEX))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", required=True, help="folder holding MNIST/raw/*-ubyte (torchvision layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="20 training batches per epoch, 2 validation / test batches")
    args = ap.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    argv = overrides(args)
    # the entry point reads its configs from <cwd>/configs when it is imported
    os.chdir(Path(args.bundle).resolve() / "continual-learning-research")
    from clarena import cli  # noqa: E402

    time_stages([cli.CULMainExperiment, cli.CLMainExperiment, cli.CULFullEvaluation], out / "timing.json")
    (out / "command.json").write_text(json.dumps({"argv": argv, "driver": sys.argv}, indent=1))
    print("clarena", " ".join(argv), flush=True)
    sys.argv = ["clarena", *argv]
    t0 = time.time()
    cli.clarena()
    print(f"TOTAL_WALL_S {time.time() - t0:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
