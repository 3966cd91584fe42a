"""AUC, GAUC and RelaImpr against hand computations."""

import itertools

import numpy as np
import pytest

from keras_din import metrics


def pairwise_auc(labels, scores):
    """The definition: P(score(pos) > score(neg)), ties counting one half."""
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for (p, lp), (n, ln) in itertools.product(
            zip(scores, labels, strict=True), repeat=2
        )
        if lp == 1 and ln == 0
    ]
    return sum(pairs) / len(pairs)


def test_auc_matches_the_pairwise_definition_with_ties(rng):
    labels = rng.integers(0, 2, size=60)
    scores = rng.integers(0, 6, size=60) / 5.0  # many ties
    assert metrics.auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))


def test_auc_extremes():
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert metrics.auc([0, 1], [0.5, 0.5]) == 0.5


def test_gauc_weights_users_by_impressions():
    # User "a": 4 impressions; positives 0.8 and 0.3 against negatives 0.5
    # and 0.1: 3 of the 4 pairs in order, AUC 0.75.
    # User "b": 2 impressions, the positive scored below the negative: AUC 0.
    # User "c": only positives, no AUC, left out.
    users = ["a", "b", "a", "c", "a", "b", "a", "c"]
    labels = [1, 1, 0, 1, 1, 0, 0, 1]
    scores = [0.8, 0.2, 0.5, 0.9, 0.3, 0.7, 0.1, 0.4]
    expected = (4 * 0.75 + 2 * 0.0) / (4 + 2)
    assert metrics.gauc(users, labels, scores) == pytest.approx(expected)
    value, count = metrics.gauc(users, labels, scores, return_count=True)
    assert count == 2 and value == pytest.approx(expected)
    # Not the plain mean of the per-user AUCs, nor the global AUC.
    assert expected != pytest.approx((0.75 + 0.0) / 2)
    assert expected != pytest.approx(metrics.auc(labels, scores))


def test_gauc_equals_auc_for_one_user(rng):
    labels = rng.integers(0, 2, size=50)
    scores = rng.random(50)
    assert metrics.gauc(np.zeros(50), labels, scores) == pytest.approx(
        metrics.auc(labels, scores)
    )


def test_rela_impr():
    assert metrics.rela_impr(0.66, 0.6) == pytest.approx(0.6)
    assert metrics.rela_impr(0.6, 0.6) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="both positive and negative"):
        metrics.auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="same number"):
        metrics.auc([1, 0, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="no user|none with both"):
        metrics.gauc([1, 2], [1, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="one entry per sample"):
        metrics.gauc([1], [1, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="above 0.5"):
        metrics.rela_impr(0.7, 0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_scores_are_rejected(bad):
    scores = [0.1, bad, 0.4, bad]
    with pytest.raises(
        ValueError, match="`scores` must be finite.*2 NaN or infinite of 4"
    ):
        metrics.auc([0, 1, 1, 0], scores)
    with pytest.raises(ValueError, match="`scores` must be finite"):
        metrics.gauc([1, 1, 2, 2], [0, 1, 1, 0], scores)


def test_labels_other_than_zero_and_one_are_rejected():
    with pytest.raises(
        ValueError,
        match="`labels` must be 0 or 1.*1 of 4 labels are neither, such as 2$",
    ):
        metrics.auc([0, 1, 2, 0], [0.1, 0.9, 0.4, 0.6])
    with pytest.raises(ValueError, match="`labels` must be 0 or 1"):
        metrics.gauc([1, 1, 2, 2], [0, 1, 0.5, 1], [0.1, 0.9, 0.4, 0.6])
    # Booleans and 0/1 floats are labels.
    assert metrics.auc([False, True], [0.1, 0.9]) == 1.0
    assert metrics.auc([0.0, 1.0], [0.1, 0.9]) == 1.0
