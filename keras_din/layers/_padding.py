"""Leaving padding positions out, and a switch that turns it off.

Leaving padding out of the computation gives tensors whose length depends on
the data. Exporters that trace a model into a graph of fixed shapes (torch's
ONNX and `torch.export` routes) cannot follow that, so `export_model` runs
them inside `every_position()`.
"""

import contextlib

import keras
from keras import ops

_depth = 0


@contextlib.contextmanager
def every_position():
    """Within this context, no layer leaves padding positions out."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def computing_every_position():
    return _depth > 0


# Block sizes, largest first. Each history computes (size - 1) / 2 padding
# positions on average in its last block; a size is taken when that stays
# within about 5% of T.
_BLOCK_SIZES = (8, 5, 4, 2)


def block_size(history):
    """How many consecutive positions of a history to gather as one block.

    Gathering blocks instead of single positions divides the number of
    gathered rows, whose gathers and gradients cost per row, at the price
    of the padding inside the last block of each history. `history` is the
    static T, or `None` when unknown (then 1).
    """
    if history is None:
        return 1
    for size in _BLOCK_SIZES:
        if history % size == 0 and 10 * (size - 1) <= history:
            return size
    return 1


def valid_blocks(keys_mask, block):
    """The blocks of a `(B, T)` mask that hold at least one valid position.

    The mask is cut into `B * T / block` blocks of `block` consecutive
    positions (`T` must be a multiple of `block`). Returns `(positions,
    owners, rows_valid, kept)`: the row-major indices of the kept blocks,
    the batch index of each, for `block > 1` the `(N, block)` mask of their
    valid positions (else `None`), and the `(B * T / block,)` mask of the
    kept blocks. The first three have a length that depends on the data.
    """
    if block == 1:
        kept = ops.reshape(keys_mask, (-1,))
        positions = ops.where(kept)[0]
        rows_valid = None
    else:
        blocks = ops.reshape(keys_mask, (-1, block))
        kept = ops.any(blocks, axis=-1)
        positions = ops.where(kept)[0]
        rows_valid = ops.take(blocks, positions, axis=0)
    per_history = ops.cast(ops.shape(keys_mask)[1] // block, positions.dtype)
    return positions, positions // per_history, rows_valid, kept


def take_blocks(blocks, positions, kept):
    """`ops.take(blocks, positions, axis=0)`, `positions` being where `kept`.

    On TensorFlow the gradient is computed by a gather too: TensorFlow's own
    gradient of a gather is an `UnsortedSegmentSum`, which on the CPU costs
    about twice a gather of the whole of `blocks`. As the positions are
    distinct, the gradient of a kept block is the row of the upstream
    gradient at its rank among the kept blocks; that of any other is zero.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.take(blocks, positions, axis=0)
    rank = ops.cumsum(ops.cast(kept, "int32")) - 1
    # The others point past the upstream rows, at an appended zero row.
    rank = ops.where(kept, rank, ops.cast(ops.shape(positions)[0], "int32"))

    @ops.custom_gradient
    def take(values):
        def gradient(upstream):
            zero = ops.zeros_like(upstream[:1])
            return ops.take(ops.concatenate([upstream, zero], axis=0), rank, axis=0)

        return ops.take(values, positions, axis=0), gradient

    return take(blocks)


def to_every_position(rows, positions, batch, history, block=1):
    """Puts the rows of gathered blocks back into a `(B, T, C)` tensor.

    `rows` holds `(N * block, C)` rows, `block` per entry of `positions`
    (indices among the `B * T / block` blocks). The other positions get 0.
    (`scatter_update`, because keras' torch `scatter` loops over the rows in
    Python.)
    """
    width = block * ops.shape(rows)[1]
    every = ops.scatter_update(
        ops.zeros((batch * (history // block), width), rows.dtype),
        ops.expand_dims(positions, -1),
        ops.reshape(rows, (-1, width)),
    )
    return ops.reshape(every, (batch, history, ops.shape(rows)[1]))
