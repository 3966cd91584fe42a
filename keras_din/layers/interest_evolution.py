import keras
from keras import ops

from keras_din.layers._activations import config_with_activation
from keras_din.layers._checks import check_keys_length
from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_optional_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._masking import valid_positions
from keras_din.layers._masking import zero_padding
from keras_din.layers._recurrence import GRU_TYPES
from keras_din.layers._recurrence import add_gru_weights
from keras_din.layers._recurrence import check_exportable
from keras_din.layers._recurrence import gated_recurrence
from keras_din.layers.attention_sequence_pooling_layer import (
    AttentionSequencePoolingLayer,
)


@keras.saving.register_keras_serializable(package="keras_din")
class InterestEvolution(keras.layers.Layer):
    """DIEN's interest evolution: a GRU driven by attention to the candidate.

    The attention `a_t` of each interest state `i_t` (from
    `InterestExtractor`) against the candidate comes from a
    `LocalActivationUnit`, softmax-normalised over the valid positions (as
    `AttentionSequencePoolingLayer(return_score=True)` computes it). A second
    GRU runs over the valid positions, with the gates in the order
    `[reset, update, candidate]`:

        r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + c_r)
        u_t = sigmoid(x_t W_u + b_u + h_{t-1} U_u + c_u)
        n_t = tanh(x_t W_n + b_n + r_t * (h_{t-1} U_n + c_n))
        h_t = (1 - u_t) * h_{t-1} + u_t * n_t

    where `x_t = i_t`, except for `gru_type`: `"AUGRU"` (the paper's eq. 8)
    uses `a_t u_t` as the update gate, `"AGRU"` uses `a_t` instead of it,
    `"AIGRU"` takes `x_t = a_t i_t`; their output is the state after each
    sequence's last valid position. `"GRU"` runs the plain GRU and pools its
    states with the attention (DeepCTR's `gru_type="GRU"`). An empty history
    gives zeros.

    Args:
        gru_type: one of `"AUGRU"`, `"AGRU"`, `"AIGRU"` and `"GRU"`.
            Defaults to `"AUGRU"`.
        units: int or `None`. Width `H` of the state; `None` takes the
            interests' width (which `"GRU"` requires). Defaults to `None`.
        att_hidden_units: Hidden widths of the activation unit.
            Defaults to `(64, 16)`.
        att_activation: Activation of the unit (see `LocalActivationUnit`).
            Defaults to `"sigmoid"`.
        weight_normalization: bool. Whether the attention is a softmax over
            the valid positions (`True`) or the raw scores. Defaults to
            `True`.
        seed: int or `None`. Seed of the GRU's initialisers.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list `[query, interests]` or `[query, interests,
            keys_length]`: `query` `(B, C, E)` candidates (or `(B, E)` for
            one), `interests` `(B, T, E)`.
        mask: Optional boolean `(B, T)` mask of the valid positions; by
            default the Keras mask `interests` carries (`InterestExtractor`
            sets it). Combined with `keys_length`.
        training: Python boolean. Passed to the activation unit.

    Output:
        `(B, C, H)`, or `(B, H)` for a `(B, E)` query.

    Weights:
        `[kernel (E, 3H), recurrent_kernel (H, 3H), bias (3H,),
        recurrent_bias (3H,)]`, then the activation unit's.

    Examples:

        >>> import numpy as np
        >>> evolution = InterestEvolution(gru_type="AUGRU")
        >>> query = np.random.rand(2, 1, 4).astype("float32")
        >>> interests = np.random.rand(2, 5, 4).astype("float32")
        >>> tuple(evolution([query, interests, np.array([3, 5])]).shape)
        (2, 1, 4)

    References:
        - [Zhou et al., 2019](https://arxiv.org/abs/1809.03672), Deep Interest
          Evolution Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        gru_type="AUGRU",
        units=None,
        att_hidden_units=(64, 16),
        att_activation="sigmoid",
        weight_normalization=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gru_type not in GRU_TYPES:
            raise ValueError(
                f"`gru_type` must be one of {GRU_TYPES}. "
                f"Received: gru_type={gru_type!r}"
            )
        self.gru_type = gru_type
        self.units = check_optional_units("units", units)
        self.seed = seed
        self.supports_masking = True
        self.attention = AttentionSequencePoolingLayer(
            att_hidden_units=att_hidden_units,
            att_activation=att_activation,
            weight_normalization=weight_normalization,
            return_score=gru_type != "GRU",
            dtype=self.dtype_policy,
            name="attention",
        )

    def _validate_inputs(self, inputs, mask=None):
        """Checks shapes or tensors; returns the inputs with a 3-D query."""
        inputs = split_inputs(inputs, self.__class__.__name__, (2, 3))
        query = inputs[0]
        query_shape = static_shape(query)
        if len(query_shape) == 2:  # one candidate
            query_shape = (query_shape[0], 1, query_shape[1])
            if not isinstance(query, (tuple, list)):
                query = ops.expand_dims(query, 1)
            else:
                query = query_shape
        check_query_and_keys(query, inputs[1])
        if len(inputs) == 3:
            check_keys_length(inputs[2], inputs[1])
        if mask is not None:
            check_keys_mask(mask, inputs[1])
        units = self.units or static_shape(inputs[1])[-1]
        if self.gru_type == "GRU" and units != static_shape(inputs[1])[-1]:
            raise ValueError(
                '`gru_type="GRU"` pools its states against the query, so `units` '
                f"must be the embedding size {static_shape(inputs[1])[-1]}. "
                f"Received: units={self.units}"
            )
        return [query] + list(inputs[1:])

    def build(self, input_shape):
        query_shape, keys_shape = self._validate_inputs(input_shape)[:2]
        self._history_length, dim = static_shape(keys_shape)[1:]
        units = self.units or dim
        self.attention.build([query_shape, keys_shape])
        gru = add_gru_weights(self, dim, units, self.seed)
        self.kernel, self.recurrent_kernel, self.bias, self.recurrent_bias = gru

    def call(self, inputs, mask=None, training=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[1]
        one_candidate = len(static_shape(inputs[0])) == 2
        inputs = self._validate_inputs(inputs, mask)
        check_exportable(self, self._history_length)
        query, interests = inputs[0], inputs[1]
        keys_length = inputs[2] if len(inputs) == 3 else None
        valid = valid_positions(interests, keys_length, mask)
        if valid is not None:
            interests = zero_padding(interests, valid)
        gru = (self.kernel, self.recurrent_kernel, self.bias, self.recurrent_bias)
        if self.gru_type == "GRU":
            states = gated_recurrence(interests, valid, *gru)
            output = self.attention([query, states], mask=valid, training=training)
        else:
            weights = self.attention([query, interests], mask=valid, training=training)
            output = gated_recurrence(
                interests,
                valid,
                *gru,
                gru_type=self.gru_type,
                attention=ops.transpose(weights, (0, 2, 1)),
            )
        return output[:, 0] if one_candidate else output

    def compute_output_shape(self, input_shape):
        query_shape = static_shape(input_shape[0])
        keys_shape = static_shape(input_shape[1])
        units = self.units or keys_shape[-1]
        return query_shape[:-1] + (units,)

    def compute_output_spec(self, inputs, mask=None, training=None):
        self._validate_inputs(
            inputs, mask[1] if isinstance(mask, (list, tuple)) else mask
        )
        return keras.KerasTensor(
            self.compute_output_shape([x.shape for x in inputs[:2]]),
            dtype=self.compute_dtype,
        )

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        attention = self.attention.get_config()
        config.update(
            {
                "gru_type": self.gru_type,
                "units": self.units,
                "att_hidden_units": attention["att_hidden_units"],
                "att_activation": attention["att_activation"],
                "weight_normalization": attention["weight_normalization"],
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(config_with_activation(config, "att_activation"))
