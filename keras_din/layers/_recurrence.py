"""The gated recurrence of DIEN's GRU, AIGRU, AGRU and AUGRU.

With the gates in the order `[reset, update, candidate]` and the DIEN
paper's convention (the update gate is the share of the new candidate):

    r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + c_r)
    u_t = sigmoid(x_t W_u + b_u + h_{t-1} U_u + c_u)
    n_t = tanh(x_t W_n + b_n + r_t * (h_{t-1} U_n + c_n))
    h_t = (1 - u_t) * h_{t-1} + u_t * n_t

AIGRU scales the input by the attention `a_t` (`a_t x_t`), AGRU replaces
`u_t` by `a_t`, AUGRU scales it (`a_t u_t`, the paper's eq. 8). At a
position that is not valid the state is carried over unchanged, and its
output is 0. `AttentionalGRUCell` owns the weights and calls `gated_step`
(one step) and `gated_recurrence` (the loop, which calls `gated_step`
itself: no `Layer.__call__` per step).
"""

import keras
from keras import ops

from keras_din.layers._backend import is_exporting
from keras_din.layers._backend import scan_over_time

GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")


def orthogonal(seed):
    """Keras's orthogonal initializer, computed in float32 whatever the
    variable's dtype (torch has no QR decomposition in float16)."""
    initializer = keras.initializers.Orthogonal(seed=seed)

    def initialize(shape, dtype=None):
        return ops.cast(initializer(shape, dtype="float32"), dtype or "float32")

    return initialize


def check_exportable(layer, history_length):
    """Refuses a torch export that would serve one history length silently.

    torch's exporters unroll the recurrence's loop at the traced length, so
    the graph is right for that length only: fine where the model declares
    it (`history_length`, from the layer's build), wrong where it is free.
    """
    if history_length is None and is_exporting():
        raise ValueError(
            f"`{type(layer).__name__}` exports from the torch backend only "
            "with a known history length: torch's exporters unroll the "
            "recurrence at the traced length, and the exported model would "
            "serve that length alone. Declare it in the model's inputs, e.g. "
            "`keras.Input((T, E))` or `keras.Input((T,), dtype='int32')`, and "
            "pad histories to T. Expected: keys.shape[1] known when the layer "
            "was built. Received: keys.shape[1]=None"
        )


def gated_step(previous, x, score, weights, gru_type):
    """`h_t` from `h_{t-1}` (`previous`, `(B, H)` or `(B, C, H)` for `C`
    candidates), `x_t` `(B, E)` and `a_t` (`score`, shaped as `previous`
    with a last axis of 1, or `None`); `weights` are `[W, U, b, c]`."""
    kernel, recurrent_kernel, bias, recurrent_bias = weights
    # The input is projected step by step, not for the whole sequence
    # before the loop: XLA's CPU loop then reads one contiguous slice per
    # step (3x faster under `jax.jit` at B=1024, T=50), and the other
    # backends run the same FLOPs.
    x = ops.matmul(x, kernel)
    candidates = len(previous.shape) == 3
    if candidates:
        x = ops.expand_dims(x, 1)  # one input for every candidate
    if gru_type == "AIGRU":
        x = score * x  # (a_t x_t) W = a_t (x_t W)
    x = x + bias
    if not candidates:
        h = ops.matmul(previous, recurrent_kernel)
    else:  # as one 2-D product, which XLA runs faster than a 3-D one
        units = previous.shape[-1]
        h = ops.matmul(ops.reshape(previous, (-1, units)), recurrent_kernel)
        h = ops.reshape(h, ops.shape(previous)[:2] + (3 * units,))
    h = h + recurrent_bias
    x_r, x_u, x_n = ops.split(x, 3, axis=-1)
    h_r, h_u, h_n = ops.split(h, 3, axis=-1)
    reset = ops.sigmoid(x_r + h_r)
    candidate = ops.tanh(x_n + reset * h_n)
    if gru_type == "AGRU":
        update = score
    else:
        update = ops.sigmoid(x_u + h_u)
        if gru_type == "AUGRU":
            update = score * update
    return previous + update * (candidate - previous)


def gated_recurrence(state, inputs, valid, weights, gru_type, attention, sequences):
    """Runs `gated_step` over the time axis, from `state`.

    Args:
        state: the initial state, `(B, H)` or `(B, C, H)`.
        inputs: `(B, T, E)`, the sequence `x_t`.
        valid: `(B, T)` boolean, or `None` (every position valid).
        weights: `[W, U, b, c]`. gru_type: one of `GRU_TYPES`.
        attention: `(B, T)` or `(B, T, C)` (shaped as the state without its
            last axis, for every step), or `None` for `"GRU"`.
        sequences: whether to return every state, `(B, T, ...)` (0 at the
            padding), rather than the final one.
    """
    if inputs.shape[1] == 0:  # no step: the initial state, no outputs
        shape = ops.shape(state)
        return ops.zeros((shape[0], 0, *shape[1:]), state.dtype) if sequences else state
    per_step = [inputs]
    if attention is not None:
        per_step.append(ops.expand_dims(attention, -1))  # (B, T, [C,] 1)
    if valid is not None:
        for _ in state.shape[1:]:
            valid = ops.expand_dims(valid, -1)  # (B, T, [1,] 1)
        per_step.append(valid)
    per_step = [ops.moveaxis(x, 1, 0) for x in per_step]  # time first
    scored = attention is not None

    def step(previous, sliced):
        score = sliced[1] if scored else None
        state = gated_step(previous, sliced[0], score, weights, gru_type)
        if valid is not None:
            state = ops.where(sliced[-1], state, previous)
        return state

    final, states = scan_over_time(step, state, per_step, sequences)
    if not sequences:
        return final
    states = ops.moveaxis(states, 0, 1)
    # The state carried over the padding is no output there.
    return states if valid is None else ops.where(valid, states, 0.0)
