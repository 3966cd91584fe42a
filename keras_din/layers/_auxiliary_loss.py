"""DIEN's auxiliary loss (eq. 3 of the paper)."""

from keras import ops

from keras_din.layers._backend import has_dynamic_shapes
from keras_din.layers._backend import is_tracing_fixed_shapes
from keras_din.layers._backend import row_taker


def auxiliary_loss(mlp, states, keys, negative_keys, valid):
    """The mean binary cross-entropy over the valid `(t, t + 1)` pairs.

    `mlp` (a list of layers, the last giving one logit) scores `[h_t,
    e_{t+1}]` (label 1) and `[h_t, ê_{t+1}]` (label 0) for every pair whose
    positions `t` and `t + 1` are both valid; the loss is 0 where there is
    none. Where the backend computes data-dependent sizes, the MLP runs on
    those pairs only (half the work at lengths uniform in `[1, T]`);
    elsewhere on every pair, the others selected out.

    Args:
        mlp: list of callables, `(..., H + E) -> (..., 1)` at the end.
        states: `(B, T, H)` hidden states.
        keys, negative_keys: `(B, T, E)` clicked and not-clicked items.
        valid: `(B, T)` boolean mask of the valid positions, or `None`.
    """
    if valid is None:
        valid = ops.ones(ops.shape(keys)[:2], "bool")
    pairs = ops.logical_and(valid[:, :-1], valid[:, 1:])  # (B, T - 1)
    now = states[:, :-1]
    following = [keys[:, 1:], negative_keys[:, 1:]]
    if has_dynamic_shapes() and not is_tracing_fixed_shapes():
        kept = ops.reshape(pairs, (-1,))
        take = row_taker(ops.where(kept)[0], kept)

        def select(x):
            return take(ops.reshape(x, (-1, x.shape[-1])))

        counted = None
    else:
        pair_mask = ops.expand_dims(pairs, -1)

        def select(x):  # what the padding holds (NaN even) stays out
            return ops.where(pair_mask, x, 0.0)

        counted = ops.cast(pairs, "float32")
    now = select(now)
    total = 0.0
    for x, label in zip(following, (1.0, 0.0), strict=True):
        hidden = ops.concatenate([now, select(x)], axis=-1)
        for layer in mlp:
            hidden = layer(hidden)
        logits = ops.cast(hidden[..., 0], "float32")
        # -log(sigmoid(z)) = softplus(-z); -log(1 - sigmoid(z)) = softplus(z)
        total = total + ops.softplus(-logits if label else logits)
    if counted is None:
        count = ops.cast(ops.shape(total)[0], "float32")
    else:
        total, count = total * counted, ops.sum(counted)
    return ops.sum(total) / ops.maximum(2.0 * count, 1.0)
