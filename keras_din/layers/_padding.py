"""Leaving padding positions out, and a switch that turns it off.

Leaving padding out of the computation gives tensors whose length depends on
the data. Exporters that trace a model into a graph of fixed shapes (torch's
ONNX and `torch.export` routes) cannot follow that, so `export_model` runs
them inside `every_position()`.
"""

import contextlib

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


def valid_rows(keys_mask):
    """Indices of the valid positions of a `(B, T)` mask, flattened to `B * T`.

    Returns `(positions, owners)`: the row-major indices of the true entries
    and the batch index of each. Their length depends on the data.
    """
    positions = ops.where(ops.reshape(keys_mask, (-1,)))[0]
    history = ops.cast(ops.shape(keys_mask)[1], positions.dtype)
    return positions, positions // history


def to_every_position(rows, positions, batch, history):
    """Puts `(N, C)` rows of the valid `positions` into a `(B, T, C)` tensor.

    Padding positions get 0. (`scatter_update`, because keras' torch
    `scatter` loops over the rows in Python.)
    """
    candidates = ops.shape(rows)[1]
    every = ops.scatter_update(
        ops.zeros((batch * history, candidates), rows.dtype),
        ops.expand_dims(positions, -1),
        rows,
    )
    return ops.reshape(every, (batch, history, candidates))
