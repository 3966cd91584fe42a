"""Export of keras-din models for serving, with checks per backend."""

import keras

FORMATS = {
    "tensorflow": ("tf_saved_model",),
    "jax": ("tf_saved_model",),
    "torch": ("onnx", "torch"),
}
"""The `format`s of `model.export` that keras-din exports from each backend,
and tests, by backend name; the first is the one the examples use."""


def export_model(model, filepath, format="tf_saved_model", **kwargs):
    """Exports `model` for serving, like `model.export`, checked first.

    A format that the current backend cannot produce is rejected with a
    `ValueError` that names the backend and the formats it can produce
    (a torch-trained model reaches a SavedModel through a `.keras` file
    loaded on the TensorFlow backend; see the guide "Saving, loading and
    serving").

    Models built with the keras-din layers export with plain `model.export`
    on every backend. On the JAX backend this adds one thing: a SavedModel
    is converted with `jax2tf`, which needs to know which unknown dimensions
    are equal, and `model.export` gives each its own size. Unless
    `jax2tf_kwargs={"polymorphic_shapes": ...}` says otherwise, the unknown
    first dimension of every input is the batch size and the unknown
    dimensions at the same later axis are taken to be equal: one history
    length `T` shared by every sequence input. (A model that concatenates
    two history features, such as item and category ids, needs that.)

    Args:
        model: A built `keras.Model`.
        filepath: `str` or `pathlib.Path`. Where to write the artifact (a
            directory for `"tf_saved_model"`, a file ending in `.pt2` for
            `"torch"`, a `.onnx` file for `"onnx"`).
        format: str. `"tf_saved_model"` (TensorFlow, JAX), `"onnx"` or
            `"torch"` (PyTorch). Defaults to `"tf_saved_model"`.
        **kwargs: Passed on to `model.export`, for example `verbose`,
            `input_signature`, `jax2tf_kwargs` or, for `"torch"`,
            `dynamic_shapes`.

    Returns:
        `filepath`.
    """
    backend = keras.backend.backend()
    formats = FORMATS.get(backend, ())
    if format not in formats:
        hint = ""
        if format == "tf_saved_model" and backend == "torch":
            hint = (
                " To serve a torch-trained model as a SavedModel, save it as "
                "`.keras`, load it with KERAS_BACKEND=tensorflow (after "
                "`import keras_din`) and export it there."
            )
        raise ValueError(
            f"The {backend!r} backend cannot export format={format!r}; it "
            f"exports {list(formats)}.{hint}"
        )
    kwargs = tie_unknown_dimensions(model, format, kwargs)
    model.export(filepath, format=format, **kwargs)
    return filepath


def tie_unknown_dimensions(model, format, kwargs):
    """`model.export`'s `kwargs`, with the tied `jax2tf` shapes (see
    `export_model`) where the JAX backend exports a SavedModel and neither
    `jax2tf_kwargs={"polymorphic_shapes": ...}` nor `input_signature` is
    given."""
    if keras.backend.backend() != "jax" or format != "tf_saved_model":
        return kwargs
    kwargs = dict(kwargs)
    jax2tf_kwargs = dict(kwargs.pop("jax2tf_kwargs", None) or {})
    if not ("polymorphic_shapes" in jax2tf_kwargs or kwargs.get("input_signature")):
        shapes = _tied_polymorphic_shapes(model)
        if shapes is not None:
            jax2tf_kwargs["polymorphic_shapes"] = shapes
    kwargs["jax2tf_kwargs"] = jax2tf_kwargs
    return kwargs


def _tied_polymorphic_shapes(model):
    """`jax2tf` shapes in which unknown dimensions at one axis are equal."""
    if isinstance(model, keras.Sequential):
        structure = model.inputs
    else:
        try:
            # A functional model takes its whole input structure as one
            # argument.
            structure = [model.input]
        except (AttributeError, ValueError):
            return None  # a subclassed model: Keras's own shapes

    def shape(x):
        dims = [
            str(d) if d is not None else ("batch" if axis == 0 else f"d{axis}")
            for axis, d in enumerate(x.shape)
        ]
        return f"({', '.join(dims)})"

    return keras.tree.map_structure(shape, structure)
