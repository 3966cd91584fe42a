"""Skipping padding: the attention computed on the valid history blocks only.

The history is cut into blocks of `P` consecutive positions, and only the
blocks that hold a valid position are gathered, scored and pooled. This gives
the same results as computing every position, with work in proportion to the
valid share of the history; the price is the padding inside each history's
last block, `(P - 1) / 2` positions on average. The sizes of the gathered
tensors depend on the data, so the pooling layer uses this only where the
backend computes such tensors (see `_backend`).
"""

from keras import ops

from keras_din.layers._backend import row_taker
from keras_din.layers._backend import sums_by_segment
from keras_din.layers._masking import zero_padding

# Block sizes, largest first. Each history computes (size - 1) / 2 padding
# positions on average in its last block; a size is taken when that stays
# within about 5% of T.
_BLOCK_SIZES = (8, 5, 4, 2)


def block_size(history):
    """How many consecutive positions of a history to gather as one block.

    Gathering blocks instead of single positions divides the number of
    gathered rows, whose gathers and gradients cost per row. `history` is
    the static T, or `None` when it is unknown (then 1).
    """
    if history is None:
        return 1
    for size in _BLOCK_SIZES:
        if history % size == 0 and 10 * (size - 1) <= history:
            return size
    return 1


class ValidBlocks:
    """The blocks of a `(B, T)` mask that hold at least one valid position.

    Args:
        keys: `(B, T, E)` history, `T` a multiple of `size`.
        valid: `(B, T)` boolean mask of the valid positions.
        size: int. The block size `P`.

    Attributes:
        keys: `(N, P, E)`, the history rows of the `N` kept blocks, 0 at
            their padding positions.
        valid: `(N, P)`, which of their positions are valid.
        owners: `(N,)`, the sequence (batch index) each block belongs to.
    """

    def __init__(self, keys, valid, size):
        self.size = size
        self._batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
        self._per_history = history // size
        blocks = ops.reshape(valid, (-1, size))
        kept = ops.any(blocks, axis=-1)
        self._positions = ops.where(kept)[0]
        self._take_rows = row_taker(self._positions, kept)
        self.owners = self._positions // ops.cast(
            self._per_history, self._positions.dtype
        )
        self.valid = ops.take(blocks, self._positions, axis=0)
        self.keys = zero_padding(self.take(keys), self.valid)

    def take(self, values):
        """The kept blocks' rows of a `(B, T, D)` tensor, as `(N, P, D)`."""
        blocks = ops.reshape(values, (-1, self.size, values.shape[-1]))
        return self._take_rows(blocks)

    def scatter(self, rows):
        """Puts `(N, P, D)` block rows back into a `(B, T, D)` tensor of zeros.

        (`scatter_update`, because Keras's torch `scatter` loops over the
        rows in Python.)
        """
        depth = ops.shape(rows)[-1]  # C, which may be known only here
        every = self._place(ops.reshape(rows, (-1, self.size * depth)))
        # Every size given: with an empty batch, a -1 could be any size.
        return ops.reshape(every, (self._batch, self._per_history * self.size, depth))

    def weighted_sum(self, weights):
        """`sum_t weights[b, t] * keys[b, t]` over the kept rows: `(B, 1, E)`.

        `weights` is `(B, T, 1)`, zero at every padding position. The sum is
        taken in float32: a float16 running sum over a long history would
        lose the digits that a dense reduction keeps.
        """
        dim = self.keys.shape[-1]
        weighted = self.take(weights) * self.keys
        weighted = ops.sum(ops.cast(weighted, "float32"), axis=1)  # (N, E)
        if sums_by_segment():
            pooled = ops.segment_sum(weighted, self.owners, num_segments=self._batch)
        else:
            # Each block's sum at its place, then a sum over each history.
            every = ops.reshape(
                self._place(weighted), (self._batch, self._per_history, dim)
            )
            pooled = ops.sum(every, axis=1)
        return ops.cast(ops.expand_dims(pooled, 1), self.keys.dtype)

    def _place(self, rows):
        """`(N, D)` rows at their blocks' places in a `(B * T / P, D)` zero."""
        depth = ops.shape(rows)[-1]
        zero = ops.zeros((1, depth), rows.dtype)
        return ops.scatter_update(
            ops.broadcast_to(zero, (self._batch * self._per_history, depth)),
            ops.expand_dims(self._positions, -1),
            rows,
        )
