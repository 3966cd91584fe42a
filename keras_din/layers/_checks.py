"""Input checks shared by the keras-din layers."""

import numbers

import keras


def static_shape(x):
    """The shape of a tensor or shape-like as a tuple of ints and `None`s."""
    shape = x if isinstance(x, (tuple, list)) else x.shape
    # Anything but an integer (None, a symbolic dimension under jax.export)
    # is unknown.
    return tuple(int(d) if isinstance(d, numbers.Integral) else None for d in shape)


def dims_disagree(a, b):
    return a is not None and b is not None and a != b


def _describe(x):
    if x is None:
        return "None"
    if isinstance(x, (tuple, list)):  # a shape, as `build` sees an input
        return f"shape {static_shape(x)}"
    return f"a tensor of shape {static_shape(x)}"


def split_inputs(inputs, layer_name, allowed_counts):
    """Checks that `inputs` is a list or tuple of an allowed length."""
    # A tuple of ints and `None`s is the shape of a single tensor, as seen
    # by `build`; any other list or tuple holds the inputs.
    is_sequence = isinstance(inputs, (list, tuple)) and not all(
        x is None or isinstance(x, numbers.Integral) for x in inputs
    )
    if (
        not is_sequence
        or len(inputs) not in allowed_counts
        or any(x is None for x in inputs)
    ):
        expected = " or ".join(str(n) for n in allowed_counts)
        if is_sequence:
            items = ", ".join(_describe(x) for x in inputs)
            received = f"a {type(inputs).__name__} of {len(inputs)}: [{items}]"
        elif isinstance(inputs, (tuple, list)) or hasattr(inputs, "shape"):
            received = f"a single tensor of shape {static_shape(inputs)}"
        else:
            received = f"{type(inputs).__name__} {inputs!r:.80}"
        raise ValueError(
            f"`{layer_name}` expects `inputs` to be a list or tuple of "
            f"{expected} tensors. Received: {received}"
        )
    return list(inputs)


def check_query_and_keys(query_shape, keys_shape, same_batch=True):
    """Checks `query` `(B, C, E)` and `keys` `(B, T, E)` shapes or tensors.

    With `same_batch=False` their batch sizes may differ.

    An unknown embedding size is rejected when given shapes (at build time,
    which always comes first). Given tensors (in `call`), it is not: under
    export tracers (torch.onnx, jax.export) sizes may not be plain ints.
    """
    building = isinstance(keys_shape, (tuple, list))
    if not building:
        check_dtype("query", query_shape, "float")
        check_dtype("keys", keys_shape, "float")
    query_shape, keys_shape = static_shape(query_shape), static_shape(keys_shape)
    if len(query_shape) != 3:
        raise ValueError(
            "`query` must have rank 3, shape (batch, candidates, embedding_dim). "
            f"Received: query.shape={query_shape}"
        )
    if len(keys_shape) != 3:
        raise ValueError(
            "`keys` must have rank 3, shape (batch, history_length, embedding_dim). "
            f"Received: keys.shape={keys_shape}"
        )
    if building and keys_shape[-1] is None:
        raise ValueError(
            "The last dimension (embedding_dim) of `keys` must be known. "
            f"Received: keys.shape={keys_shape}"
        )
    if dims_disagree(query_shape[-1], keys_shape[-1]):
        raise ValueError(
            "`query` and `keys` must have the same last dimension "
            f"(embedding_dim). Received: query.shape={query_shape}, "
            f"keys.shape={keys_shape}"
        )
    if same_batch and dims_disagree(query_shape[0], keys_shape[0]):
        raise ValueError(
            "`query` and `keys` must have the same batch size. "
            f"Received: query.shape={query_shape}, keys.shape={keys_shape}"
        )


def check_positive_units(name, units):
    """Checks a non-empty sequence of positive ints; returns it as a tuple."""
    if isinstance(units, int) and not isinstance(units, bool):
        units = (units,)
    ok = isinstance(units, (list, tuple)) and len(units) > 0
    ok = ok and all(
        isinstance(u, numbers.Integral) and not isinstance(u, bool) for u in units
    )
    ok = ok and all(u > 0 for u in units)
    if not ok:
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive ints. "
            f"Received: {name}={units!r}"
        )
    return tuple(int(u) for u in units)


def check_optional_units(name, units):
    """Checks `None` or a positive int; returns it."""
    if units is not None and (
        not isinstance(units, numbers.Integral) or isinstance(units, bool) or units < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive int or None. Received: {name}={units!r}"
        )
    return units


def check_keys_mask(mask, keys, argument="mask"):
    """Checks a boolean (or integer) `(B, T)` mask of the positions of `keys`."""
    if not hasattr(mask, "dtype"):
        raise TypeError(
            f"`{argument}` must be a boolean (or integer) tensor. "
            f"Received: {argument} of type {type(mask).__name__}"
        )
    check_dtype(argument, mask, "mask")
    mask_shape, keys_shape = static_shape(mask), static_shape(keys)
    if len(mask_shape) != 2 or any(
        dims_disagree(m, k) for m, k in zip(mask_shape, keys_shape[:2], strict=True)
    ):
        raise ValueError(
            f"`{argument}` (the mask of `keys`) must have shape (batch, "
            f"history_length) = {keys_shape[:2]}. "
            f"Received: {argument}.shape={mask_shape}"
        )


def keys_mask_of(mask, inputs):
    """The checked mask of `keys` (`inputs[1]`) in `mask`, or `None`.

    `mask` is the `(B, T)` mask itself or one (optional) mask per input.
    """
    if isinstance(mask, (list, tuple)):
        if len(mask) != len(inputs):
            raise ValueError(
                f"A list `mask` must have one entry per input ({len(inputs)}). "
                f"Received: a list of {len(mask)} masks"
            )
        mask = mask[1]
    if mask is not None:
        check_keys_mask(mask, inputs[1])
    return mask


def dtype_name(dtype):
    """Keras's name of a dtype (`"float32"`, `"bool"`, ...), whatever its kind."""
    try:
        return keras.backend.standardize_dtype(dtype)
    except ValueError:
        if getattr(dtype, "kind", None) in ("U", "S"):  # NumPy text
            return "string"
        return str(dtype)


# By Keras's dtype name: what each kind accepts, and the rule's words.
_DTYPE_RULES = {
    "float": (("float", "bfloat"), "must have a float dtype (embeddings)"),
    "integer": (("int", "uint"), "must have an integer dtype"),
    "mask": (
        ("bool", "int", "uint"),
        "must be boolean (or integer, nonzero meaning valid)",
    ),
}


def check_dtype(name, x, kind):
    """Checks that tensor or array `x` has a dtype of `kind` (see above)."""
    prefixes, rule = _DTYPE_RULES[kind]
    received = dtype_name(x.dtype)
    if not received.startswith(prefixes):
        raise TypeError(f"`{name}` {rule}. Received: {name}.dtype={received}")


def check_given_dtypes(args, kwargs, kinds, mask_argument):
    """The dtype checks of `call`, on the arguments as the caller gave them.

    Keras converts array arguments before `call`, casting float ones to the
    layer's compute dtype (a float64 `keys_length` would be reported as
    float32) and failing on text with a message of its own. `kinds` maps
    the names of the entries of `inputs` to their kinds (`check_dtype`);
    the mask, positional or keyword `mask_argument`, must be a mask. Every
    other check is left to `call`.
    """
    inputs = args[0] if args else kwargs.get("inputs")
    if isinstance(inputs, (list, tuple)) and len(inputs) <= len(kinds):
        for (name, kind), x in zip(kinds.items(), inputs, strict=False):
            if hasattr(x, "dtype"):
                check_dtype(name, x, kind)
    mask = args[1] if len(args) > 1 else kwargs.get(mask_argument)
    if isinstance(mask, (list, tuple)) and len(mask) > 1:
        mask = mask[1]  # the entry of `keys`
    if hasattr(mask, "dtype"):
        check_dtype(mask_argument, mask, "mask")


def check_keys_length(keys_length, keys):
    """Checks `keys_length` (a shape or a tensor) against `keys`."""
    if not isinstance(keys_length, (tuple, list)):
        check_dtype("keys_length", keys_length, "integer")
    length_shape, keys_shape = static_shape(keys_length), static_shape(keys)
    if len(length_shape) not in (1, 2) or (
        len(length_shape) == 2 and dims_disagree(length_shape[1], 1)
    ):
        raise ValueError(
            "`keys_length` must have shape (batch,) or (batch, 1). "
            f"Received: keys_length.shape={length_shape}"
        )
    if dims_disagree(length_shape[0], keys_shape[0]):
        raise ValueError(
            "`keys_length` and `keys` must have the same batch size. "
            f"Received: keys_length.shape={length_shape}, "
            f"keys.shape={keys_shape}"
        )


def check_rate(name, value):
    """Checks a real number in `[0, 1)`; returns it as a float."""
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not 0.0 <= value < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def check_non_negative(name, value):
    """Checks a real number `>= 0`; returns it as a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"`{name}` must be a float >= 0. Received: {name}={value!r}")
    return float(value)


def heads_key_dim(num_heads, key_dim, keys_shape):
    """The width of each attention head: `key_dim`, or the embedding size
    `E` of `keys_shape` split over `num_heads` (which must divide it)."""
    if key_dim is not None:
        return key_dim
    dim = static_shape(keys_shape)[-1]
    if dim % num_heads:
        raise ValueError(
            "With `key_dim=None`, the embedding size E must be a "
            f"multiple of `num_heads`={num_heads}: pass `key_dim`. "
            f"Received: keys.shape={static_shape(keys_shape)}"
        )
    return dim // num_heads


def check_ids_shape(name, ids, expected):
    """Checks integer ids `ids`: one per candidate (`query_ids`) or per
    behaviour (`key_ids`), shape `expected`."""
    if hasattr(ids, "dtype"):
        check_dtype(name, ids, "integer")
    shape = static_shape(ids)
    if len(shape) != 2 or any(
        a is not None and b is not None and a != b
        for a, b in zip(shape, expected, strict=True)
    ):
        raise ValueError(
            f"`{name}` must have shape {expected}, one id per "
            f"{'candidate' if name == 'query_ids' else 'behaviour'}. "
            f"Received: {name}.shape={shape}"
        )
