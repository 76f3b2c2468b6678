"""Run the reference library's own FG-AdaHAT or AdaHAT (CLArena 1.1.0) on Permuted MNIST with the published
settings, to compare it with this repository's implementation (set-up and commands: `scripts/clarena_check/README.md`).

    python run_clarena_fgadahat.py --importance_type input_weight_gradient_abs_sum --out outputs/ig --data DATA_ROOT
    [--alpha 1.5e-7 --base_linear 5 --seed 1 --train_tasks 20 --smoke]
    python run_clarena_fgadahat.py --method adahat --alpha 1e-6 --out outputs/adahat --data DATA_ROOT [--seed 1]

It builds the configuration of the research repository's `fgadahat_<measure>_pmnist_20tasks` index config (or the
same with CLArena's AdaHAT, `adjustment_mode: adahat`) and hands it to CLArena's `CLMainExperiment` (the
`CL_MAIN_EXPR` pipeline): its dataset, HAT MLP, TIL heads, the method, a Lightning trainer per task, a test of every
seen task after each task (`<out>/results/acc.csv`). One thread.
"""

import argparse
import json
import os
import sys
import time
import types

import torch

torch.set_num_threads(1)
# wandb is not installed (no network use); clarena.callbacks imports it at module level only
# for the SaveFirstBatchImages callback, which is not used here.
sys.modules.setdefault("wandb", types.ModuleType("wandb"))
torch.set_num_interop_threads(1)

import lightning as L  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from clarena.pipelines import CLMainExperiment  # noqa: E402
from clarena.utils.cfg import preprocess_config  # noqa: E402


class TaskTimer(L.Callback):
    """Records wall time of fit (train+val) and test per task; writes JSON lines."""

    def __init__(self, path):
        self.path = path
        self.t0 = None

    def on_fit_start(self, trainer, pl_module):
        self.t0 = time.time()
        assert torch.get_num_threads() == 1, torch.get_num_threads()

    def on_fit_end(self, trainer, pl_module):
        self.fit_s = time.time() - self.t0

    def on_test_start(self, trainer, pl_module):
        self.t1 = time.time()

    def on_test_end(self, trainer, pl_module):
        rec = {
            "task_id": pl_module.task_id,
            "fit_s": round(self.fit_s, 1),
            "test_s": round(time.time() - self.t1, 1),
            "num_steps_t": getattr(pl_module, "num_steps_t", None),
            "threads": torch.get_num_threads(),
            "time": time.strftime("%H:%M:%S"),
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print("TASKTIME", rec, flush=True)


# the hyperparameters AdaHAT and FG-AdaHAT share (HAT's s_max, clamp, regulariser; AdaHAT's epsilon 0.1 default)
HAT_COMMON = {
    "s_max": 400.0,
    "clamp_threshold": 50,
    "mask_sparsity_reg_factor": 0.1,
    "mask_sparsity_reg_mode": "original",
    "task_embedding_init_mode": "N01",
}


def cl_algorithm(args) -> dict:
    """CLArena's `cl_algorithm` config: configs/cl_algorithm/{fgadahat,adahat}.yaml with the index config's values."""
    if args.method == "adahat":
        return {"_target_": "clarena.cl_algorithms.AdaHAT", "adjustment_mode": "adahat",
                "adjustment_intensity": args.alpha, "epsilon": 0.1, **HAT_COMMON}
    return {
        "_target_": "clarena.cl_algorithms.FGAdaHAT",
        "adjustment_intensity": args.alpha,
        "importance_type": args.importance_type,
        "importance_summing_strategy": "add_all",
        "importance_scheduler_type": "linear_sparsity_reg",
        "neuron_to_weight_importance_aggregation_mode": "min",
        **HAT_COMMON,
        "base_importance": 1e-8,
        "base_mask_sparsity_reg": 0.1,
        "base_linear": args.base_linear,
        "filter_by_cumulative_mask": False,
        "filter_unmasked_importance": False,
        "step_multiply_training_mask": True,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=("fgadahat", "adahat"), default="fgadahat")
    ap.add_argument("--importance_type", default="input_weight_gradient_abs_sum")
    ap.add_argument("--train_tasks", type=int, default=20)
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="1 epoch of 30 batches per task")
    ap.add_argument("--data", required=True, help="folder holding MNIST/raw/*-ubyte (torchvision layout)")
    ap.add_argument("--alpha", type=float, default=1.5e-7,
                    help="FG-AdaHAT: 1.5e-7 for IG, CU, ICU, AFI, FA, II, 1e-7 otherwise; AdaHAT: 1e-6")
    ap.add_argument("--base_linear", type=float, default=5, help="5 for IG, CU, ICU, AFI, FA, II; 10 otherwise")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    trainer = {
        "_target_": "lightning.Trainer",
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "default_root_dir": out,
        "log_every_n_steps": 20,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    if args.smoke:
        trainer.update({"max_epochs": 1, "limit_train_batches": 30, "limit_val_batches": 5})

    cfg = {
        "pipeline": "CL_MAIN_EXPR",
        "expr_name": f"{args.method}_pmnist" if args.method == "adahat" else f"fgadahat_{args.importance_type}_pmnist",
        "cl_paradigm": "TIL",
        "train_tasks": args.train_tasks,
        "eval_after_tasks": args.train_tasks,
        "global_seed": args.seed,
        # configs/cl_dataset/permuted_mnist.yaml (torchvision looks for <root>/MNIST/raw)
        "cl_dataset": {
            "_target_": "clarena.cl_datasets.PermutedMNIST",
            "root": os.path.abspath(args.data),
            "num_tasks": 20,
            "validation_percentage": 0.1,
            "batch_size": 128,
            "permutation_mode": "first_channel_only",
        },
        # configs/backbone/hat_mlp.yaml
        "backbone": {
            "_target_": "clarena.backbones.HATMaskMLP",
            "input_dim": 784,
            "hidden_dims": [256, 100],
            "output_dim": 64,
            "gate": "sigmoid",
        },
        "cl_algorithm": cl_algorithm(args),
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001},
        # research config uses ReduceLROnPlateau; under manual optimisation Lightning never
        # steps it (and it could not fire in 2 epochs anyway). The pipeline requires the key.
        "lr_scheduler": {
            "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
            "_partial_": True,
            "mode": "min",
            "factor": 0.1,
            "patience": 10,
        },
        "trainer": trainer,
        "metrics": [
            {
                "_target_": "clarena.metrics.CLAccuracy",
                "save_dir": os.path.join(out, "results"),
                "test_acc_csv_name": "acc.csv",
            }
        ],
        "lightning_loggers": {
            "csv": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": out,
                "name": "csv",
                "version": "",
            }
        },
        "callbacks": [
            {"_target_": "clarena.callbacks.CLPylogger"},
            {"_target_": "__main__.TaskTimer", "path": os.path.join(out, "task_times.jsonl")},
        ],
        "output_dir": out,
        "misc": {"timestamp": time.strftime("%Y-%m-%d_%H-%M-%S")},
    }
    cfg = OmegaConf.create(cfg)
    cfg = preprocess_config(cfg, type="CL_MAIN_EXPR")
    print(OmegaConf.to_yaml(cfg), flush=True)
    t0 = time.time()
    pipeline = CLMainExperiment(cfg)
    pipeline.run()
    print(f"TOTAL_WALL_S {time.time() - t0:.1f}", flush=True)


if __name__ == "__main__":
    main()
