"""The checks of a dict of NumPy arrays against a model's named inputs."""

import numpy as np


def check_feature_arrays(x, inputs, vocabulary_sizes, argument, every_input=True):
    """Checks the dict `x` (the call's `argument`) against `inputs`, a dict
    of `keras.Input`.

    With `every_input`, the keys of `x` must be those of `inputs`; otherwise
    (training arrays given to a builder) `x` may hold other keys too, and
    only the inputs with a vocabulary are needed. Returns the needed arrays
    in the shapes of `inputs` (tensors as they are).
    """
    needed = list(inputs) if every_input else list(vocabulary_sizes)
    missing = [name for name in needed if name not in x]
    extra = [name for name in x if name not in inputs] if every_input else []
    if missing or extra:
        found = [f"Missing: {missing}"] if missing else []
        found += [f"not inputs of the model: {extra}"] if extra else []
        raise ValueError(
            f"`{argument}` must hold one array per input of the model: "
            f"{needed}. {'; '.join(found)}"
        )
    batch = free = None
    checked = {}
    for name in needed:
        if not isinstance(x[name], (np.ndarray, list, tuple)):
            checked[name] = x[name]  # a tensor: Keras checks it
            continue
        expected = tuple(inputs[name].shape[1:])
        array = _as_array(name, x[name], expected, argument)
        if array.dtype.kind not in "iu":
            what = "ids" if name in vocabulary_sizes else "lengths"
            raise TypeError(
                f"Input {name!r} of `{argument}` must hold integer {what}. "
                f"Received: an array of dtype {array.dtype}"
            )
        if not _fits(array.shape[1:], expected):
            raise ValueError(
                f"Input {name!r} of `{argument}` must have shape (N, "
                f"{', '.join(map(str, expected))}) (or (N,) where that is 1). "
                f"Received: shape {array.shape}"
            )
        if batch is not None and len(array) != batch[1]:
            raise ValueError(
                f"The inputs of `{argument}` must have one batch size. Received: "
                f"{len(array)} rows in {name!r}, {batch[1]} in {batch[0]!r}"
            )
        batch = batch or (name, len(array))
        if None in expected:  # the candidates of a model built with `None`
            if free is not None and array.shape != free[1]:
                raise ValueError(
                    f"The candidate inputs of `{argument}` must have one "
                    f"shape. Received: {array.shape} for {name!r}, "
                    f"{free[1]} for {free[0]!r}"
                )
            free = free or (name, array.shape)
        if name in vocabulary_sizes:
            _check_ids(name, array, vocabulary_sizes[name], argument)
        if None not in expected:
            array = array.reshape((len(array), *expected))
        checked[name] = array
    return checked


def _fits(shape, expected):
    """Whether an array's shape (without the batch axis) fits an input's,
    where `None` fits any size and `()` and `(1,)` fit each other."""
    if expected in ((), (1,)) and shape in ((), (1,)):
        return True
    return len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True)
    )


def _as_array(name, value, expected, argument):
    """`value` as a NumPy array; an error naming the input for rows of
    different lengths (such as unpadded histories), which NumPy cannot
    stack."""
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy: "... inhomogeneous shape ..."
        array = None
    if array is not None and (array.dtype != object or array.ndim != 1):
        return array
    sequence = (list, tuple, np.ndarray)
    if array is not None and not any(isinstance(row, sequence) for row in value):
        return array  # objects, not rows: the dtype check names them
    lengths = {len(row) if isinstance(row, sequence) else 1 for row in value}
    lengths = ", ".join(map(str, sorted(lengths)))
    shape = f"(N, {', '.join(map(str, expected))})" if expected else "(N,)"
    hint = ""
    if expected and expected[-1] > 1:
        hint = (
            f" Pad each history to {expected[-1]} ids with id 0 (padding) first, "
            f"for example with keras.utils.pad_sequences(rows, "
            f'maxlen={expected[-1]}, padding="post").'
        )
    received = "an object array" if array is not None else f"a {type(value).__name__}"
    raise ValueError(
        f"Input {name!r} of `{argument}` must be an integer array of shape "
        f"{shape}. Received: {received} of rows of lengths {lengths}.{hint}"
    )


def _check_ids(name, ids, size, argument):
    outside = (ids < 0) | (ids >= size)
    if np.any(outside):
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        others = int(outside.sum()) - 1
        raise ValueError(
            f"Input {name!r} of `{argument}` holds ids outside its vocabulary "
            f"[0, {size}): id {ids[where]} at index {where}"
            + (f" (and {others} more)" if others else "")
        )
