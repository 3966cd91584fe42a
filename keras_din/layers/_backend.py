"""The few places where the backends differ for keras-din.

Everything else is written once with `keras.ops`; this module is the only one
that asks which backend runs.
"""

import sys

import keras
from keras import ops

from keras_din.layers._checks import static_shape


def _backend():
    return keras.backend.backend()


def has_dynamic_shapes():
    """Whether tensors whose size depends on the data can be computed.

    JAX's `jit` (which Keras uses on that backend to train and predict)
    needs every shape to be static.
    """
    return _backend() != "jax"


def is_tracing_fixed_shapes():
    """Whether a torch tracer is recording a graph of fixed shapes now.

    `torch.jit.trace` (the ONNX exporter's TorchScript route), `torch.export`
    (Keras's `format="torch"` and the ONNX dynamo route) and `torch.compile`
    record no data-dependent sizes (or record one value of them), so the
    layers compute every position while one of them runs.
    """
    return is_exporting() or bool(_torch_compiler("is_compiling"))


def is_exporting():
    """Whether a torch exporter (`torch.jit.trace`, `torch.export`) is
    recording a graph now: one that replays the traced shapes' loops."""
    if _backend() != "torch":
        return False
    tracing = sys.modules["torch"].jit.is_tracing()
    return bool(tracing or _torch_compiler("is_exporting"))


def _torch_compiler(question):
    """`torch.compiler.<question>()` on the torch backend, else False."""
    if _backend() != "torch":
        return False
    # The module Keras loaded for this backend (keras-din imports no backend).
    compiler = getattr(sys.modules["torch"], "compiler", None)
    return getattr(compiler, question, bool)()  # older torch lacks these


def row_taker(positions, kept):
    """A function `values -> ops.take(values, positions, axis=0)`.

    `positions` lists, distinct and in order, the rows of `values` that the
    boolean vector `kept` marks. On TensorFlow the gradient is computed by a
    gather too: TensorFlow's own gradient of a gather is an
    `UnsortedSegmentSum`, which on the CPU costs about twice a gather of the
    whole of `values`. As the positions are distinct, the gradient of a kept
    row is the upstream row at its rank among the kept ones, that of any
    other row zero. The ranks are computed once, for every call.
    """
    if _backend() != "tensorflow":
        return lambda values: ops.take(values, positions, axis=0)
    rank = ops.cumsum(ops.cast(kept, "int32")) - 1
    # The rows that were not kept point at an appended zero row.
    rank = ops.where(kept, rank, ops.cast(ops.shape(positions)[0], "int32"))

    @ops.custom_gradient
    def take(values):
        def gradient(upstream):
            # One zero row (not `upstream[:1]`, empty when no row is kept).
            zero = ops.zeros((1, *upstream.shape[1:]), upstream.dtype)
            return ops.take(ops.concatenate([upstream, zero], axis=0), rank, axis=0)

        return ops.take(values, positions, axis=0), gradient

    return take


def id_counts(ids, num_ids):
    """How often each id of the 1-D `ids` occurs: `(num_ids,)` int32.

    On torch a `bincount`, one operator; Keras's torch `segment_sum` runs
    about ten (the repeats, the range checks, a scatter into a new buffer)
    and synchronises on a size. JAX's `bincount` needs a static length,
    which `jit` has only through `segment_sum`.
    """
    if _backend() == "torch":
        return ops.bincount(ids, minlength=num_ids)
    return ops.segment_sum(ops.ones_like(ids), ids, num_segments=num_ids)


def sums_by_segment():
    """Whether rows are summed per sequence by `segment_sum`, else by place.

    TensorFlow's segment sum is a fifth faster under XLA than placing the
    rows in a zero buffer and summing each history (measured at the
    benchmark's paper size). torch's, a scatter-add, is serial on the CPU:
    10-18% slower steps than placing.
    """
    return _backend() == "tensorflow"


def pools_zeroed_keys():
    """Whether the one-candidate pooling weights the keys zeroed at the
    padding (those the unit takes), else selects the padding out of the
    products.

    Under `jax.jit` on the CPU, zeroed keys that feed both the unit and the
    sum become a buffer of their own, and the unit's first layer slows:
    paper-size inference took 1.67x as long (18.5 against 11.1 ms). In torch
    eager, the selects after the product are one more `(B, T, E)` tensor
    each way: 1.25x the paper-size training step with every position
    computed, against 1.05-1.11x pooling the zeroed keys.
    """
    return _backend() != "jax"


def to_history_length(keys_mask, keys):
    """`keys_mask` with the history length of `keys`, where JAX cannot tell.

    Exported from JAX (`jax2tf`), an explicit `(B, T)` mask input and the
    history get distinct symbolic lengths, which JAX cannot prove equal. A
    mask padded by `T` positions and cut to `T` has the history's own.
    """
    if _backend() != "jax" or static_shape(keys_mask)[1] is not None:
        return keys_mask
    history = ops.shape(keys)[1]
    padded = ops.pad(keys_mask, [[0, 0], [0, history]])
    return padded[:, :history]


def scan_over_time(step, state, sequences, stack_states):
    """`state = step(state, slices)` over the first axis of every sequence;
    returns the final state and, with `stack_states`, the state after every
    step stacked on a first axis (else `None`).

    torch runs a Python loop over the sequences unbound once. torch's `scan`
    is a Python loop that takes `x[t]` from each sequence; in training, each
    of those slices' backward writes a zero tensor of the whole sequence, T
    times over (half of a DIEN training step at B=1024, T=50, in torch's
    profiler); unbinding once has one backward, a stack. TensorFlow runs
    `_bounded_while_loop`; JAX Keras's `scan`.
    """
    if _backend() == "torch":
        states = []
        for slices in zip(*(ops.unstack(x) for x in sequences), strict=True):
            state = step(state, slices)
            states.append(state)
        return state, ops.stack(states) if stack_states else None
    if _backend() == "tensorflow":
        return _bounded_while_loop(step, state, sequences, stack_states)

    def scanned(state, t):
        state = step(state, [x[t] for x in sequences])
        return state, state if stack_states else None

    times = ops.arange(ops.shape(sequences[0])[0], dtype="int32")
    return ops.scan(scanned, state, times)


def _bounded_while_loop(step, state, sequences, stack_states):
    """`scan_over_time` on TensorFlow: a `tf.while_loop` whose number of
    iterations is bounded by the length, over `TensorArray`s.

    XLA differentiates a while loop only where that bound is given, which
    Keras's TensorFlow `scan` does not give (and its `scan` of several
    sequences fails where their length is `None`, as in exported models).
    Unrolling a known length instead traced about 0.2 s a step: 197 s for
    the first training step at T=1000.
    """
    tf = sys.modules["tensorflow"]  # the module Keras loaded for this backend
    length = tf.shape(sequences[0])[0]
    inputs = [
        tf.TensorArray(x.dtype, size=length, element_shape=x.shape[1:]).unstack(x)
        for x in sequences
    ]
    # A TensorArray of one element stands in for no states to stack.
    states = tf.TensorArray(
        state.dtype, size=length if stack_states else 1, element_shape=state.shape
    )

    def body(t, state, states):
        state = step(state, [x.read(t) for x in inputs])
        return t + 1, state, states.write(t, state) if stack_states else states

    _, state, states = tf.while_loop(
        lambda t, *_: t < length,
        body,
        (tf.constant(0), state, states),
        maximum_iterations=length,
    )
    if not stack_states:
        return state, None
    states = states.stack()
    states.set_shape(sequences[0].shape[:1].concatenate(state.shape))
    return state, states


def largest(x, k):
    """The `k` largest values of each row of `x` (last axis), largest first.

    `ops.top_k`, except on JAX: there it lowers to a StableHLO composite
    that TensorFlow's XLA (2.21) cannot read, so a SavedModel exported from
    JAX would not load; a sort exports.
    """
    if _backend() != "jax":
        return ops.top_k(x, k)[0]
    if keras.backend.standardize_dtype(x.dtype) != "float32":
        return ops.flip(ops.sort(x, axis=-1)[..., -k:], -1)
    # XLA sorts int32 about 5x faster than float32 on the CPU: sort the
    # floats' bits, turned into int32 keys of the same order (a negative
    # float's 31 lower bits flipped; + 0.0 makes -0.0 the +0.0 it equals).
    keys = _ordered_bits(ops.view(x + 0.0, "int32"))
    top = ops.flip(ops.sort(keys, axis=-1)[..., -k:], -1)
    return ops.view(_ordered_bits(top), "float32")


def _ordered_bits(bits):
    """Float32 bits to int32 keys of the floats' order, and back."""
    return ops.where(bits < 0, ops.bitwise_xor(bits, 0x7FFFFFFF), bits)
