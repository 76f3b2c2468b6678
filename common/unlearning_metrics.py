"""Continual-unlearning metrics as pure functions (`docs/metrics.md#dd`, `#ag`).

Tensors in, Python floats out; everything is computed in float64.

* DD (distribution distance): the features of the same test samples, in the same order, from the main (unlearned)
  model and from the reference retrain (a run that never saw the unlearned tasks), compared per test batch and averaged
  over batches; reported per task and averaged over the unlearned tasks. Lower = closer to "never learned".
* AG (accuracy gain): acc_main(tau) - acc_original(tau) against the reference original (the same run without
  unlearning), averaged over the remaining (never-unlearned) tasks (the paper's AGR).
* AA on the remaining tasks: the main run's final accuracies averaged over the remaining tasks only.

Accuracy rows are either a dict {task id: accuracy} or a list indexed by task id - 1 (the last row of an accuracy
matrix, `common.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch

DISTANCE_KINDS = ("cka", "euclidean", "cosine", "manhattan")

# A centred feature matrix whose Frobenius norm is at most this share of the uncentred one counts as constant
# (centring a constant column in floating point leaves rounding noise, not exact zeros).
_CONSTANT_RTOL = 1e-10


def _as_matrix(x: torch.Tensor, name: str) -> torch.Tensor:
    """(n, ...) -> (n, d) float64; the trailing dimensions are flattened."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError(f"{name} must be a tensor of shape (n, d)")
    x = x.detach().to(dtype=torch.float64)
    return x.reshape(x.shape[0], -1)


def _centre(x: torch.Tensor) -> torch.Tensor | None:
    """Subtract the column means; None when the matrix is constant over the batch (nothing left after centring)."""
    xc = x - x.mean(dim=0, keepdim=True)
    if torch.linalg.matrix_norm(xc) <= _CONSTANT_RTOL * torch.linalg.matrix_norm(x):
        return None
    return xc


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two feature matrices of the same n samples, x: (n, d1), y: (n, d2):

        X = x - mean_rows(x),  Y = y - mean_rows(y)   (each feature centred over the batch)
        CKA = ||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)   in [0, 1]

    Invariant to orthogonal transforms and isotropic scaling of either matrix; 1 for identical features.
    Degenerate case: when either matrix is constant over the batch (every sample has the same feature vector, so the
    centred matrix and the denominator are zero) the similarity is undefined; it is defined here as 0.0, i.e. a
    constant representation shares no structure with anything, itself included (distance 1). Needs n >= 2.
    """
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same samples, got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < 2:
        raise ValueError(f"linear CKA needs at least 2 samples, got {x.shape[0]}")
    xc, yc = _centre(x), _centre(y)
    if xc is None or yc is None:
        return 0.0
    cross = torch.linalg.matrix_norm(xc.T @ yc) ** 2
    denom = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return float(min(1.0, max(0.0, (cross / denom).item())))


def feature_distance(x: torch.Tensor, y: torch.Tensor, kind: str = "cka") -> float:
    """Distance between the features of the same n samples from two models, x and y: (n, d) (rows paired):

        cka:        1 - linear_cka(x, y)                      (d may differ between x and y)
        euclidean:  (1/n) sum_i ||x_i - y_i||_2
        cosine:     (1/n) sum_i (1 - x_i.y_i / (||x_i|| ||y_i||))   (cosine similarity 0 when a vector is zero)
        manhattan:  (1/n) sum_i ||x_i - y_i||_1
    """
    if kind not in DISTANCE_KINDS:
        raise ValueError(f"unknown distance kind {kind!r}; choose one of {', '.join(DISTANCE_KINDS)}")
    if kind == "cka":
        return 1.0 - linear_cka(x, y)
    x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape for {kind} distance, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("no samples to compare")
    if kind == "euclidean":
        per_sample = torch.linalg.vector_norm(x - y, ord=2, dim=1)
    elif kind == "manhattan":
        per_sample = torch.linalg.vector_norm(x - y, ord=1, dim=1)
    else:
        norms = torch.linalg.vector_norm(x, dim=1) * torch.linalg.vector_norm(y, dim=1)
        dots = (x * y).sum(dim=1)
        cos = torch.where(norms > 0, dots / torch.where(norms > 0, norms, torch.ones_like(norms)),
                          torch.zeros_like(norms))
        per_sample = 1.0 - cos.clamp(-1.0, 1.0)
    return float(per_sample.mean().item())


def distribution_distance(main: torch.Tensor, ref: torch.Tensor, batch_size: int, kind: str = "cka") -> float:
    """DD on one task's test set: main and ref are the features of the same test samples in the same order, (n, d).

    The samples are split into consecutive batches of `batch_size` (the training batch size: the reference code
    computes the distance per test batch, which matters for CKA), and

        DD = (1/B) sum_b feature_distance(main_b, ref_b, kind)

    an unweighted mean over the B batches. A final batch of fewer than 2 samples is left out (CKA needs 2), for every
    kind so that the kinds see the same batches. NaN when no batch is left (n < 2).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if kind not in DISTANCE_KINDS:
        raise ValueError(f"unknown distance kind {kind!r}; choose one of {', '.join(DISTANCE_KINDS)}")
    if main.shape[0] != ref.shape[0]:
        raise ValueError(f"main and ref must hold the same samples, got {main.shape[0]} and {ref.shape[0]} rows")
    n = main.shape[0]
    values = [feature_distance(main[i:i + batch_size], ref[i:i + batch_size], kind)
              for i in range(0, n, batch_size) if min(batch_size, n - i) >= 2]
    return sum(values) / len(values) if values else math.nan


def dd_per_task(main_feats: Mapping[int, torch.Tensor], ref_feats: Mapping[int, torch.Tensor], batch_size: int,
                kind: str = "cka") -> dict[int, float]:
    """DD_tau = distribution_distance(main_feats[tau], ref_feats[tau]) for every task tau of `main_feats` (each the
    features of task tau's test set), in task order. Every task of `main_feats` must be in `ref_feats`."""
    missing = sorted(set(main_feats) - set(ref_feats))
    if missing:
        raise ValueError(f"reference features missing for tasks {missing}")
    return {t: distribution_distance(main_feats[t], ref_feats[t], batch_size, kind) for t in sorted(main_feats)}


def average_over(per_task: Mapping[int, float], tasks: Iterable[int]) -> float:
    """(1/|T|) sum_{tau in T} per_task[tau], T = the given tasks present in `per_task` (e.g. DD over the unlearned
    tasks). NaN when T is empty."""
    values = [per_task[t] for t in tasks if t in per_task]
    return sum(values) / len(values) if values else math.nan


def _row(row: Mapping[int, float] | Sequence[float], name: str) -> dict[int, float]:
    """A dict row as it is; a list row [a_1, ..., a_N] becomes {1: a_1, ..., N: a_N} (index = task id - 1)."""
    if isinstance(row, Mapping):
        return {int(t): float(a) for t, a in row.items()}
    if isinstance(row, Sequence) and not isinstance(row, str):
        return {i + 1: float(a) for i, a in enumerate(row)}
    raise ValueError(f"{name} must be a dict {{task id: accuracy}} or a list indexed by task id - 1")


def _require(row: dict[int, float], tasks: list[int], name: str) -> None:
    missing = [t for t in tasks if t not in row]
    if missing:
        raise ValueError(f"{name} has no accuracy for tasks {missing}")


def accuracy_gain(main_final_row: Mapping[int, float] | Sequence[float],
                  original_final_row: Mapping[int, float] | Sequence[float],
                  tasks: Iterable[int]) -> tuple[dict[int, float], float]:
    """AG_tau = acc_main(tau) - acc_original(tau), with the final accuracies of the main run and of the reference
    original (the same run without unlearning).

    Returns (AG_tau for every task in both rows, in task order; (1/|T|) sum_{tau in T} AG_tau), T = `tasks`, the
    remaining (never-unlearned) tasks. Every task of T must be in both rows; the mean is NaN when T is empty.
    Rows are dicts {task id: accuracy} or lists indexed by task id - 1.
    """
    main, original = _row(main_final_row, "main_final_row"), _row(original_final_row, "original_final_row")
    tasks = list(tasks)
    _require(main, tasks, "main_final_row")
    _require(original, tasks, "original_final_row")
    per_task = {t: main[t] - original[t] for t in sorted(set(main) & set(original))}
    return per_task, average_over(per_task, tasks)


def remaining_accuracy(final_row: Mapping[int, float] | Sequence[float], tasks: Iterable[int]) -> float:
    """AA on the remaining tasks: (1/|T|) sum_{tau in T} a_{N,tau}, T = `tasks`. Every task of T must be in the row;
    NaN when T is empty. The row is a dict {task id: accuracy} or a list indexed by task id - 1."""
    row = _row(final_row, "final_row")
    tasks = list(tasks)
    _require(row, tasks, "final_row")
    return average_over(row, tasks)
