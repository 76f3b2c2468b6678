"""Continual-learning metrics as pure functions (`docs/metrics.md`).

`acc` is the accuracy matrix as a list of rows: row t-1 holds a_{t,1..t}, the test accuracies on tasks 1..t after
training task t (fractions, per-sample). All metrics use the final row N = len(acc) and return fractions; tables
show them x100.
"""

from __future__ import annotations

import math


def _check(acc: list[list[float]]) -> int:
    n = len(acc)
    if n == 0 or any(len(row) != i + 1 for i, row in enumerate(acc)):
        raise ValueError("accuracy matrix must be lower-triangular: row t has t entries")
    return n


def average_accuracy(acc: list[list[float]]) -> float:
    """AA_N = (1/N) sum_j a_{N,j}."""
    if not acc or not acc[-1]:
        raise ValueError("accuracy matrix must be lower-triangular: it is empty")
    last = acc[-1]
    return sum(last) / len(last)


def backward_transfer(acc: list[list[float]]) -> float:
    """BWT_N = 1/(N-1) sum_{j<N} (a_{N,j} - a_{j,j}); negative means forgetting. NaN for N = 1."""
    n = _check(acc)
    if n < 2:
        return math.nan
    return sum(acc[-1][j] - acc[j][j] for j in range(n - 1)) / (n - 1)


def forward_transfer(acc: list[list[float]], independent_diag: list[float]) -> float:
    """FWT_N = 1/(N-1) sum_{j=2..N} (a_{j,j} - a^I_j), a^I_j = the Independent reference on task j after task j."""
    n = _check(acc)
    if n < 2:
        return math.nan
    if len(independent_diag) < n:
        raise ValueError(f"independent reference has {len(independent_diag)} tasks, need {n}")
    return sum(acc[j][j] - independent_diag[j] for j in range(1, n)) / (n - 1)


def forgetting_ratio(acc: list[list[float]], joint: list[float], random: list[float],
                     divisor: str = "n-1") -> float:
    """FR_N = (1/D) sum_{j=1..N} (a_{N,j} - a^R_j) / (a^J_j - a^R_j) - 1 with the Joint (a^J) and Random (a^R)
    references on all N tasks; 0 = as good as joint training, about -1 = chance level.

    D = N - 1 (`divisor="n-1"`, default) is the research notebook that produced the published FR values (it sums over
    all N tasks but divides by N - 1); D = N (`"n"`) is the reference library's own full evaluation.
    """
    last = acc[-1]
    n = len(last)
    if len(joint) < n or len(random) < n:
        raise ValueError(f"joint/random references need {n} tasks, got {len(joint)}/{len(random)}")
    if divisor not in ("n-1", "n"):
        raise ValueError(f"divisor must be 'n-1' or 'n', got {divisor!r}")
    if any(joint[j] == random[j] for j in range(n)):
        return math.nan  # a task where joint training is no better than chance: the ratio is undefined
    total = sum((last[j] - random[j]) / (joint[j] - random[j]) for j in range(n))
    return total / (n - 1 if divisor == "n-1" and n > 1 else n) - 1


def forgetting_ratio_independent(acc: list[list[float]], independent_diag: list[float],
                                 random: list[float]) -> float:
    """The research notebook's variant: FR with a^I_j (Independent after task j) in place of a^J_j, clipped at 0
    (the notebook divides by N - 1 as well)."""
    return min(0.0, forgetting_ratio(acc, independent_diag, random))


def diagonal(acc: list[list[float]]) -> list[float]:
    """a_{j,j}: accuracy on each task right after learning it."""
    return [row[i] for i, row in enumerate(acc)]


def all_metrics(acc, joint=None, independent=None, random=None) -> dict[str, float | None]:
    """AA and BWT always; FWT with the Independent matrix; FR (published N - 1 divisor) and FR with the library's
    1/N divisor with the Joint and Random rows; None where a reference is missing."""
    out = {"aa": average_accuracy(acc), "bwt": backward_transfer(acc), "fwt": None, "fr": None, "fr_1_over_n": None,
           "fr_independent": None}
    if independent is not None:
        out["fwt"] = forward_transfer(acc, diagonal(independent))
    if joint is not None and random is not None:
        out["fr"] = forgetting_ratio(acc, joint[-1], random[-1])
        out["fr_1_over_n"] = forgetting_ratio(acc, joint[-1], random[-1], divisor="n")
    if independent is not None and random is not None:
        out["fr_independent"] = forgetting_ratio_independent(acc, diagonal(independent), random[-1])
    return out
