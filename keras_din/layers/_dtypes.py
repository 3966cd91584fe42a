"""Casts that cost nothing where the dtype is already right."""

import keras
from keras import ops


def cast_to(x, dtype):
    """`x` in `dtype`; `x` itself where it already is.

    A cast that copies nothing still costs a `keras.ops` call, about a tenth
    of a small layer's eager step on torch.
    """
    standardize = keras.backend.standardize_dtype
    if standardize(x.dtype) == standardize(dtype):
        return x
    return ops.cast(x, dtype)
