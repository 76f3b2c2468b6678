"""Joint: one multi-task model trained on the union of all tasks (reference for FR)."""

import time

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm
from common.engine import batches_per_epoch, validate


class Joint(Algorithm):
    """Trains E epochs (E = the benchmark's epochs per task) over the shuffled union of every task's training data,
    each batch mixing tasks, each sample scored by its own task's head; one fresh Adam for the whole run."""

    name = "joint"
    multitask = True

    def fit_all(self, tasks, cfg, log) -> list[dict]:
        self.begin_task(tasks[-1])
        device = tasks[0].train_y.device
        owner = torch.cat([torch.full((len(t.train_y),), i, device=device) for i, t in enumerate(tasks)])
        local = torch.cat([torch.arange(len(t.train_y), device=device) for t in tasks])
        n, bs = len(owner), cfg["batch_size"]
        num_batches = batches_per_epoch(n, bs)
        rows = []
        for epoch in range(cfg["epochs"]):
            self.train()
            start, loss_sum = time.perf_counter(), torch.zeros((), device=device)
            order = torch.randperm(n, device=device)
            for b in range(num_batches):
                loss_sum += self.mixed_step(tasks, owner, local, order[b * bs:(b + 1) * bs])
            val = [validate(self, t, cfg["eval_batch_size"]) for t in tasks]
            val_acc, val_loss = (sum(v[i] for v in val) / len(val) for i in (0, 1))
            self.end_epoch(val_loss)
            rows.append({"task": len(tasks), "epoch": epoch + 1, "train_loss": loss_sum.item() / num_batches,
                         "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - start})
            log(f"  joint epoch {epoch + 1}/{cfg['epochs']}: train loss {rows[-1]['train_loss']:.4f}, "
                f"mean val acc {100 * val_acc:.2f} ({rows[-1]['seconds']:.1f} s)")
        return rows

    def mixed_step(self, tasks, owner, local, batch) -> torch.Tensor:
        """One step on a batch mixing tasks: samples are grouped by task (order within a batch is irrelevant),
        transformed by their task, passed through the backbone together and scored by their own heads."""
        owners, sort = owner[batch].sort()
        samples = local[batch][sort]
        counts = torch.bincount(owners, minlength=len(tasks)).tolist()
        present = [i for i, c in enumerate(counts) if c]
        chunks = samples.split([counts[i] for i in present])
        x = torch.cat([tasks[i].transform(tasks[i].train_x[c]) for i, c in zip(present, chunks)])
        y = [tasks[i].train_y[c] for i, c in zip(present, chunks)]
        features = self.backbone(x).split([counts[i] for i in present])
        loss = sum(F.cross_entropy(self.heads(f, tasks[i].id), t, reduction="sum")
                   for i, f, t in zip(present, features, y)) / len(batch)
        self.optimizer_step(loss)
        return loss.detach()
