import numbers

import keras

from keras_din.layers._auxiliary_loss import auxiliary_loss
from keras_din.layers._checks import check_dtype
from keras_din.layers._checks import check_keys_length
from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_non_negative
from keras_din.layers._checks import check_optional_units
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import dims_disagree
from keras_din.layers._checks import static_shape
from keras_din.layers._masking import valid_positions
from keras_din.layers._masking import zero_padding
from keras_din.layers._nested_cell import NestedCell
from keras_din.layers._recurrence import check_exportable


@keras.saving.register_keras_serializable(package="keras_din")
class InterestExtractor(keras.layers.Layer):
    """DIEN's interest extractor: a GRU over the behaviour sequence.

    The GRU (an `AttentionalGRUCell` of type `"GRU"`, `layer.cell`) runs
    over the valid positions of the history, carrying its state over the
    padding, and returns the hidden state `h_t` at every position (0 at the
    padding). With `auxiliary_loss_weight > 0` and `negative_keys`, training
    adds the DIEN paper's auxiliary loss (eq. 3) through `add_loss`: the
    binary cross-entropy of a small MLP on `[h_t, e_{t+1}]`, the item
    clicked next (label 1), and on `[h_t, ê_{t+1}]`, a sampled item not
    clicked (label 0), averaged over the pairs whose positions `t` and
    `t + 1` are both valid (0 where there is none), times the weight.

    Args:
        units: int or `None`. Width `H` of the hidden state; `None` takes
            the embedding size `E`. Defaults to `None`.
        auxiliary_loss_weight: float `>= 0`. Weight of the auxiliary loss;
            0 leaves it out. Defaults to `0.0`.
        auxiliary_hidden_units: sequence of positive ints. Hidden widths of
            the auxiliary MLP (sigmoid activations, as in DeepCTR).
            Defaults to `(100, 50)`.
        seed: int or `None`. Seed of the initialisers. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `keys` of shape `(B, T, E)`, or a list `[keys,
            keys_length]` with integer lengths `(B,)` or `(B, 1)`, as the
            pooling layer takes them.
        mask: Optional boolean `(B, T)` mask of the valid positions (or the
            Keras mask `keys` carries); combined with `keys_length`.
        negative_keys: Optional `(B, T, E)` embeddings of items not clicked,
            one per step, for the auxiliary loss.
        inputs_mask: Not to be passed: where `negative_keys` is given too,
            Keras passes the Keras mask of `keys` here instead of in `mask`
            (it fills `mask` for a call of one tensor argument only). Used
            where `mask` is `None`.
        training: Python boolean. The auxiliary loss is added in training
            only.

    Output:
        The hidden states, shape `(B, T, H)`, carrying the `(B, T)` mask of
        the valid positions.

    Weights:
        The cell's `[kernel (E, 3H), recurrent_kernel (H, 3H), bias (3H,),
        recurrent_bias (3H,)]` (see `AttentionalGRUCell`), then the
        auxiliary MLP's kernels and biases. `.keras` files keep the cell's
        weights in the layer's own entry, as keras-din 0.2 saved them.

    Examples:

        >>> import numpy as np
        >>> extractor = InterestExtractor(units=6)
        >>> keys = np.random.rand(2, 5, 4).astype("float32")
        >>> states = extractor([keys, np.array([3, 0])])  # lengths 3 and 0
        >>> tuple(states.shape)
        (2, 5, 6)
        >>> float(np.abs(keras.ops.convert_to_numpy(states)[1]).max())
        0.0

    References:
        - [Zhou et al., 2019](https://arxiv.org/abs/1809.03672), Deep Interest
          Evolution Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        units=None,
        auxiliary_loss_weight=0.0,
        auxiliary_hidden_units=(100, 50),
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_optional_units("units", units)
        self.auxiliary_loss_weight = check_non_negative(
            "auxiliary_loss_weight", auxiliary_loss_weight
        )
        self.auxiliary_hidden_units = check_positive_units(
            "auxiliary_hidden_units", auxiliary_hidden_units
        )
        self.seed = seed
        self.supports_masking = True
        # Tracked first: its weights come first.
        self.cell = NestedCell(
            units=self.units,
            gru_type="GRU",
            seed=seed,
            dtype=self.dtype_policy,
            name="cell",
        )
        widths = (*self.auxiliary_hidden_units, 1)  # then the logit
        self.auxiliary_layers = [
            keras.layers.Dense(
                width,
                activation="sigmoid" if i < len(widths) - 1 else None,
                kernel_initializer=keras.initializers.GlorotUniform(self._seed(2 + i)),
                dtype=self.dtype_policy,
                name=f"auxiliary_{i}",
            )
            for i, width in enumerate(widths)
        ]

    def _seed(self, index):
        return None if self.seed is None else self.seed + index

    def _validate_inputs(self, inputs, mask=None, negative_keys=None):
        """Checks shapes or tensors; returns `(keys, keys_length or None)`."""
        keys, keys_length = inputs, None
        if isinstance(inputs, (list, tuple)) and not all(
            x is None or isinstance(x, numbers.Integral) for x in inputs
        ):  # a list of inputs, not one shape
            keys, keys_length = (list(inputs) + [None])[:2]
            if len(inputs) > 2:
                keys = None
        if keys is None or not (
            hasattr(keys, "shape") or isinstance(keys, (tuple, list))
        ):
            raise ValueError(
                "`InterestExtractor` expects `inputs` to be `keys` or a list "
                f"`[keys, keys_length]`. Received: inputs={inputs!r:.120}"
            )
        keys_shape = static_shape(keys)
        if hasattr(keys, "dtype"):
            check_dtype("keys", keys, "float")
        # An unknown embedding size is rejected at build only: under export
        # tracers, sizes in `call` may not be plain ints.
        building = not hasattr(keys, "dtype")
        if len(keys_shape) != 3 or (building and keys_shape[-1] is None):
            raise ValueError(
                "`keys` must have rank 3, shape (batch, history_length, "
                "embedding_dim), with a known embedding_dim. "
                f"Received: keys.shape={keys_shape}"
            )
        if keys_length is not None:
            check_keys_length(keys_length, keys)
        if mask is not None:
            check_keys_mask(mask, keys)
        if negative_keys is not None:
            check_dtype("negative_keys", negative_keys, "float")
            negative_shape = static_shape(negative_keys)
            if len(negative_shape) != 3 or any(
                dims_disagree(a, b)
                for a, b in zip(negative_shape, keys_shape, strict=True)
            ):
                raise ValueError(
                    f"`negative_keys` must have the shape of `keys`, {keys_shape}. "
                    f"Received: negative_keys.shape={negative_shape}"
                )
        return keys, keys_length

    def build(self, input_shape):
        keys_shape, _ = self._validate_inputs(input_shape)
        self._history_length, dim = static_shape(keys_shape)[1:]
        self.cell.build(keys_shape)
        width = (self.units or dim) + dim
        for layer in self.auxiliary_layers:
            layer.build((None, width))
            width = layer.units

    def call(
        self, inputs, mask=None, negative_keys=None, training=None, inputs_mask=None
    ):
        mask = _mask_of_keys(inputs_mask if mask is None else mask)
        keys, keys_length = self._validate_inputs(inputs, mask, negative_keys)
        check_exportable(self, self._history_length)
        valid = valid_positions(keys, keys_length, mask)
        if valid is not None:
            keys = zero_padding(keys, valid)  # nothing of the padding leaks
        states = self.cell.scan(keys, mask=valid, return_sequences=True)
        if training and self.auxiliary_loss_weight > 0 and negative_keys is not None:
            loss = auxiliary_loss(
                self.auxiliary_layers, states, keys, negative_keys, valid
            )
            self.add_loss(self.auxiliary_loss_weight * loss)
        return states

    def save_own_variables(self, store):
        self.cell.save_in_owner(store)  # the layout of 0.2 files

    def load_own_variables(self, store):
        self.cell.load_from_owner(store)

    def compute_output_shape(self, input_shape):
        keys_shape, _ = self._validate_inputs(input_shape)
        keys_shape = static_shape(keys_shape)
        return keys_shape[:2] + (self.units or keys_shape[2],)

    def compute_output_spec(
        self, inputs, mask=None, negative_keys=None, training=None, inputs_mask=None
    ):
        mask = _mask_of_keys(inputs_mask if mask is None else mask)
        keys, _ = self._validate_inputs(inputs, mask, negative_keys)
        return keras.KerasTensor(
            self.compute_output_shape(static_shape(keys)), dtype=self.compute_dtype
        )

    def compute_mask(self, inputs, mask=None):
        keys, keys_length = self._validate_inputs(inputs)
        mask = _mask_of_keys(mask)
        if isinstance(keys, keras.KerasTensor):
            # Symbolic: only its shape matters, and T may be unknown.
            if keys_length is None and mask is None:
                return None
            return keras.KerasTensor(keys.shape[:2], dtype="bool")
        return valid_positions(keys, keys_length, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "auxiliary_loss_weight": self.auxiliary_loss_weight,
                "auxiliary_hidden_units": list(self.auxiliary_hidden_units),
                "seed": self.seed,
            }
        )
        return config


def _mask_of_keys(mask):
    """The mask of `keys` from a mask or a list of one per input."""
    return mask[0] if isinstance(mask, (list, tuple)) else mask
