"""Continual unlearning: the request schedule, the state handed to a method before each task, and the store of
task-wise parameter updates (`docs/amnesiachat.md#unlearning-protocol`, `#task-updates`).

Protocol, per task t: the method learns which tasks are unlearnable (age: t - tau < age), which are requested for
unlearning right after t, and which just became permanent; it trains t; if t has requests, `unlearn(ids)` runs;
then every task seen so far is tested (unlearned tasks stay in the accuracy matrix).

Requests are written `after:ids` pairs, e.g. "2:1,4:2,5:5" (several ids joined by '+', "6:3+4"); "published" is the
papers' schedule: {2:[1], 4:[2], 5:[5]} repeated for every block of five tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

PUBLISHED_BLOCK = {2: [1], 4: [2], 5: [5]}


class UnlearningConfigError(ValueError):
    """An unlearning schedule that cannot be carried out."""


def published_requests(num_tasks: int) -> dict[int, list[int]]:
    """The papers' schedule: unlearn task 1 after task 2, task 2 after task 4, task 5 right after learning it, and
    the same in every later block of five tasks (20 tasks: 12 requests, remaining tasks 3, 4, 8, 9, ..., 19)."""
    out = {}
    for start in range(0, num_tasks, 5):
        for after, ids in PUBLISHED_BLOCK.items():
            if start + after <= num_tasks:
                out[start + after] = [start + i for i in ids]
    return out


def parse_task_map(text: str, what: str) -> dict[int, list[int]]:
    """'2:1,4:2+3' -> {2: [1], 4: [2, 3]}."""
    out: dict[int, list[int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, values = part.partition(":")
        try:
            if not sep:
                raise ValueError
            out[int(key)] = [int(v) for v in values.split("+")]
        except ValueError:
            raise UnlearningConfigError(f"{what}: cannot read {part!r} (expected e.g. '2:1,4:2+3')") from None
    return out


def parse_requests(text: str, num_tasks: int) -> dict[int, list[int]]:
    """The request schedule of a config value ('' = no unlearning)."""
    if text.strip() == "published":
        return published_requests(num_tasks)
    return parse_task_map(text, "unlearning_requests")


CLPU_BLOCK_AGES = {1: 3, 2: 3, 3: 0, 4: 0, 5: 3}


def parse_ages(text: str, num_tasks: int = 0) -> dict[int, int]:
    """Per-task unlearnable ages, '3:0,4:0' -> {3: 0, 4: 0} (tasks not named take the global age). 'published' is the
    CLPU-DER++ configuration of the paper, {1: 3, 2: 3, 3: 0, 4: 0, 5: 3} for every block of five tasks (tasks 3, 4
    permanent from the start, the split of CLPU into temporary and permanent tasks)."""
    if text.strip() == "published":
        return {start + t: age for start in range(0, num_tasks, 5) for t, age in CLPU_BLOCK_AGES.items()
                if start + t <= num_tasks}
    out = {}
    for task, values in parse_task_map(text, "unlearnable_ages").items():
        if len(values) != 1:
            raise UnlearningConfigError(f"unlearnable_ages: one age per task, got {values} for task {task}")
        out[task] = values[0]
    return out


@dataclass
class UnlearningState:
    """What a method is told before training task `task_id` (`docs/amnesiachat.md#unlearning-protocol`).

    * `unlearnable`: tasks tau <= t with t - tau < age(tau). As in the reference pipeline this list is not reduced
      by earlier unlearning; `unlearned` says which of them are gone.
    * `requests`: tasks to unlearn right after training t (may include t itself).
    * `just_permanent`: tasks whose age ran out at t (t - tau = age(tau)); their records may be dropped.
    * `enabled`: False in reference runs (retrain, original): the method behaves as its plain continual learner.
    """

    task_id: int
    unlearnable: list[int]
    requests: list[int]
    just_permanent: list[int]
    unlearned: set[int] = field(default_factory=set)
    enabled: bool = True


class UnlearningProtocol:
    """The schedule of one run: requests after given tasks and the unlearnable age (global or per task)."""

    def __init__(self, requests: dict[int, list[int]], age: int, num_tasks: int, ages: dict[int, int] | None = None):
        self.requests, self.age, self.num_tasks, self.ages = requests, age, num_tasks, ages or {}
        self.validate()

    @classmethod
    def from_config(cls, cfg: dict) -> UnlearningProtocol:
        n = cfg["num_tasks"]
        return cls(parse_requests(cfg["unlearning_requests"], n), cfg["unlearnable_age"], n,
                   parse_ages(cfg["unlearnable_ages"], n))

    def age_of(self, task: int) -> int:
        return self.ages.get(task, self.age)

    def validate(self) -> None:
        seen = set()
        for after, ids in self.requests.items():
            if not 1 <= after <= self.num_tasks:
                raise UnlearningConfigError(f"unlearning request after task {after}: the run has {self.num_tasks} tasks")
            for u in ids:
                if u in seen:
                    raise UnlearningConfigError(f"task {u} is requested for unlearning twice")
                if not 1 <= u <= after:
                    raise UnlearningConfigError(f"after task {after} only tasks 1..{after} can be unlearned, not {u}")
                if after - u >= self.age_of(u):
                    raise UnlearningConfigError(f"task {u} is no longer unlearnable after task {after} "
                                                f"(unlearnable age {self.age_of(u)})")
                seen.add(u)

    @property
    def unlearned_tasks(self) -> list[int]:
        """Every task the schedule ever unlearns (the retrain reference never trains them)."""
        return sorted(u for ids in self.requests.values() for u in ids)

    @property
    def remaining_tasks(self) -> list[int]:
        """Tasks never unlearned (AG and the remaining-task AA average over them)."""
        gone = set(self.unlearned_tasks)
        return [t for t in range(1, self.num_tasks + 1) if t not in gone]

    def state(self, t: int, unlearned: set[int], enabled: bool = True) -> UnlearningState:
        return UnlearningState(
            task_id=t,
            unlearnable=[tau for tau in range(1, t + 1) if t - tau < self.age_of(tau)],
            requests=list(self.requests.get(t, [])) if enabled else [],
            just_permanent=[tau for tau in range(1, t + 1) if t - tau == self.age_of(tau)],
            unlearned=set(unlearned), enabled=enabled)


def task_seed(seed: int, task_id: int) -> int:
    """The random seed set at the start of every task of an unlearning run, so that a task draws the same random
    numbers (batch order, embeddings, buffer sampling) in the main run and in its references."""
    return seed * 10007 + task_id


# ----- task-wise parameter updates ----------------------------------------------------------------------------------
@dataclass
class StoredDelta:
    """One state-dict entry of a task's update: dense, or sparse as flat indices and values (used when at most half
    the entries are non-zero, which is where HAT froze the parameters)."""

    shape: torch.Size
    values: torch.Tensor
    indices: torch.Tensor | None = None  # None: `values` is the dense tensor

    @classmethod
    def from_dense(cls, delta: torch.Tensor) -> StoredDelta:
        flat = delta.reshape(-1)
        nonzero = flat.nonzero().squeeze(1)
        if 2 * len(nonzero) <= flat.numel():
            index_dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
            return cls(delta.shape, flat[nonzero].clone(), nonzero.to(index_dtype))
        return cls(delta.shape, delta.clone())

    def dense(self) -> torch.Tensor:
        if self.indices is None:
            return self.values
        out = self.values.new_zeros(self.shape.numel())
        out[self.indices.long()] = self.values
        return out.view(self.shape)

    def nbytes(self) -> int:
        size = self.values.numel() * self.values.element_size()
        return size + (0 if self.indices is None else self.indices.numel() * self.indices.element_size())


def prune_by_magnitude(delta: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the `ratio` share of the non-zero entries with the smallest magnitude (ties at the cut are kept)."""
    if ratio <= 0 or not delta.is_floating_point():
        return delta
    magnitude = delta.abs().reshape(-1)
    nonzero = magnitude[magnitude > 0]
    drop = int(ratio * nonzero.numel())
    if drop == 0:
        return delta
    cut = nonzero.kthvalue(drop).values
    return torch.where(delta.abs() > cut, delta, torch.zeros_like(delta))


class TaskUpdateStore:
    """Delta theta^(t) = theta_end - theta_start of every state-dict entry of the given modules, per task.

    `snapshot()` at the task start, `record(t)` at its end; `subtract(t)` removes the update from the live modules
    (theta <- theta - Delta theta^(t)) and drops it; `make_permanent(t)` folds a record that can no longer be
    unlearned into `base` (theta^(0) plus the permanent updates). Without pruning, base + the kept records equals
    the live parameters up to float rounding. `prune_ratio` > 0 drops the smallest-magnitude share of every stored
    entry (the dropped part then stays in the network when unlearning).
    """

    def __init__(self, modules: dict[str, nn.Module], prune_ratio: float = 0.0):
        if not 0 <= prune_ratio < 1:
            raise ValueError(f"update_prune_ratio must be in [0, 1), got {prune_ratio}")
        self.modules = modules
        self.prune_ratio = prune_ratio
        self.base = self._state()
        self.updates: dict[int, dict[str, dict[str, StoredDelta]]] = {}
        self._start = None
        self.peak_nbytes = self.peak_dense_nbytes = 0  # the largest the kept records grew during the run

    def _state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in self.modules.items()}

    def snapshot(self) -> None:
        self._start = self._state()

    def record(self, task_id: int) -> None:
        if self._start is None:
            raise RuntimeError("record() without snapshot() at the task start")
        now = self._state()
        self.updates[task_id] = {
            name: {k: StoredDelta.from_dense(prune_by_magnitude(now[name][k] - self._start[name][k], self.prune_ratio))
                   for k in now[name]} for name in now}
        self._start = None
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes())
        self.peak_dense_nbytes = max(self.peak_dense_nbytes, self.dense_nbytes())

    def delta(self, task_id: int) -> dict[str, dict[str, torch.Tensor]]:
        """The dense update of a task, module name -> state-dict key -> tensor."""
        return {name: {k: d.dense() for k, d in entries.items()} for name, entries in self.updates[task_id].items()}

    @torch.no_grad()
    def subtract(self, task_id: int) -> dict[str, dict[str, torch.Tensor]]:
        """theta <- theta - Delta theta^(task_id) on every entry of every module, then drop the record; returns the
        dense update it subtracted."""
        update = self.delta(task_id)
        for name, entries in update.items():
            state = self.modules[name].state_dict()
            for key, delta in entries.items():
                state[key].sub_(delta.to(state[key].dtype))
        self.drop(task_id)
        return update

    def drop(self, task_id: int) -> None:
        self.updates.pop(task_id, None)

    @torch.no_grad()
    def make_permanent(self, task_id: int) -> None:
        if task_id not in self.updates:
            return
        for name, entries in self.delta(task_id).items():
            for key, delta in entries.items():
                self.base[name][key].add_(delta.to(self.base[name][key].dtype))
        self.drop(task_id)

    def state_before(self, task_id: int, skip: set[int] = frozenset()) -> dict[str, dict[str, torch.Tensor]]:
        """base + the kept records of tasks before `task_id` (not in `skip`): the parameters just before that task
        was trained, without the updates of tasks unlearned since."""
        out = {name: {k: v.clone() for k, v in entries.items()} for name, entries in self.base.items()}
        for tau in sorted(self.updates):
            if tau < task_id and tau not in skip:
                for name, entries in self.delta(tau).items():
                    for key, delta in entries.items():
                        out[name][key].add_(delta.to(out[name][key].dtype))
        return out

    def nbytes(self) -> int:
        return sum(d.nbytes() for entries in self.updates.values() for e in entries.values() for d in e.values())

    def dense_nbytes(self) -> int:
        """What the same records would take stored densely (one full copy per task)."""
        return sum(d.shape.numel() * d.values.element_size()
                   for entries in self.updates.values() for e in entries.values() for d in e.values())

