"""Valid history positions, and a softmax over them."""

import keras
from keras import ops

from keras_din.layers._backend import pools_zeroed_keys
from keras_din.layers._backend import to_history_length
from keras_din.layers._checks import static_shape


def valid_positions(keys, keys_length=None, keys_mask=None):
    """The `(B, T)` boolean mask of valid positions of `keys`, or `None`.

    Position `t` is valid when `t < keys_length` (if given) and the mask
    (if given) says so. `keys_length`, of an integer dtype and shape `(B,)`
    or `(B, 1)`, may lie outside `[0, T]`: above means all valid, at or below
    0 none.
    """
    valid = None
    if keys_length is not None:
        history = ops.shape(keys)[1]
        dtype = keras.backend.standardize_dtype(keys_length.dtype)
        if dtype in ("int64", "uint32", "uint64"):
            # Clipped to [0, T] in their own dtype, so that lengths beyond
            # the int32 range do not wrap around in the cast.
            keys_length = ops.clip(keys_length, 0, ops.cast(history, dtype))
        lengths = ops.reshape(ops.cast(keys_length, "int32"), (-1, 1))
        valid = ops.less(
            ops.expand_dims(ops.arange(history, dtype="int32"), 0), lengths
        )
    if keys_mask is not None:
        keys_mask = to_history_length(ops.cast(keys_mask, "bool"), keys)
        valid = keys_mask if valid is None else ops.logical_and(valid, keys_mask)
    return valid


def zero_padding(keys, valid):
    """`keys` `(B, T, E)` with 0 at the positions that `valid` marks invalid.

    Whatever the padding holds (NaN and inf included) then cannot reach a
    valid result: a weight of 0 times NaN is NaN, forward and backward.
    """
    return ops.where(ops.expand_dims(valid, -1), keys, 0.0)


def attention_weights(scores, valid, normalize):
    """The scores, softmax-normalised over `valid` if `normalize`, 0
    wherever `valid` (broadcastable to the scores, or `None`) is false."""
    if normalize:
        return masked_softmax(scores, valid)
    if valid is None:
        return scores
    return ops.where(valid, scores, ops.zeros_like(scores))


def weighted_sum(weights, keys, clean_keys, valid):
    """`sum_t weights[b, t] * keys[b, t]` as `(B, 1, E)`, for `(B, T, 1)`
    weights that are 0 wherever `valid` (`(B, T, 1)` or `None`) is false.

    A sum of products, cheaper than a batch of `(1, T)` by `(T, E)` matmuls
    (torch loops over the batch for those). `clean_keys` are `keys` zeroed
    there (`zero_padding`). Nothing of what the padding holds reaches the
    sum or a gradient: most backends weight the zeroed keys; under JAX the
    padding is selected out of the weights and of the products instead
    (see `pools_zeroed_keys`), and the NaN gradient the products send the
    padding's weights stops at that select.
    """
    if valid is None or pools_zeroed_keys():
        return ops.sum(weights * clean_keys, axis=1, keepdims=True)
    weights = ops.where(valid, weights, ops.zeros_like(weights))
    weighted = weights * keys
    weighted = ops.where(valid, weighted, ops.zeros_like(weighted))
    return ops.sum(weighted, axis=1, keepdims=True)


def masked_softmax(scores, valid):
    """Softmax over axis 1 restricted to `valid`; all-invalid rows give 0.

    Computed in float32 so that float16 scores neither overflow nor lose the
    normalisation, and written so that no inf or NaN can reach the gradient.
    """
    if static_shape(scores)[1] == 0:  # no position: nothing to normalise
        return ops.zeros_like(scores)
    scores32 = ops.cast(scores, "float32")
    if valid is None:
        return ops.cast(ops.softmax(scores32, axis=1), scores.dtype)
    # The padding is left out by a score no valid one lies below (its
    # exponential is 0), and a row without a valid position, uniform then,
    # is zeroed. The backends' softmax takes the row maximum itself, also
    # for an empty batch (where `ops.max` fails on TensorFlow and torch).
    masked = ops.where(valid, scores32, -3.0e38)
    weights = ops.softmax(masked, axis=1) * ops.cast(valid, "float32")
    return ops.cast(weights, scores.dtype)


def count_at_or_after(mask, axis=-1):
    """How many true entries of `mask` lie at or after each position along
    `axis`, as int32: 1 at the last true one, 2 at the one before it..."""
    counts = ops.cumsum(ops.flip(ops.cast(mask, "int32"), axis), axis)
    return ops.flip(counts, axis)
