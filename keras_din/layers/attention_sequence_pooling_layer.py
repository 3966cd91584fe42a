import keras
from keras import ops

from keras_din.layers._activations import activation_factory
from keras_din.layers._activations import config_with_activation
from keras_din.layers._activations import deserialize_activation
from keras_din.layers._backend import has_dynamic_shapes
from keras_din.layers._backend import is_tracing_fixed_shapes
from keras_din.layers._checks import check_given_dtypes
from keras_din.layers._checks import check_keys_length
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import keys_mask_of
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._masking import attention_weights
from keras_din.layers._masking import valid_positions
from keras_din.layers._masking import weighted_sum
from keras_din.layers._masking import zero_padding
from keras_din.layers._padding import ValidBlocks
from keras_din.layers._padding import block_size
from keras_din.layers.local_activation_unit import LocalActivationUnit

_INPUT_KINDS = {"query": "float", "keys": "float", "keys_length": "integer"}


@keras.saving.register_keras_serializable(package="keras_din")
class AttentionSequencePoolingLayer(keras.layers.Layer):
    """DIN attention pooling of a behaviour sequence against candidates.

    A `LocalActivationUnit` scores every valid history item against each
    candidate; the scores, softmax-normalised over the valid positions or
    used as they are, weight a sum of the history embeddings. Padded
    positions always get weight exactly 0, and nothing they hold (NaN and
    inf included) reaches a valid output or gradient. A row with no valid
    position (an empty history) gives all-zero weights and output.

    The arguments, defaults and call conventions are DeepCTR's, and on every
    non-empty history the outputs equal DeepCTR's for the same weights.

    Args:
        att_hidden_units: sequence of positive ints. Hidden widths of the
            activation unit. Defaults to `(80, 40)`.
        att_activation: Activation of the unit's hidden layers: a Keras
            activation name or function, `"dice"`, `"prelu"` or a layer (see
            `LocalActivationUnit`). Defaults to `"sigmoid"`.
        weight_normalization: bool. Whether to softmax the scores over the
            valid positions (else raw scores). Defaults to `False`.
        return_score: bool. Whether to return the attention weights, not
            the pooled embedding. Defaults to `False`.
        dice_ignores_padding: bool. With `att_activation="dice"`, whether
            Dice takes its training statistics over the valid history
            positions only; `False` includes the padding, as DeepCTR does.
            Inference (moving statistics) is the same either way. Defaults
            to `True`.
        skip_padding: bool. Whether to score the valid positions only (same
            results, less work; see `skip_block_size`). Defaults to `True`.
        supports_masking: Ignored (DeepCTR's): a Keras mask is always taken.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list or tuple `[query, keys]` or `[query, keys,
            keys_length]`. `query` of shape `(B, C, E)` holds `C` candidate
            embeddings (`C = 1` in classic DIN); `keys` of shape `(B, T, E)`
            the behaviour history; `keys_length`, an integer tensor of shape
            `(B,)` or `(B, 1)`, the number of valid items of each history
            (values above `T` mean all valid, values at or below 0 none;
            on JAX without x64, int64 lengths above `2**31 - 1` wrap).
        mask: Optional boolean `(B, T)` tensor, true at valid positions
            (integer: nonzero is valid), or one mask per input (that of
            `keys` is used). By default the Keras mask `keys` carries; an
            explicit `mask` replaces it. Combined with `keys_length`.
        training: Python boolean. Passed to the activation unit.

    Output:
        The pooled history `(B, C, E)`, or with `return_score=True` the
        attention weights `(B, C, T)`; no mask.

    Attributes:
        skip_block_size: `None` until the layer is built, and after it where
            every history position is computed; else the size `P` of the
            blocks of consecutive positions that are gathered when they hold
            a valid one (the rest is left out); see the guide "DIN layers
            in your own model" for when padding is skipped.

    Examples:

        >>> import numpy as np
        >>> layer = AttentionSequencePoolingLayer(weight_normalization=True)
        >>> query = np.random.rand(2, 1, 4).astype("float32")
        >>> keys = np.random.rand(2, 5, 4).astype("float32")
        >>> keys_length = np.array([[3], [0]])
        >>> tuple(layer([query, keys, keys_length]).shape)
        (2, 1, 4)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), Deep Interest
          Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        att_hidden_units=(80, 40),
        att_activation="sigmoid",
        weight_normalization=False,
        return_score=False,
        dice_ignores_padding=True,
        skip_padding=True,
        supports_masking=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.att_hidden_units = check_positive_units(
            "att_hidden_units", att_hidden_units
        )
        self.att_activation = deserialize_activation(att_activation)
        activation_factory(self.att_activation, argument="att_activation")  # checks
        self.weight_normalization = bool(weight_normalization)
        self.return_score = bool(return_score)
        self.dice_ignores_padding = bool(dice_ignores_padding)
        self.skip_padding = bool(skip_padding)
        self.skip_block_size = None
        self.supports_masking = True
        self.local_att = LocalActivationUnit(
            hidden_units=self.att_hidden_units,
            activation=self.att_activation,
            dtype=self.dtype_policy,
            name="local_activation_unit",
        )
        # Dice statistics over the padding take in what it holds (DeepCTR's).
        self._unit_takes_padding = self.local_att.uses_dice and not (
            self.dice_ignores_padding
        )

    def __call__(self, *args, **kwargs):
        check_given_dtypes(args, kwargs, _INPUT_KINDS, "mask")
        return super().__call__(*args, **kwargs)

    def _validate_inputs(self, inputs, mask=None):
        """Checks the inputs (shapes or tensors) and the mask; returns the
        inputs as a list and the `(B, T)` mask of `keys` in `mask` (or `None`)."""
        inputs = split_inputs(inputs, self.__class__.__name__, (2, 3))
        query, keys = inputs[0], inputs[1]
        check_query_and_keys(query, keys)
        if len(inputs) == 3:
            check_keys_length(inputs[2], keys)
        return inputs, keys_mask_of(mask, inputs)

    def build(self, input_shape):
        inputs, _ = self._validate_inputs(input_shape)
        self.local_att.build(inputs[:2])
        # Skipping needs data-dependent sizes and leaves the padding out of
        # the batch statistics (Dice with `dice_ignores_padding=False`'s).
        if (
            self.skip_padding
            and has_dynamic_shapes()
            and not self.local_att.use_bn
            and not self._unit_takes_padding
        ):
            self.skip_block_size = block_size(static_shape(inputs[1])[1])

    def call(self, inputs, mask=None, training=None):
        inputs, keys_mask = self._validate_inputs(inputs, mask)
        query, keys = inputs[0], inputs[1]
        keys_length = inputs[2] if len(inputs) == 3 else None
        valid = valid_positions(keys, keys_length, keys_mask)
        blocks = None
        if (
            valid is not None
            and self.skip_block_size is not None
            and not is_tracing_fixed_shapes()
        ):
            blocks = ValidBlocks(keys, valid, self.skip_block_size)
        # Zeros at the padding for what multiplies the keys: 0 times NaN is
        # NaN, forward and backward (the unit's weight gradients multiply its
        # inputs by the zero gradients there). Blocks zero their own keys.
        clean_keys = keys
        if valid is not None and (blocks is None or static_shape(query)[1] != 1):
            clean_keys = zero_padding(keys, valid)
        unit_keys = keys if self._unit_takes_padding else clean_keys
        scores = self._calculate_scores(query, unit_keys, valid, blocks, training)
        return self._apply_scores(scores, keys, clean_keys, valid, blocks)

    def _calculate_scores(self, query, keys, valid, blocks, training):
        """The unit's `(B, T, C)` scores; 0 at the positions left out. (Its
        `call`: checked and built, it is spared the `Layer.__call__`.)"""
        if blocks is not None:
            return blocks.scatter(
                self.local_att.call(
                    [query, blocks.keys],
                    keys_mask=blocks.valid,
                    query_index=blocks.owners,
                    training=training,
                )
            )
        return self.local_att.call(
            [query, keys],
            keys_mask=valid if self.dice_ignores_padding else None,
            training=training,
        )

    def _apply_scores(self, scores, keys, clean_keys, valid, blocks):
        """Masks and normalises the scores, then pools (or returns) them."""
        if valid is not None:
            valid = ops.expand_dims(valid, -1)
        weights = attention_weights(scores, valid, self.weight_normalization)
        if self.return_score:
            return ops.transpose(weights, (0, 2, 1))  # (B, C, T)
        if static_shape(scores)[-1] != 1:
            return ops.matmul(ops.transpose(weights, (0, 2, 1)), clean_keys)
        if blocks is not None:
            # Only the kept rows are weighted: no (B, T, E) product is made
            # or kept for the backward pass.
            return blocks.weighted_sum(weights)
        return weighted_sum(weights, keys, clean_keys, valid)

    def compute_output_shape(self, input_shape):
        query_shape, keys_shape = (static_shape(s) for s in input_shape[:2])
        last = keys_shape[1] if self.return_score else keys_shape[2]
        return (keys_shape[0], query_shape[1], last)

    def compute_output_spec(self, inputs, mask=None, training=None):
        inputs, _ = self._validate_inputs(inputs, mask)
        return keras.KerasTensor(
            self.compute_output_shape([x.shape for x in inputs]),
            dtype=self.compute_dtype,
        )

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        activation = self.local_att.get_config()["activation"]
        config.update(
            {
                "att_hidden_units": list(self.att_hidden_units),
                "att_activation": activation,
                "weight_normalization": self.weight_normalization,
                "return_score": self.return_score,
                "dice_ignores_padding": self.dice_ignores_padding,
                "skip_padding": self.skip_padding,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(config_with_activation(config, "att_activation"))
