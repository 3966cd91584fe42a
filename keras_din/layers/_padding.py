"""Leaving padding positions out, and a switch that turns it off.

Leaving padding out of the computation gives tensors whose length depends on
the data. Exporters that trace a model into a graph of fixed shapes (torch's
ONNX and `torch.export` routes) cannot follow that, so `export_model` runs
them inside `every_position()`.
"""

import contextlib
from typing import Any
from typing import NamedTuple

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


class Blocks(NamedTuple):
    """The kept blocks of a `(B, T)` mask; see `valid_blocks`."""

    size: int
    positions: Any
    owners: Any
    valid: Any
    rank: Any


def valid_blocks(keys_mask, size):
    """The blocks of a `(B, T)` mask that hold at least one valid position.

    The mask is cut into `B * T / size` blocks of `size` consecutive
    positions (`T` must be a multiple of `size`). Returns `Blocks` with:
    `positions`, the row-major indices of the `N` kept blocks; `owners`, the
    batch index of each; `valid`, for `size > 1`, the `(N, size)` mask of
    their valid positions (else `None`); and, on TensorFlow alone, `rank`,
    the `(B * T / size,)` index of each block among the kept ones, `N` for
    the others (else `None`; see `take_blocks`). The lengths of the first
    three depend on the data.
    """
    if size == 1:
        kept = ops.reshape(keys_mask, (-1,))
        positions = ops.where(kept)[0]
        valid = None
    else:
        blocks = ops.reshape(keys_mask, (-1, size))
        kept = ops.any(blocks, axis=-1)
        positions = ops.where(kept)[0]
        valid = ops.take(blocks, positions, axis=0)
    per_history = ops.cast(ops.shape(keys_mask)[1] // size, positions.dtype)
    rank = None
    if keras.backend.backend() == "tensorflow":
        rank = ops.cumsum(ops.cast(kept, "int32")) - 1
        rank = ops.where(kept, rank, ops.cast(ops.shape(positions)[0], "int32"))
    return Blocks(size, positions, positions // per_history, valid, rank)


def take_blocks(values, blocks):
    """`ops.take(values, blocks.positions, axis=0)`: the kept blocks' rows.

    On TensorFlow the gradient is computed by a gather too: TensorFlow's own
    gradient of a gather is an `UnsortedSegmentSum`, which on the CPU costs
    about twice a gather of the whole of `values`. As the positions are
    distinct, the gradient of a kept block is the row of the upstream
    gradient at its rank among the kept blocks; that of any other is zero.
    """
    if blocks.rank is None:
        return ops.take(values, blocks.positions, axis=0)

    @ops.custom_gradient
    def take(values):
        def gradient(upstream):
            # The blocks that were not kept have rank N: this zero row.
            zero = ops.zeros_like(upstream[:1])
            padded = ops.concatenate([upstream, zero], axis=0)
            return ops.take(padded, blocks.rank, axis=0)

        return ops.take(values, blocks.positions, axis=0), gradient

    return take(values)


def to_every_position(rows, blocks, batch, history):
    """Puts the rows of gathered blocks back into a `(B, T, C)` tensor.

    `rows` holds `(N * P, C)` rows, `P` (`blocks.size`) per kept block. The
    other positions get 0. (`scatter_update`, because keras' torch `scatter`
    loops over the rows in Python.)
    """
    width = blocks.size * ops.shape(rows)[1]
    every = ops.scatter_update(
        ops.zeros((batch * (history // blocks.size), width), rows.dtype),
        ops.expand_dims(blocks.positions, -1),
        ops.reshape(rows, (-1, width)),
    )
    return ops.reshape(every, (batch, history, ops.shape(rows)[1]))
