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
from keras_din.layers._nested_cell import NestedCell
from keras_din.layers._recurrence import check_exportable
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
    GRU, an `AttentionalGRUCell` (`layer.cell`, where the equations are),
    runs over the valid positions with `x_t = i_t`, except for `gru_type`:
    `"AUGRU"` (the paper's eq. 8) uses `a_t u_t` as the update gate,
    `"AGRU"` uses `a_t` instead of it, `"AIGRU"` takes `x_t = a_t i_t`;
    their output is the state after each sequence's last valid position.
    `"GRU"` runs the plain GRU and pools its states with the attention
    (DeepCTR's `gru_type="GRU"`). An empty history gives zeros.

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
        The cell's `[kernel (E, 3H), recurrent_kernel (H, 3H), bias (3H,),
        recurrent_bias (3H,)]` (see `AttentionalGRUCell`), then the
        activation unit's. `.keras` files keep the cell's weights in the
        layer's own entry, as keras-din 0.2 saved them.

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
        self.units = check_optional_units("units", units)
        # Tracked before the attention: its weights come first.
        self.cell = NestedCell(
            units=self.units,
            gru_type=gru_type,
            seed=seed,
            dtype=self.dtype_policy,
            name="cell",
        )
        self.gru_type = gru_type
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
        self._history_length = static_shape(keys_shape)[1]
        self.attention.build([query_shape, keys_shape])
        self.cell.build(keys_shape)  # after the attention, as 0.2 drew them

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
        if self.gru_type == "GRU":
            states = self.cell.scan(interests, mask=valid, return_sequences=True)
            output = self.attention([query, states], mask=valid, training=training)
        else:
            weights = self.attention([query, interests], mask=valid, training=training)
            attention = ops.transpose(weights, (0, 2, 1))  # (B, T, C)
            output = self.cell.scan(interests, mask=valid, attention=attention)
        return output[:, 0] if one_candidate else output

    def save_own_variables(self, store):
        self.cell.save_in_owner(store)  # the layout of 0.2 files

    def load_own_variables(self, store):
        self.cell.load_from_owner(store)

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
