"""common.unlearning_metrics against hand-computed values (spec/experiments.md §3 "Continual-unlearning metrics")."""

import math

import pytest
import torch

from common import unlearning_metrics as um


def _orthogonal(d: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # a proper random orthogonal matrix


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ---- linear CKA ----

def test_cka_identical_features_is_one(gen):
    x = torch.randn(16, 6, generator=gen)
    assert um.linear_cka(x, x) == pytest.approx(1.0)


def test_cka_hand_example():
    # x = [0, 1, 2]^T -> centred X = [-1, 0, 1]^T.
    # y = [[1, 0], [0, 1], [2, 2]], column means (1, 1) -> centred Y = [[0, -1], [-1, 0], [1, 1]].
    # X^T Y = [0 + 0 + 1, 1 + 0 + 1] = [1, 2]           -> ||X^T Y||_F^2 = 5
    # X^T X = [2]                                       -> ||X^T X||_F = 2
    # Y^T Y = [[2, 1], [1, 2]]                          -> ||Y^T Y||_F = sqrt(4 + 1 + 1 + 4) = sqrt(10)
    # CKA = 5 / (2 sqrt(10)) = sqrt(10) / 4 = 0.790569...
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    assert um.linear_cka(x, y) == pytest.approx(math.sqrt(10) / 4, abs=1e-12)
    assert um.linear_cka(y, x) == pytest.approx(math.sqrt(10) / 4, abs=1e-12)  # symmetric
    assert um.feature_distance(x, y, "cka") == pytest.approx(1 - math.sqrt(10) / 4, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling(gen):
    x = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 5, generator=gen, dtype=torch.float64) + 0.5 * x  # related but not identical
    base = um.linear_cka(x, y)
    assert 0.05 < base < 0.95  # a non-trivial value, so the invariances below are not vacuous
    q, r = _orthogonal(5, gen), _orthogonal(5, gen)
    assert um.linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert um.linear_cka(x @ q, y @ r) == pytest.approx(base, abs=1e-10)
    assert um.linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    assert um.linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    # A translation of either matrix is removed by centring.
    assert um.linear_cka(x + 5.0, y - 2.0) == pytest.approx(base, abs=1e-10)
    # ... but a non-isotropic scaling does change it.
    assert um.linear_cka(x * torch.tensor([10.0, 1, 1, 1, 1], dtype=torch.float64), y) != pytest.approx(base, abs=1e-3)


def test_cka_constant_features_are_degenerate():
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]])
    const = torch.full((3, 2), 0.1)  # centring 0.1s leaves rounding noise, still counted as constant
    assert um.linear_cka(x, const) == 0.0
    assert um.linear_cka(const, const) == 0.0
    assert um.feature_distance(const, x, "cka") == 1.0


def test_cka_needs_two_samples_and_paired_rows():
    with pytest.raises(ValueError, match="at least 2"):
        um.linear_cka(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="same samples"):
        um.linear_cka(torch.ones(3, 3), torch.ones(4, 3))


# ---- feature distances ----

@pytest.mark.parametrize("kind", um.DISTANCE_KINDS)
def test_distance_of_identical_features_is_zero(kind, gen):
    x = torch.randn(10, 4, generator=gen)
    assert um.feature_distance(x, x.clone(), kind) == pytest.approx(0.0, abs=1e-12)


def test_pointwise_distances_hand_example():
    # sample 1: x = (1, 0), y = (0, 1); difference (1, -1): L2 sqrt(2), L1 2; cosine 0 -> 1 - 0 = 1
    # sample 2: x = (3, 4), y = (3, 0); difference (0, 4): L2 4,       L1 4; cosine 9 / (5 * 3) = 0.6 -> 0.4
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    assert um.feature_distance(x, y, "euclidean") == pytest.approx((math.sqrt(2) + 4) / 2)
    assert um.feature_distance(x, y, "manhattan") == pytest.approx((2 + 4) / 2)
    assert um.feature_distance(x, y, "cosine") == pytest.approx((1 + 0.4) / 2)


def test_cosine_with_a_zero_vector_has_similarity_zero():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[1.0, 2.0], [-1.0, -1.0]])
    # sample 1: zero vector -> similarity 0 -> 1; sample 2: opposite -> 1 - (-1) = 2
    assert um.feature_distance(x, y, "cosine") == pytest.approx(1.5)


def test_unknown_kind_raises_naming_the_kinds():
    x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="cka, euclidean, cosine, manhattan"):
        um.feature_distance(x, x, "chebyshev")
    with pytest.raises(ValueError, match="chebyshev"):
        um.distribution_distance(x, x, 2, kind="chebyshev")


# ---- batched distribution distance ----

@pytest.mark.parametrize("kind", um.DISTANCE_KINDS)
def test_batch_at_least_n_is_the_single_batch_value(kind, gen):
    main = torch.randn(7, 3, generator=gen)
    ref = torch.randn(7, 3, generator=gen)
    single = um.feature_distance(main, ref, kind)
    assert um.distribution_distance(main, ref, 7, kind) == pytest.approx(single)
    assert um.distribution_distance(main, ref, 100, kind) == pytest.approx(single)


def test_batches_are_averaged_unweighted(gen):
    main = torch.randn(10, 3, generator=gen)
    ref = torch.randn(10, 3, generator=gen)
    # batch size 4 -> batches [0:4], [4:8], [8:10]; the last (2 samples) counts as much as the others
    expected = sum(um.feature_distance(main[a:b], ref[a:b], "cka") for a, b in ((0, 4), (4, 8), (8, 10))) / 3
    assert um.distribution_distance(main, ref, 4) == pytest.approx(expected)
    assert expected != pytest.approx(um.feature_distance(main, ref, "cka"))  # batching matters for CKA


@pytest.mark.parametrize("kind", um.DISTANCE_KINDS)
def test_last_batch_of_one_sample_is_left_out(kind, gen):
    main = torch.randn(5, 3, generator=gen)
    ref = main.clone()
    ref[4] = torch.tensor([100.0, -50.0, 3.0])  # only the 5th sample differs; it alone forms the last batch
    assert um.distribution_distance(main, ref, 2, kind) == pytest.approx(0.0, abs=1e-12)
    assert um.distribution_distance(main, ref, 5, kind) > 0.01  # it does count when it shares a batch


def test_no_batch_left_gives_nan():
    assert math.isnan(um.distribution_distance(torch.ones(1, 3), torch.ones(1, 3), 4))


def test_dd_per_task_and_average_over(gen):
    a = torch.randn(6, 3, generator=gen)
    b = torch.randn(6, 3, generator=gen)
    main = {2: a, 1: a}
    ref = {1: a.clone(), 2: b, 3: b}
    dd = um.dd_per_task(main, ref, 3, "euclidean")
    assert list(dd) == [1, 2]
    assert dd[1] == pytest.approx(0.0)
    assert dd[2] == pytest.approx(um.distribution_distance(a, b, 3, "euclidean"))
    assert um.average_over(dd, [1, 2]) == pytest.approx(dd[2] / 2)
    assert um.average_over(dd, [2, 5]) == pytest.approx(dd[2])  # absent tasks are skipped
    assert math.isnan(um.average_over(dd, []))
    assert math.isnan(um.average_over(dd, [7]))
    with pytest.raises(ValueError, match=r"\[4\]"):
        um.dd_per_task({4: a}, ref, 3)


# ---- accuracy gain and remaining accuracy ----

MAIN_ROW = [0.9, 0.5, 0.8, 0.7]                       # list form: index = task id - 1
ORIGINAL_ROW = {1: 0.95, 2: 0.6, 3: 0.7, 4: 0.75}     # dict form


def test_accuracy_gain_of_a_run_with_itself_is_zero():
    per_task, mean = um.accuracy_gain(MAIN_ROW, MAIN_ROW, [3, 4])
    assert per_task == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}
    assert mean == 0.0


def test_accuracy_gain_hand_example():
    # AG_1 = 0.9 - 0.95 = -0.05, AG_2 = 0.5 - 0.6 = -0.1, AG_3 = 0.8 - 0.7 = 0.1, AG_4 = 0.7 - 0.75 = -0.05
    # AGR over the remaining tasks {3, 4} = (0.1 - 0.05) / 2 = 0.025
    per_task, mean = um.accuracy_gain(MAIN_ROW, ORIGINAL_ROW, [3, 4])
    assert per_task == pytest.approx({1: -0.05, 2: -0.1, 3: 0.1, 4: -0.05})
    assert mean == pytest.approx(0.025)
    _, swapped = um.accuracy_gain(ORIGINAL_ROW, MAIN_ROW, [3, 4])
    assert swapped == pytest.approx(-0.025)
    assert math.isnan(um.accuracy_gain(MAIN_ROW, ORIGINAL_ROW, [])[1])
    with pytest.raises(ValueError, match=r"\[5\]"):
        um.accuracy_gain(MAIN_ROW, ORIGINAL_ROW, [3, 5])


def test_remaining_accuracy_hand_example():
    # tasks 3, 4: (0.8 + 0.7) / 2 = 0.75; all four tasks: (0.9 + 0.5 + 0.8 + 0.7) / 4 = 0.725
    assert um.remaining_accuracy(MAIN_ROW, [3, 4]) == pytest.approx(0.75)
    assert um.remaining_accuracy(ORIGINAL_ROW, (3, 4)) == pytest.approx(0.725)
    assert um.remaining_accuracy(MAIN_ROW, range(1, 5)) == pytest.approx(0.725)
    assert math.isnan(um.remaining_accuracy(MAIN_ROW, []))
    with pytest.raises(ValueError, match=r"\[6\]"):
        um.remaining_accuracy(MAIN_ROW, [3, 6])
