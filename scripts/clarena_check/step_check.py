"""Drive CLArena 1.1.0's AdaHAT and this repository's AdaHAT through the same steps, from the same weights, task
embeddings and batches, and print how far apart they end up (set-up: `scripts/clarena_check/README.md`).

    clarena-venv/bin/python -m scripts.clarena_check.step_check [--tasks 3 --batches 100 --alpha 1e-6] [key=value ...]

Both start each task from the library's freshly drawn embeddings and head (copied into ours), take the same
Permuted MNIST batches (one epoch of `--batches` batches per task, so the annealing covers its whole range), and
then compare per task: the largest weight difference, the summative masks, the network capacity of each step and
the test accuracy of every seen task. `key=value` changes our configuration (e.g. `anneal_zero_based=false`, to
see the check fail). The library's training step runs outside Lightning: its optimizer, backward and trainer are
stood in for by a plain Adam, `loss.backward()` and the number of batches.
"""

from __future__ import annotations

import argparse
import sys
import types
from types import SimpleNamespace

import torch

sys.modules.setdefault("wandb", types.ModuleType("wandb"))  # imported by clarena.callbacks, not used

from clarena.backbones import HATMaskMLP  # noqa: E402
from clarena.cl_algorithms import AdaHAT as LibraryAdaHAT  # noqa: E402
from clarena.heads import HeadsTIL  # noqa: E402

from common.algorithm import Step  # noqa: E402
from common.benchmarks import build_benchmark  # noqa: E402
from common.config import parse_cli, resolve  # noqa: E402
from fg_adahat import METHODS  # noqa: E402

LAYERS = ("fc/0", "fc/1", "fc/2")


def library_adahat(alpha: float) -> LibraryAdaHAT:
    backbone = HATMaskMLP(input_dim=784, hidden_dims=[256, 100], output_dim=64, gate="sigmoid")
    return LibraryAdaHAT(backbone, HeadsTIL(input_dim=64), adjustment_mode="adahat", adjustment_intensity=alpha,
                         s_max=400.0, clamp_threshold=50, mask_sparsity_reg_factor=0.1,
                         mask_sparsity_reg_mode="original", task_embedding_init_mode="N01", epsilon=0.1)


@torch.no_grad()
def copy_into_ours(lib, ours, task_id: int, weights: bool) -> None:
    """The library's embeddings and current head (and, at the start, its backbone weights) into our AdaHAT."""
    for l, name in enumerate(LAYERS):
        ours.backbone.embeddings[l].copy_(lib.backbone.task_embedding_t[name].weight.view(-1))
        if weights:
            ours.backbone.fc[l].weight.copy_(lib.backbone.fc[l].weight)
            ours.backbone.fc[l].bias.copy_(lib.backbone.fc[l].bias)
    head = lib.heads.heads[f"{task_id}"]
    ours.heads.head(task_id).weight.copy_(head.weight)
    ours.heads.head(task_id).bias.copy_(head.bias)


@torch.no_grad()
def test_accuracy(predict, task) -> float:
    return (predict(task.transform(task.test_x)).argmax(1) == task.test_y).float().mean().item()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--batches", type=int, default=100, help="training batches per task (one epoch)")
    parser.add_argument("--alpha", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="key=value changes of our configuration")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cli = {"method": "adahat", "benchmark": "pmnist", "semantics": "current", "alpha": args.alpha,
           "num_tasks": args.tasks, **parse_cli(args.overrides)}
    cfg = resolve(cli, METHODS)
    tasks = build_benchmark("pmnist", args.tasks, cfg["data_dir"])
    lib, ours = library_adahat(args.alpha), METHODS["adahat"](cfg, [10] * args.tasks, (1, 28, 28))
    lib._trainer = SimpleNamespace(num_training_batches=args.batches)  # what HAT.training_step reads
    lib.manual_backward = lambda loss: loss.backward()
    bs = cfg["batch_size"]
    print("| task | max weight difference | summative masks equal | max capacity difference | "
          "test accuracies (library / ours) |\n|---|---|---|---|---|")
    for task in tasks:
        lib.setup_task_id(task.id, 10, None, None)
        opt = torch.optim.Adam(lib.parameters(), lr=cfg["lr"])
        lib.optimizers = lambda opt=opt: opt
        lib.on_train_start()
        ours.begin_task(task)
        copy_into_ours(lib, ours, task.id, weights=task.id == 1)
        order = torch.randperm(len(task.train_y))
        capacity_gap = 0.0
        for b in range(args.batches):
            idx = order[b * bs:(b + 1) * bs]
            x, y = task.transform(task.train_x[idx]), task.train_y[idx]
            theirs = lib.training_step((x, y), b)
            ours.train_step(x, y, Step(b, args.batches, 0, task.id))
            capacity_gap = max(capacity_gap, abs(float(theirs["capacity"]) - float(ours.capacity_log[-1][1])))
        lib.on_train_end()
        ours.end_task(task)
        weight_gap = max((lib.backbone.fc[l].weight - ours.backbone.fc[l].weight).abs().max().item()
                         for l in range(len(LAYERS)))
        same_sum = all(torch.equal(lib.summative_mask_for_previous_tasks[n], ours.summative[l])
                       for l, n in enumerate(LAYERS))
        accs = [(test_accuracy(lambda x, t=t.id: lib.forward(x, "test", task_id=t)[0], t),
                 test_accuracy(lambda x, t=t.id: ours.predict(x, t), t)) for t in tasks[:task.id]]
        shown = ", ".join(f"{100 * a:.2f} / {100 * b:.2f}" for a, b in accs)
        print(f"| {task.id} | {weight_gap:.2e} | {same_sum} | {capacity_gap:.2e} | {shown} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
