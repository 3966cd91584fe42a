"""Top-k retrieval of behaviours, for the search-based interest layers.

Every function takes a history of `T` positions per row, oldest first, and
keeps at most `k` of them per candidate. The padding is never kept; a
history with fewer than `k` eligible behaviours keeps them all; among equal
scores the most recent behaviour is kept first. The backends' `top_k` do not
agree on ties (torch's keeps no particular one), so the rule is enforced by
ranking unique integer keys: `position + 1` for the kept, 0 for the others.
"""

import math

from keras import ops

from keras_din.layers._backend import largest
from keras_din.layers._masking import count_at_or_after


def latest(eligible, k):
    """The `k` most recent eligible positions of each row.

    Args:
        eligible: boolean `(B, C, T)`.
        k: int.

    Returns:
        `(positions, kept)`: int32 `(B, C, k)` positions, most recent first,
        and whether each is kept (false beyond the eligible ones, where the
        position is 0).
    """
    return _latest_of_padded(_pad(eligible, k, False), k)


def _latest_of_padded(eligible, k):
    """`latest` of `eligible` already padded with `k` positions more."""
    order = ops.arange(1, ops.shape(eligible)[-1] + 1, dtype="int32")
    key = largest(ops.where(eligible, order, 0), k)
    kept = key > 0
    return ops.where(kept, key - 1, 0), kept


def highest(scores, valid, k):
    """The positions of the `k` highest `scores` among the `valid` ones.

    Args:
        scores: float `(B, C, T)`.
        valid: boolean, broadcastable to `scores`.
        k: int.

    Returns:
        As `latest`: the kept positions, most recent first.
    """
    valid = ops.broadcast_to(valid, ops.shape(scores))
    scores = ops.where(valid, ops.cast(scores, "float32"), float("-inf"))
    scores, valid = _pad(scores, k, float("-inf")), _pad(valid, k, False)
    # Everything above the k-th highest score is kept, and as many of the
    # scores equal to it, latest first, as there is room for.
    kth = largest(scores, k)[..., -1:]
    above = scores > kth
    tied = ops.logical_and(valid, scores == kth)
    room = k - ops.sum(ops.cast(above, "int32"), axis=-1, keepdims=True)
    tied_rank = count_at_or_after(tied)
    kept = ops.logical_or(above, ops.logical_and(tied, tied_rank <= room))
    return _latest_of_padded(kept, k)


def gather(keys, positions):
    """`keys` `(B, T, ...)` at `positions` `(B, C, k)`: `(B, C, k, ...)`.

    One `take` from a 2-D table of the rows laid end to end: the form that
    every backend, and torch's ONNX exporter, takes as an embedding lookup.
    """
    batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
    rest = tuple(keys.shape[2:])
    flat = ops.reshape(keys, (-1, math.prod(rest)))
    offsets = ops.reshape(ops.arange(batch, dtype="int32") * history, (-1, 1, 1))
    taken = ops.take(flat, positions + offsets, axis=0)
    return ops.reshape(taken, (*ops.shape(positions), *rest))


def _pad(x, k, value):
    """`x` `(B, C, T)` with `k` more positions holding `value`: `top_k` then
    always has `k` to choose from, whatever `T` (unknown when exported)."""
    padding = ops.full((*ops.shape(x)[:-1], k), value, dtype=x.dtype)
    return ops.concatenate([x, padding], axis=-1)
