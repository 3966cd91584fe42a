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
output is 0.
"""

import keras
from keras import ops

from keras_din.layers._backend import is_exporting

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


def gated_recurrence(
    projected,
    valid,
    recurrent_kernel,
    recurrent_bias,
    input_bias,
    gru_type="GRU",
    attention=None,
):
    """Runs the recurrence over the time axis.

    Args:
        projected: `(B, T, 3H)`, the inputs times the kernel, `x_t W`
            (without the input bias, which AIGRU adds after the scaling).
        valid: `(B, T)` boolean, or `None` (every position valid).
        recurrent_kernel: `(H, 3H)`. recurrent_bias, input_bias: `(3H,)`.
        gru_type: one of `GRU_TYPES`.
        attention: `(B, T, C)` attention weights, for every type but
            `"GRU"`; the states then have a candidate axis.

    Returns:
        `(outputs, final)`: `(B, T, H)` and `(B, H)`, or with `attention`
        `(B, T, C, H)` and `(B, C, H)`.
    """
    batch = ops.shape(projected)[0]
    units = recurrent_kernel.shape[0]
    if attention is None:
        state = ops.zeros((batch, units), projected.dtype)
        per_step = [projected]
    else:
        candidates = ops.shape(attention)[2]
        state = ops.zeros((batch, candidates, units), projected.dtype)
        projected = ops.expand_dims(projected, 2)  # (B, T, 1, 3H)
        per_step = [projected, ops.expand_dims(attention, -1)]  # (B, T, C, 1)
    if valid is not None:
        step_valid = valid if attention is None else ops.expand_dims(valid, -1)
        per_step.append(ops.expand_dims(step_valid, -1))
    # Time first. `scan` runs over the time indices and each step takes its
    # slices: Keras's TensorFlow `scan` fails on several inputs of unknown
    # length (a history axis of `None`, as exported models have).
    per_step = [ops.moveaxis(x, 1, 0) for x in per_step]

    def step(previous, time):
        inputs = [x[time] for x in per_step]
        x = inputs[0]
        score = inputs[1] if attention is not None else None
        if gru_type == "AIGRU":
            x = score * x
        x = x + input_bias
        h = ops.matmul(previous, recurrent_kernel) + recurrent_bias
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
        state = previous + update * (candidate - previous)
        if valid is None:
            return state, state
        here = inputs[-1]
        return ops.where(here, state, previous), ops.where(here, state, 0.0)

    times = ops.arange(ops.shape(per_step[0])[0], dtype="int32")
    final, outputs = ops.scan(step, state, times)
    return ops.moveaxis(outputs, 0, 1), final
