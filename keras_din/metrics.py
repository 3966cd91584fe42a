"""Ranking metrics of the DIN paper: AUC, GAUC and RelaImpr (NumPy only)."""

import numpy as np

__all__ = ["auc", "gauc", "rela_impr"]


def _as_vectors(labels, scores):
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(
            "`labels` and `scores` must have the same number of entries. "
            f"Received: {labels.shape[0]} labels and {scores.shape[0]} scores"
        )
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            "`scores` must be finite. "
            f"Received: {int(bad.sum())} NaN or infinite of {scores.size} scores"
        )
    if labels.dtype != bool:
        not_binary = (labels != 0) & (labels != 1)
        if not_binary.any():
            raise ValueError(
                "`labels` must be 0 or 1 (or booleans). "
                f"Received: {int(not_binary.sum())} of {labels.size} labels are "
                f"neither, such as {labels[not_binary][0].item()!r}"
            )
    return labels.astype(bool), scores


def _auc(labels, scores):
    """Mann-Whitney AUC with average ranks for ties; NaN without both classes."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype="float64")
    # Average the 1-based ranks over each run of tied scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def auc(labels, scores):
    """Area under the ROC curve over all samples.

    The probability that a random positive sample is scored above a random
    negative one, ties counting one half (the Mann-Whitney U statistic).

    Args:
        labels: array-like of 0/1 (or booleans), any shape.
        scores: array-like of floats, the same number of entries.

    Returns:
        A Python float in `[0, 1]`.

    Raises:
        ValueError: if the sizes differ, the labels hold only one class or
            values other than 0 and 1, or a score is NaN or infinite.

    Examples:

        >>> auc([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.6])
        0.75
    """
    labels, scores = _as_vectors(labels, scores)
    value = _auc(labels, scores)
    if np.isnan(value):
        raise ValueError(
            "AUC needs both positive and negative labels. "
            f"Received: {int(labels.sum())} positives out of {labels.size}"
        )
    return value


def gauc(users, labels, scores, return_count=False):
    """Group AUC: the per-user AUC averaged with impression weights.

    `GAUC = sum_u n_u * AUC_u / sum_u n_u`, where `AUC_u` is the AUC over the
    samples of user `u` and `n_u` their number (impressions). Users whose
    samples are all positive or all negative have no AUC and are left out,
    as in the DIN paper (section 5.3).

    Args:
        users: array-like of user ids (any hashable dtype), one per sample.
        labels: array-like of 0/1, one per sample.
        scores: array-like of floats, one per sample.
        return_count: bool. Whether to also return the number of users that
            entered the average. Defaults to `False`.

    Returns:
        A Python float, or `(gauc, num_users)` with `return_count=True`.

    Raises:
        ValueError: if the sizes differ or no user has both classes.

    Examples:

        >>> users = [1, 1, 1, 2, 2]
        >>> gauc(users, [1, 0, 0, 1, 0], [0.9, 0.2, 0.95, 0.1, 0.3])
        0.3
    """
    labels, scores = _as_vectors(labels, scores)
    users = np.asarray(users).reshape(-1)
    if users.shape != labels.shape:
        raise ValueError(
            "`users` must have one entry per sample. "
            f"Received: {users.shape[0]} users and {labels.shape[0]} samples"
        )
    order = np.argsort(users, kind="mergesort")
    users, labels, scores = users[order], labels[order], scores[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], users.size]
    total, weight, count = 0.0, 0, 0
    for start, end in zip(starts, ends, strict=True):
        value = _auc(labels[start:end], scores[start:end])
        if not np.isnan(value):
            total += (end - start) * value
            weight += end - start
            count += 1
    if count == 0:
        raise ValueError(
            "GAUC needs at least one user with both positive and negative "
            f"labels. Received: {starts.size} users, none with both"
        )
    value = float(total / weight)
    return (value, count) if return_count else value


def rela_impr(model_auc, base_auc):
    """Relative improvement of a model's AUC over a base model's (DIN paper).

    `RelaImpr = (AUC(model) - 0.5) / (AUC(base) - 0.5) - 1`: how much more of
    the distance above a random guess the model covers. Works the same for
    GAUC values.

    Args:
        model_auc: float. The measured model's AUC (or GAUC).
        base_auc: float. The base model's AUC (or GAUC), above 0.5.

    Returns:
        A Python float; `0.1` means 10 % better than the base model.

    Examples:

        >>> round(rela_impr(0.66, 0.6), 6)
        0.6
    """
    if not base_auc > 0.5:
        raise ValueError(
            "RelaImpr needs a base AUC above 0.5 (better than random). "
            f"Received: base_auc={base_auc}"
        )
    return float((model_auc - 0.5) / (base_auc - 0.5) - 1.0)
