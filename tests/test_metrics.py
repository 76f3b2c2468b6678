"""common.metrics against hand-computed values on small accuracy matrices (spec/experiments.md §3)."""

import math

import pytest

from common import metrics

# The main run's lower-triangular accuracy matrix, N = 3:
#   after task 1: a11 = 0.9
#   after task 2: a21 = 0.6, a22 = 0.8
#   after task 3: a31 = 0.5, a32 = 0.5, a33 = 0.8
ACC = [[0.9], [0.6, 0.8], [0.5, 0.5, 0.8]]

# Independent reference (its own lower-triangular matrix); only its diagonal a^I_j = 0.9, 0.8, 1.0 matters.
INDEPENDENT = [[0.9], [0.7, 0.8], [0.3, 0.4, 1.0]]
# Joint and Random references: a single row over all N tasks.
JOINT = [[0.9, 0.8, 1.0]]
RANDOM = [[0.1, 0.2, 0.0]]


def test_average_accuracy():
    # AA_3 = (0.5 + 0.5 + 0.8) / 3 = 1.8 / 3 = 0.6
    assert metrics.average_accuracy(ACC) == pytest.approx(0.6)


def test_backward_transfer():
    # BWT_3 = ((a31 - a11) + (a32 - a22)) / 2 = ((0.5 - 0.9) + (0.5 - 0.8)) / 2 = (-0.4 - 0.3) / 2 = -0.35
    assert metrics.backward_transfer(ACC) == pytest.approx(-0.35)


def test_backward_transfer_no_forgetting_is_zero():
    # every column constant down the rows -> a_{N,j} = a_{j,j} -> BWT = 0
    assert metrics.backward_transfer([[0.7], [0.7, 0.4], [0.7, 0.4, 0.9]]) == pytest.approx(0.0)


def test_forward_transfer_uses_independent_diagonal():
    # a^I diagonal = (0.9, 0.8, 1.0); FWT_3 = ((a22 - a^I_2) + (a33 - a^I_3)) / 2 = ((0.8 - 0.8) + (0.8 - 1.0)) / 2
    #                                        = -0.2 / 2 = -0.1   (task 1 is not part of FWT)
    assert metrics.diagonal(INDEPENDENT) == [0.9, 0.8, 1.0]
    assert metrics.forward_transfer(ACC, metrics.diagonal(INDEPENDENT)) == pytest.approx(-0.1)
    # a different a^I_1 changes nothing; the off-diagonal entries of the independent matrix are never used
    assert metrics.forward_transfer(ACC, [0.1, 0.8, 1.0]) == pytest.approx(-0.1)
    # a^I_2 = 0.6, a^I_3 = 0.6: ((0.8 - 0.6) + (0.8 - 0.6)) / 2 = 0.2
    assert metrics.forward_transfer(ACC, [0.9, 0.6, 0.6]) == pytest.approx(0.2)


def test_forgetting_ratio():
    # per task (a3j - aRj) / (aJj - aRj): (0.5-0.1)/(0.9-0.1) = 0.5; (0.5-0.2)/(0.8-0.2) = 0.5; (0.8-0)/(1.0-0) = 0.8
    # library (1/N): FR = (0.5 + 0.5 + 0.8) / 3 - 1 = 0.6 - 1 = -0.4
    assert metrics.forgetting_ratio(ACC, JOINT[-1], RANDOM[-1], divisor="n") == pytest.approx(-0.4)
    # published notebook (1/(N-1), default): FR = 1.8 / 2 - 1 = -0.1
    assert metrics.forgetting_ratio(ACC, JOINT[-1], RANDOM[-1]) == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        metrics.forgetting_ratio(ACC, JOINT[-1], RANDOM[-1], divisor="n+1")


def test_forgetting_ratio_is_zero_at_joint_and_minus_one_at_random():
    joint, random = JOINT[-1], RANDOM[-1]
    at_joint = [[0.9], [0.9, 0.8], list(joint)]  # final row = joint row -> every ratio is 1 -> FR = 1 - 1 = 0
    at_random = [[0.9], [0.9, 0.8], list(random)]  # final row = random row -> every ratio is 0 -> FR = 0 - 1 = -1
    assert metrics.forgetting_ratio(at_joint, joint, random, divisor="n") == pytest.approx(0.0)
    assert metrics.forgetting_ratio(at_random, joint, random, divisor="n") == pytest.approx(-1.0)
    # the notebook's 1/(N-1): 3 / 2 - 1 = 0.5 at the joint row, 0 / 2 - 1 = -1 at the random row
    assert metrics.forgetting_ratio(at_joint, joint, random) == pytest.approx(0.5)
    assert metrics.forgetting_ratio(at_random, joint, random) == pytest.approx(-1.0)


def test_forgetting_ratio_needs_references_on_every_task():
    with pytest.raises(ValueError):
        metrics.forgetting_ratio(ACC, [0.9, 0.8], [0.1, 0.2, 0.0])
    with pytest.raises(ValueError):
        metrics.forgetting_ratio(ACC, [0.9, 0.8, 1.0], [0.1])


def test_fr_independent_clipped_at_zero():
    random = RANDOM[-1]
    # a^I = (0.9, 0.8, 1.0): same ratios as with the joint row above -> 1.8 / 2 - 1 = -0.1, not clipped
    assert metrics.forgetting_ratio_independent(ACC, [0.9, 0.8, 1.0], random) == pytest.approx(-0.1)
    # a^I = (0.9, 0.8, 0.2): ratios 0.5, 0.5, (0.8-0)/(0.2-0) = 4.0 -> sum 5 -> FR = 5/2 - 1 = 1.5 > 0 -> clipped to 0
    assert metrics.forgetting_ratio(ACC, [0.9, 0.8, 0.2], random) == pytest.approx(1.5)
    assert metrics.forgetting_ratio_independent(ACC, [0.9, 0.8, 0.2], random) == 0.0


NOT_TRIANGULAR = [
    [],                              # no rows
    [[0.9], [0.8]],                  # row 2 has 1 entry
    [[0.9, 0.1], [0.8, 0.7]],        # row 1 has 2 entries
    [[0.9], [0.8, 0.7], [0.5, 0.5]],  # row 3 has 2 entries
]


@pytest.mark.parametrize("bad", NOT_TRIANGULAR)
def test_lower_triangular_check(bad):
    with pytest.raises(ValueError, match="lower-triangular"):
        metrics.backward_transfer(bad)
    with pytest.raises(ValueError, match="lower-triangular"):
        metrics.forward_transfer(bad, [0.9, 0.9, 0.9])


@pytest.mark.parametrize("bad", [
    NOT_TRIANGULAR[0],
    *NOT_TRIANGULAR[1:],
])
def test_all_metrics_rejects_non_triangular(bad):
    with pytest.raises(ValueError, match="lower-triangular"):
        metrics.all_metrics(bad)


def test_single_task_bwt_fwt_are_nan():
    assert math.isnan(metrics.backward_transfer([[0.7]]))
    assert math.isnan(metrics.forward_transfer([[0.7]], [0.8]))
    assert metrics.average_accuracy([[0.7]]) == pytest.approx(0.7)


def test_forward_transfer_needs_independent_on_every_task():
    with pytest.raises(ValueError):
        metrics.forward_transfer(ACC, [0.9, 0.8])


def test_all_metrics_with_every_reference():
    out = metrics.all_metrics(ACC, joint=JOINT, independent=INDEPENDENT, random=RANDOM)
    assert set(out) == {"aa", "bwt", "fwt", "fr", "fr_1_over_n", "fr_independent"}
    assert out["aa"] == pytest.approx(0.6)
    assert out["bwt"] == pytest.approx(-0.35)
    assert out["fwt"] == pytest.approx(-0.1)
    assert out["fr"] == pytest.approx(-0.1)
    assert out["fr_1_over_n"] == pytest.approx(-0.4)
    # independent diagonal (0.9, 0.8, 1.0) equals the joint row here -> -0.1, not clipped
    assert out["fr_independent"] == pytest.approx(-0.1)


def test_all_metrics_none_where_references_are_missing():
    out = metrics.all_metrics(ACC)
    assert out["aa"] == pytest.approx(0.6) and out["bwt"] == pytest.approx(-0.35)
    assert out["fwt"] is None and out["fr"] is None and out["fr_independent"] is None

    only_independent = metrics.all_metrics(ACC, independent=INDEPENDENT)
    assert only_independent["fwt"] == pytest.approx(-0.1)
    assert only_independent["fr"] is None and only_independent["fr_independent"] is None

    no_random = metrics.all_metrics(ACC, joint=JOINT, independent=INDEPENDENT)
    assert no_random["fr"] is None and no_random["fr_independent"] is None
    assert no_random["fwt"] == pytest.approx(-0.1)

    no_joint = metrics.all_metrics(ACC, independent=INDEPENDENT, random=RANDOM)
    assert no_joint["fr"] is None
    assert no_joint["fr_independent"] == pytest.approx(-0.1)
