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
from keras_din.layers._backend import scan_over_time
from keras_din.layers._masking import zero_padding

GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")


def orthogonal(seed):
    """Keras's orthogonal initializer, computed in float32 whatever the
    variable's dtype (torch has no QR decomposition in float16)."""
    initializer = keras.initializers.Orthogonal(seed=seed)

    def initialize(shape, dtype=None):
        return ops.cast(initializer(shape, dtype="float32"), dtype or "float32")

    return initialize


def add_gru_weights(layer, dim, units, seed):
    """Creates on `layer`, in this order, the recurrence's `kernel (dim, 3
    units)`, `recurrent_kernel (units, 3 units)`, `bias` and
    `recurrent_bias (3 units,)`; returns them (`gated_recurrence`'s order).
    The kernels' initialisers take `seed` and `seed + 1`."""
    return (
        layer.add_weight(
            shape=(dim, 3 * units),
            initializer=keras.initializers.GlorotUniform(seed),
            name="kernel",
        ),
        layer.add_weight(
            shape=(units, 3 * units),
            initializer=orthogonal(None if seed is None else seed + 1),
            name="recurrent_kernel",
        ),
        layer.add_weight(shape=(3 * units,), initializer="zeros", name="bias"),
        layer.add_weight(
            shape=(3 * units,), initializer="zeros", name="recurrent_bias"
        ),
    )


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
    inputs,
    valid,
    kernel,
    recurrent_kernel,
    bias,
    recurrent_bias,
    gru_type="GRU",
    attention=None,
):
    """Runs the recurrence over the time axis.

    Args:
        inputs: `(B, T, E)`, the sequence `x_t`.
        valid: `(B, T)` boolean, or `None` (every position valid).
        kernel: `(E, 3H)`. recurrent_kernel: `(H, 3H)`. bias,
            recurrent_bias: `(3H,)`.
        gru_type: one of `GRU_TYPES`.
        attention: `(B, T, C)` attention weights, for every type but
            `"GRU"`; the states then have a candidate axis.

    Returns:
        Without `attention`, the states at every step, `(B, T, H)` (0 at
        the padding); with it, the final states only, `(B, C, H)`.
    """
    batch = ops.shape(inputs)[0]
    units = recurrent_kernel.shape[0]
    if attention is None:
        state = ops.zeros((batch, units), inputs.dtype)
        per_step = [inputs]
    else:
        candidates = ops.shape(attention)[2]
        state = ops.zeros((batch, candidates, units), inputs.dtype)
        per_step = [inputs, ops.expand_dims(attention, -1)]  # (B, T, C, 1)
    if inputs.shape[1] == 0:  # no step: the initial state, no outputs
        return (
            state
            if attention is not None
            else ops.zeros((batch, 0, units), state.dtype)
        )
    if valid is not None:
        step_valid = valid if attention is None else ops.expand_dims(valid, -1)
        per_step.append(ops.expand_dims(step_valid, -1))
    per_step = [ops.moveaxis(x, 1, 0) for x in per_step]  # time first

    def step(previous, sliced):
        # The input is projected step by step, not for the whole sequence
        # before the loop: XLA's CPU loop then reads one contiguous slice
        # per step (3x faster under `jax.jit` at B=1024, T=50), and the
        # other backends run the same FLOPs.
        x = ops.matmul(sliced[0], kernel)
        score = None
        if attention is not None:
            x = ops.expand_dims(x, 1)  # one input for every candidate
            score = sliced[1]
        if gru_type == "AIGRU":
            x = score * x  # (a_t x_t) W = a_t (x_t W)
        x = x + bias
        if attention is None:
            h = ops.matmul(previous, recurrent_kernel)
        else:  # as one 2-D product, which XLA runs faster than a 3-D one
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
        state = previous + update * (candidate - previous)
        if valid is not None:
            state = ops.where(sliced[-1], state, previous)
        return state

    final, states = scan_over_time(step, state, per_step, attention is None)
    if attention is not None:
        return final
    states = ops.moveaxis(states, 0, 1)
    # The state carried over the padding is no output there.
    return states if valid is None else zero_padding(states, valid)
