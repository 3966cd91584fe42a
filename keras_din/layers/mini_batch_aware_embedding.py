import keras
import numpy as np
from keras import ops

from keras_din.layers._backend import id_counts
from keras_din.layers._dtypes import cast_to


@keras.saving.register_keras_serializable(package="keras_din")
class MiniBatchAwareEmbedding(keras.layers.Layer):
    """An `Embedding` with the DIN paper's mini-batch aware regularization.

    Plain L2 on an embedding table touches every row at every step, which is
    unaffordable for tables of millions of ids and over-penalises rare ids.
    Mini-batch aware regularization (DIN paper, section 4.2) penalises only
    the rows of the ids that occur in the mini-batch, each scaled by the
    inverse of how often the id occurs in the training data:

        penalty = l2 * sum_{j in ids of the batch} ||w_j||^2 / n_j

    Each distinct id counts once per batch, however often it occurs in it,
    and in however many of the inputs of one call: call the table once on
    a list of the id tensors that share it (the candidate items and the
    history of items), for the paper's penalty per table and mini-batch.
    With the gradient of this penalty, an SGD step shrinks `w_j` by
    `lr * 2 * l2 * w_j / n_j` for every id `j` of the batch and leaves the
    other rows alone: the paper's update, with `l2` for `lambda / 2`. The
    penalty is added to the layer's losses in training only. It reads the
    rows of the batch alone; besides them it counts the batch's ids into one
    vector of `input_dim` floats, a small fraction of the table.

    Args:
        input_dim: int. Size of the vocabulary (largest id + 1).
        output_dim: int. Dimension of the embeddings.
        frequencies: Optional array of shape `(input_dim,)`: `n_j`, how often
            each id occurs in the training data. Counts below 1 are taken as
            1. Stored in the non-trainable weight `frequencies`, so it is saved
            with the model. Defaults to `None`, all ones (a plain L2 on the
            rows of the batch).
        l2: float. Strength of the penalty. Defaults to `0.0` (none).
        embeddings_initializer: Initializer of the table. Defaults to
            `"uniform"`, as `keras.layers.Embedding`.
        mask_zero: bool. Whether id 0 is padding: the output then carries a
            Keras mask (as `keras.layers.Embedding(mask_zero=True)`) and id 0
            is not penalised. Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Integer tensor of ids, of any shape, or a list of them.
        training: Python boolean. The penalty is added only in training.

    Output:
        The embeddings, of shape `inputs.shape + (output_dim,)`; for a list,
        the list of each input's embeddings (each with its mask).

    Examples:

        >>> import numpy as np
        >>> counts = np.bincount([1, 1, 2, 3, 3, 3], minlength=5)
        >>> layer = MiniBatchAwareEmbedding(
        ...     5, 4, frequencies=counts, l2=1e-3, mask_zero=True)
        >>> tuple(layer(np.array([[1, 3, 0]]), training=True).shape)
        (1, 3, 4)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), section 4.2.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        frequencies=None,
        l2=0.0,
        embeddings_initializer="uniform",
        mask_zero=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive int. Received: {name}={value!r}"
                )
        if not l2 >= 0.0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2!r}")
        if frequencies is not None:
            frequencies = np.asarray(frequencies, dtype="float32")
            if frequencies.shape != (input_dim,):
                raise ValueError(
                    f"`frequencies` must have shape (input_dim,) = ({input_dim},). "
                    f"Received: frequencies.shape={frequencies.shape}"
                )
            if np.any(frequencies < 0) or not np.all(np.isfinite(frequencies)):
                raise ValueError(
                    "`frequencies` must be finite and >= 0. Received: "
                    f"min={frequencies.min()}, max={frequencies.max()}"
                )
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.l2 = l2
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.mask_zero = mask_zero
        self.supports_masking = mask_zero
        self._initial_frequencies = frequencies

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
        )
        self.frequencies = self.add_weight(
            shape=(self.input_dim,),
            initializer="ones",
            trainable=False,
            autocast=False,
            name="frequencies",
        )
        if self._initial_frequencies is not None:
            self.frequencies.assign(self._initial_frequencies)

    def call(self, inputs, training=None):
        ids = [
            x
            if keras.backend.standardize_dtype(x.dtype) in ("int32", "int64")
            else ops.cast(x, "int32")
            for x in _as_list(inputs)
        ]
        outputs = [
            cast_to(ops.take(self.embeddings, x, axis=0), self.compute_dtype)
            for x in ids
        ]
        if training and self.l2 > 0:
            self.add_loss(self._penalty(ids, outputs))
        return _as_given(inputs, outputs)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return _as_given(inputs, [ops.not_equal(x, 0) for x in _as_list(inputs)])

    def compute_output_shape(self, input_shape):
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            return [(*shape, self.output_dim) for shape in input_shape]
        return (*input_shape, self.output_dim)

    def _penalty(self, ids, outputs):
        ids = _flat_concatenation([cast_to(x, "int32") for x in ids], ())
        rows = _flat_concatenation(
            [cast_to(x, "float32") for x in outputs], (self.output_dim,)
        )
        # Each occurrence carries 1 / (its id's count in the batch) of the
        # row's penalty, so that each distinct id counts once.
        in_batch = ops.take(id_counts(ids, self.input_dim), ids)
        in_data = ops.maximum(ops.take(self.frequencies, ids), 1.0)
        share = 1.0 / (in_data * ops.cast(in_batch, "float32"))
        if self.mask_zero:
            share = ops.where(ops.not_equal(ids, 0), share, 0.0)
        return self.l2 * ops.sum(share * ops.sum(ops.square(rows), axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "l2": self.l2,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "mask_zero": self.mask_zero,
            }
        )
        return config


def _as_list(inputs):
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _as_given(inputs, values):
    """`values` (one per entry of `_as_list(inputs)`) as `inputs` came: a
    list, or the single value."""
    return values if isinstance(inputs, (list, tuple)) else values[0]


def _flat_concatenation(tensors, trailing):
    """The tensors reshaped to `(-1, *trailing)` and concatenated."""
    flat = [ops.reshape(x, (-1, *trailing)) for x in tensors]
    return flat[0] if len(flat) == 1 else ops.concatenate(flat, axis=0)
