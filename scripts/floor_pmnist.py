"""The speed floor: the bare PyTorch training loop of one Permuted MNIST run, with none of the project around it.

    python -m scripts.floor_pmnist [--tasks 20] [--epochs 2] [--threads N]

The same work as a Finetuning run of `benchmark=pmnist` (the paper's MLP 784-256-100-64 with a 10-way head per
task, Adam 1e-3 fresh per task, batch 128, 421 full batches of the 54,000 training samples per epoch, a permuted
copy of every batch), followed after each task by a test pass over every task seen so far (10,000 samples each).
The data are random tensors: no loading, no masks, no logging, no records. Prints the seconds of training and of
evaluation and their total, the figure `scripts.speed` divides by.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

TRAIN, TEST, BATCH, PIXELS, CLASSES = 54000, 10000, 128, 784, 10


def mlp() -> nn.Module:
    layers, width = [], PIXELS
    for units in (256, 100, 64):
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*layers)


def floor(tasks: int, epochs: int) -> tuple[float, float]:
    """(training seconds, evaluation seconds) of the bare loop."""
    torch.manual_seed(0)
    train_x, train_y = torch.randn(TRAIN, PIXELS), torch.randint(0, CLASSES, (TRAIN,))
    test_x = torch.randn(TEST, PIXELS)
    body = mlp()
    heads = nn.ModuleList(nn.Linear(64, CLASSES) for _ in range(tasks))
    steps = TRAIN // BATCH
    train_s = eval_s = 0.0
    for t in range(tasks):
        optimizer = torch.optim.Adam([*body.parameters(), *heads[t].parameters()], lr=1e-3)
        permutation = torch.randperm(PIXELS)
        start = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(TRAIN)
            for b in range(steps):
                rows = order[b * BATCH:(b + 1) * BATCH]
                loss = F.cross_entropy(heads[t](body(train_x[rows][:, permutation])), train_y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        trained = time.perf_counter()
        with torch.no_grad():
            for seen in range(t + 1):
                heads[seen](body(test_x[:, permutation])).argmax(1)
        train_s += trained - start
        eval_s += time.perf_counter() - trained
    return train_s, eval_s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_s, eval_s = floor(args.tasks, args.epochs)
    print(f"train {train_s:.1f} s, eval {eval_s:.1f} s, total {train_s + eval_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
