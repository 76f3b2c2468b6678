"""Replay buffer of DER / DER++ / CLPU-DER++ and per-sample head routing of replayed examples
(`docs/baselines.md#replay-buffer`, `docs/baselines.md#dark-experience-replay-der-der`).

`ReplayBuffer` keeps (input, label, logits at insertion time, task id) in preallocated tensors on the device of the
first batch, filled by reservoir sampling over every example ever offered (the counter of seen examples keeps
growing across epochs and tasks, as every epoch re-offers the data).

Logits of tasks with different class counts are stored zero-padded to the widest seen, with the width of every
example (the reference code assumes equal class counts; Combined-5 has a 24-class last task). A sampled batch
carries these widths, and `replay_losses` only compares the first `width` logits of each example, so with equal
class counts everything reduces to the plain MSE and cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

EMPTY = -1  # task id of a free slot


class ReplayBatch(NamedTuple):
    """Examples drawn from the buffer; `logits` are the stored ones, padded to the buffer's width, of which the
    first `widths[i]` belong to example i."""

    x: torch.Tensor
    y: torch.Tensor
    logits: torch.Tensor
    task_ids: torch.Tensor
    widths: torch.Tensor


class ReplayBuffer:
    """Reservoir buffer of `capacity` examples (DER's `Buffer`, `docs/baselines.md#replay-buffer`).

    Example number n (0-based, counted over every example ever offered) goes to slot n while n < capacity;
    afterwards j = uniform{0..n} is drawn and the example replaces slot j if j < capacity. Slots emptied by
    `delete_task` are refilled per `refill_freed`: True (the AmnesiacHAT reference code, whose buffer shrinks on
    deletion) gives them to the next examples offered, in order and without a draw, until the buffer is full again;
    False (default) refills them only when the reservoir draw picks them (then the freed slots are not taken by the
    next task's first examples, whose stored logits come from the start of its training). Without deletions both
    are the same rule. Within a batch the examples are processed in order (a later one wins a slot drawn twice).
    Random numbers come from torch's global generator on the buffer's device, so seeding makes runs reproducible.
    """

    def __init__(self, capacity: int, refill_freed: bool = False):
        if capacity < 0:
            raise ValueError(f"buffer capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.refill_freed = refill_freed
        self.seen = 0  # examples offered so far
        self.size = 0  # occupied slots
        self.x = self.y = self.logits = self.task_ids = self.widths = None  # allocated by the first `add`

    def __len__(self) -> int:
        return self.size

    # ----- adding -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def add(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, task_id: int | torch.Tensor) -> None:
        """Offer a batch; `task_id` is one id for the batch or one per example."""
        batch = len(x)
        if batch == 0 or self.capacity == 0:
            self.seen += batch
            return
        if self.x is None:
            self._allocate(x, logits)
        width = logits.shape[1]
        logits = self._match_width(logits)
        tasks = torch.as_tensor(task_id, dtype=torch.long, device=self.x.device).expand(batch)
        source = self._slot_sources(batch)  # per slot: index in the batch of the example it receives, or -1
        taken = source >= 0
        pick = source.clamp(min=0)
        self.x = torch.where(taken.view(-1, *[1] * (x.dim() - 1)), x.detach()[pick].to(self.x.dtype), self.x)
        self.y = torch.where(taken, y.long()[pick], self.y)
        self.logits = torch.where(taken[:, None], logits[pick], self.logits)
        self.task_ids = torch.where(taken, tasks[pick], self.task_ids)
        self.widths = torch.where(taken, self.widths.new_tensor(width), self.widths)
        self.size = int((self.task_ids != EMPTY).sum())
        self.seen += batch

    def _allocate(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        n, device = self.capacity, x.device
        self.x = x.new_zeros((n, *x.shape[1:]))
        self.y = torch.zeros(n, dtype=torch.long, device=device)
        self.logits = torch.zeros(n, logits.shape[1], dtype=logits.dtype, device=device)
        self.task_ids = torch.full((n,), EMPTY, dtype=torch.long, device=device)
        self.widths = torch.zeros(n, dtype=torch.long, device=device)

    def _match_width(self, logits: torch.Tensor) -> torch.Tensor:
        """Widen the stored logits to a wider batch, or pad the batch to the stored width (zeros)."""
        logits = logits.detach().to(self.logits.dtype)
        extra = logits.shape[1] - self.logits.shape[1]
        if extra > 0:
            self.logits = F.pad(self.logits, (0, extra))
        elif extra < 0:
            logits = F.pad(logits, (0, -extra))
        return logits

    def _slot_sources(self, batch: int) -> torch.Tensor:
        """For every slot the batch index of the example written there (-1: untouched); reservoir rule above."""
        device = self.task_ids.device
        source = torch.full((self.capacity + 1,), -1, dtype=torch.long, device=device)  # last entry: "rejected"
        # the first `capacity` examples ever offered fill the buffer in order; afterwards a slot freed by
        # `delete_task` is filled at once (`refill_freed`) or only when the reservoir draw picks it
        free_now = self.capacity - self.size
        fill = min(free_now if self.refill_freed else min(free_now, max(0, self.capacity - self.seen)), batch)
        if fill > 0:
            free = self.task_ids == EMPTY
            rank = free.long().cumsum(0) - 1  # the k-th free slot gets example k
            source[:-1] = torch.where(free & (rank < fill), rank, source[:-1])
        if batch > fill:
            index = torch.arange(fill, batch, device=device)
            n = self.seen + index  # 0-based number of each example among all offered
            j = (torch.rand(batch - fill, dtype=torch.float64, device=device) * (n + 1)).long()  # uniform {0..n}
            j = torch.where(j < self.capacity, j, self.capacity)
            source.scatter_reduce_(0, j, index, reduce="amax")  # the later example wins a slot drawn twice
        return source[:-1]

    # ----- reading and deleting -----------------------------------------------------------------------------------
    def _eligible(self, task_ids) -> torch.Tensor:
        wanted = torch.as_tensor(list(task_ids), dtype=torch.long, device=self.task_ids.device)
        return torch.isin(self.task_ids, wanted)

    def count(self, task_ids) -> int:
        """Number of stored examples of the given tasks."""
        if self.size == 0 or not len(task_ids):
            return 0
        return int(self._eligible(task_ids).sum())

    @torch.no_grad()
    def sample(self, n: int, task_ids, limit_to_stored: bool = True) -> ReplayBatch | None:
        """n examples drawn uniformly with replacement among the stored examples of `task_ids`; None if there are
        none. `limit_to_stored` draws min(n, stored) instead, as the reference `Buffer.get_data` does."""
        if self.size == 0 or not len(task_ids) or n <= 0:
            return None
        index = self._eligible(task_ids).nonzero().squeeze(1)
        if len(index) == 0:
            return None
        m = min(n, len(index)) if limit_to_stored else n
        chosen = index[torch.randint(0, len(index), (m,), device=index.device)]
        return ReplayBatch(self.x[chosen], self.y[chosen], self.logits[chosen], self.task_ids[chosen],
                           self.widths[chosen])

    @torch.no_grad()
    def delete_task(self, task_id: int) -> None:
        """Remove (and zero) every example of a task; the freed slots are refilled as `refill_freed` says."""
        if self.x is None:
            return
        gone = self.task_ids == task_id
        self.size -= int(gone.sum())
        self.x[gone] = 0
        self.y[gone] = 0
        self.logits[gone] = 0
        self.widths[gone] = 0
        self.task_ids[gone] = EMPTY

    def task_counts(self) -> dict[int, int]:
        """{task id: number of stored examples}."""
        if self.size == 0:
            return {}
        tasks, counts = self.task_ids[self.task_ids != EMPTY].unique(return_counts=True)
        return dict(zip(tasks.tolist(), counts.tolist()))


# ----- per-sample head routing ---------------------------------------------------------------------------------------
def per_task_logits(inputs: torch.Tensor, task_ids: torch.Tensor,
                    fn: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """`fn(inputs_of_task, task_id)` for every distinct task (one call each), the rows put back in the input order
    and zero-padded to the widest output."""
    order = torch.argsort(task_ids, stable=True)
    tasks, counts = torch.unique_consecutive(task_ids[order], return_counts=True)
    groups = inputs[order].split(counts.tolist())
    outputs = [fn(group, task) for group, task in zip(groups, tasks.tolist())]
    width = max(o.shape[1] for o in outputs)
    stacked = torch.cat([F.pad(o, (0, width - o.shape[1])) for o in outputs])
    return torch.empty_like(stacked).index_copy(0, order, stacked)


def replay_logits(model, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """Logits of every replayed example through its own task's head (docs/baselines.md, DER).

    `model` is either a method with a shared `backbone` and per-task `heads` (one backbone forward over the whole
    batch, as the reference code does, so batch-norm statistics see the full replay batch; then one head call per
    task) or a function `fn(x_of_task, task_id) -> logits` called once per distinct task (HAT-family methods, whose
    forward depends on the task's mask)."""
    if hasattr(model, "backbone") and hasattr(model, "heads"):
        features = model.backbone(x)
        return per_task_logits(features, task_ids, lambda f, t: model.heads(f, t))
    return per_task_logits(x, task_ids, model)


def replay_losses(student: torch.Tensor, batch: ReplayBatch, with_ce: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(MSE to the stored logits, cross-entropy to the stored labels) of the student logits of a replay batch,
    over the first `width` logits of each example (the plain mean MSE / CE when all widths are equal)."""
    width = max(student.shape[1], batch.logits.shape[1])
    student = F.pad(student, (0, width - student.shape[1]))
    stored = F.pad(batch.logits, (0, width - batch.logits.shape[1]))
    valid = torch.arange(width, device=student.device) < batch.widths[:, None]
    mse = ((student - stored).square() * valid).sum() / valid.sum()
    ce = F.cross_entropy(student.masked_fill(~valid, float("-inf")), batch.y) if with_ce else None
    return mse, ce
