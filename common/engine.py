"""The continual-learning task loop.

For each task: `begin_task`, `epochs` passes over shuffled index slices of the task's training tensors (drop_last,
as the reference data loaders), a validation pass of the current task after every epoch (logged; it also feeds the
plateau scheduler of the methods that had one), `end_task`, then a test pass over every task seen so far, which
appends one row to the accuracy matrix. Multi-task reference learners (joint, random) see all tasks at once and
produce a single row.

The continual-unlearning loop (`run_continual_unlearning`) adds, per task: the unlearning state handed to the method
before the task, the unlearning requests carried out right after it (before its test), and a fixed random seed per
task so that a reference run that skips tasks draws the same random numbers for the tasks it does train.

Both loops take an optional `common.checkpoint.Checkpoint`: they skip the tasks finished before it, start from its
rows, and save one after every task (`docs/checkpoints.md`).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm, Step
from common.benchmarks import Task
from common.unlearning import UnlearningProtocol, task_seed


def batches_per_epoch(num_samples: int, batch_size: int) -> int:
    """Full batches only (drop_last); at least one so a tiny task still trains."""
    return max(1, num_samples // batch_size)


@torch.no_grad()
def evaluate_logits(logits_fn, task: Task, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(per-sample accuracy, mean cross-entropy) of `logits_fn(x_batch)` over a whole split."""
    correct = torch.zeros((), device=y.device)
    loss = torch.zeros((), device=y.device)
    for start in range(0, len(y), batch_size):
        logits = logits_fn(task.transform(x[start:start + batch_size]))
        target = y[start:start + batch_size]
        correct += (logits.argmax(1) == target).sum()
        loss += F.cross_entropy(logits, target, reduction="sum")
    n = max(1, len(y))
    return correct.item() / n, loss.item() / n


def test_accuracy(algo: Algorithm, task: Task, batch_size: int) -> float:
    algo.eval()
    acc, _ = evaluate_logits(lambda x: algo.predict(x, task.id), task, task.test_x, task.test_y, batch_size)
    return acc


def validate(algo: Algorithm, task: Task, batch_size: int) -> tuple[float, float]:
    algo.eval()
    return evaluate_logits(lambda x: algo.validation_logits(x, task.id), task, task.val_x, task.val_y, batch_size)


def train_task(algo: Algorithm, task: Task, cfg: dict, log) -> list[dict]:
    """Train the current task for `cfg['epochs']` epochs; returns one curve row per epoch."""
    bs, n = cfg["batch_size"], len(task.train_y)
    num_batches = batches_per_epoch(n, bs)
    device = task.train_y.device
    rows = []
    for epoch in range(cfg["epochs"]):
        algo.train()
        start, loss_sum = time.perf_counter(), torch.zeros((), device=device)
        order = torch.randperm(n, device=device)
        for b in range(num_batches):
            idx = order[b * bs:(b + 1) * bs]
            stats = algo.train_step(task.transform(task.train_x[idx]), task.train_y[idx],
                                    Step(b, num_batches, epoch, task.id))
            loss_sum += stats["loss"]
            if cfg["log_every"] and (b + 1) % cfg["log_every"] == 0:
                log(f"  task {task.id} epoch {epoch + 1} step {b + 1}/{num_batches} loss {stats['loss']:.4f}")
        val_acc, val_loss = validate(algo, task, cfg["eval_batch_size"])
        algo.end_epoch(val_loss)
        row = {"task": task.id, "epoch": epoch + 1, "train_loss": loss_sum.item() / num_batches,
               "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - start}
        rows.append(row)
        log(f"  task {task.id} epoch {epoch + 1}/{cfg['epochs']}: train loss {row['train_loss']:.4f}, "
            f"val loss {val_loss:.4f}, val acc {100 * val_acc:.2f} ({row['seconds']:.1f} s)")
    return rows


def run_continual(algo: Algorithm, tasks: list[Task], cfg: dict, record, checkpoint=None) -> list[list[float]]:
    """Train the tasks in order; after each, test every task seen so far. Returns the accuracy matrix rows."""
    if getattr(algo, "multitask", False):
        return run_multitask(algo, tasks, cfg, record)
    done = checkpoint.last_task if checkpoint else 0
    matrix = list(checkpoint.progress.get("matrix", [])) if checkpoint else []
    for task in (t for t in tasks if t.id > done):
        start = time.perf_counter()
        algo.begin_task(task)
        curves = train_task(algo, task, cfg, record.log)
        algo.end_task(task)
        train_seconds = time.perf_counter() - start
        row = [test_accuracy(algo, seen, cfg["eval_batch_size"]) for seen in tasks[:task.id]]
        matrix.append(row)
        seconds = time.perf_counter() - start
        record.add_task(task.id, row, curves, train_seconds, seconds)
        record.log(f"task {task.id}/{len(tasks)} done: acc {100 * row[-1]:.2f} on it, AA {100 * sum(row) / len(row):.2f}"
                   f" over {len(row)} tasks ({train_seconds:.1f} s train, {seconds - train_seconds:.1f} s test)")
        if checkpoint is not None:
            checkpoint.save(algo, record, {"task": task.id, "matrix": matrix})
    return matrix


def run_multitask(algo: Algorithm, tasks: list[Task], cfg: dict, record) -> list[list[float]]:
    """Reference learners that see every task at once (joint training, random network): one matrix row."""
    start = time.perf_counter()
    curves = algo.fit_all(tasks, cfg, record.log)
    train_seconds = time.perf_counter() - start
    row = [test_accuracy(algo, task, cfg["eval_batch_size"]) for task in tasks]
    seconds = time.perf_counter() - start
    record.add_task(len(tasks), row, curves, train_seconds, seconds)
    record.log(f"{algo.name} on {len(tasks)} tasks: AA {100 * sum(row) / len(row):.2f} "
               f"({train_seconds:.1f} s train, {seconds - train_seconds:.1f} s test)")
    return [row]


def run_continual_unlearning(algo: Algorithm, tasks: list[Task], cfg: dict, record,
                             protocol: UnlearningProtocol, skip: set[int] = frozenset(),
                             enabled: bool = True, checkpoint=None) -> tuple[list[list[float]], list[int]]:
    """Train the tasks in order, skipping `skip` (the retrain reference skips every task that is ever unlearned);
    with `enabled`, carry out the unlearning requests after their tasks. After each trained task every trained task
    so far is tested; untrained ones get NaN. Returns (accuracy rows, unlearned task ids in order)."""
    done = checkpoint.last_task if checkpoint else 0
    matrix = list(checkpoint.progress.get("matrix", [])) if checkpoint else []
    unlearned = list(checkpoint.progress.get("unlearned", [])) if checkpoint else []
    trained: list[Task] = [t for t in tasks[:done] if t.id not in skip]
    for task in (t for t in tasks if t.id > done):
        if task.id in skip:
            record.log(f"task {task.id}/{len(tasks)} skipped (never trained in this reference run)")
            continue
        if cfg["task_seeding"] == "per_task":  # per_run: only the run start's seed (docs/fidelity.md#task_seeding)
            torch.manual_seed(task_seed(cfg["seed"], task.id))
        if cfg["head_init"] == "on_arrival" and cfg["setting"] == "til":  # docs/fidelity.md#head_init
            algo.heads.head(task.id).reset_parameters()
        state = protocol.state(task.id, set(unlearned), enabled)
        algo.set_unlearning_state(state)
        start = time.perf_counter()
        algo.begin_task(task)
        curves = train_task(algo, task, cfg, record.log)
        algo.end_task(task)
        trained.append(task)
        if state.requests:
            unlearn_start = time.perf_counter()
            algo.unlearn(state.requests)
            unlearned += state.requests
            record.log(f"task {task.id}: unlearned task(s) {', '.join(map(str, state.requests))} "
                       f"({time.perf_counter() - unlearn_start:.1f} s)")
        train_seconds = time.perf_counter() - start
        tested = {t.id: test_accuracy(algo, t, cfg["eval_batch_size"]) for t in trained}
        row = [tested.get(j, math.nan) for j in range(1, task.id + 1)]
        matrix.append(row)
        seconds = time.perf_counter() - start
        record.add_task(task.id, row, curves, train_seconds, seconds)
        kept = [tested[t.id] for t in trained if t.id not in unlearned]
        record.log(f"task {task.id}/{len(tasks)} done: acc {100 * tested[task.id]:.2f} on it, "
                   f"{100 * sum(kept) / max(1, len(kept)):.2f} on average over the {len(kept)} kept task(s) "
                   f"({train_seconds:.1f} s train and unlearning, {seconds - train_seconds:.1f} s test)")
        if checkpoint is not None:
            checkpoint.save(algo, record, {"task": task.id, "matrix": matrix, "unlearned": unlearned})
    return matrix, unlearned


@torch.no_grad()
def test_features(algo: Algorithm, tasks: list[Task], batch_size: int) -> dict[int, torch.Tensor]:
    """The 'unlearning test' features (`aggregated_features`) of every task's test set, in test-set order, on CPU."""
    algo.eval()
    out = {}
    for task in tasks:
        parts = [algo.aggregated_features(task.transform(task.test_x[i:i + batch_size])).float().cpu()
                 for i in range(0, len(task.test_y), batch_size)]
        out[task.id] = torch.cat(parts)
    return out
