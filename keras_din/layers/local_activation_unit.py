import keras
from keras import ops

from keras_din.layers._activations import activate
from keras_din.layers._activations import config_with_activation
from keras_din.layers._activations import deserialize_activation
from keras_din.layers._activations import hidden_layer_parts
from keras_din.layers._activations import serialize_activation
from keras_din.layers._checks import check_given_dtypes
from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_non_negative
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import check_rate
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._dtypes import cast_to
from keras_din.layers._first_layer import first_layer
from keras_din.layers.dice import Dice

_INPUT_KINDS = {"query": "float", "keys": "float"}


@keras.saving.register_keras_serializable(package="keras_din")
class LocalActivationUnit(keras.layers.Layer):
    """The DIN activation unit: scores each history item against a candidate.

    For every history position `t` the unit runs a small MLP over the
    concatenation `[q, k_t, q - k_t, q * k_t]` of the candidate embedding `q`
    and the history embedding `k_t`:

        h_0 = [q, k_t, q - k_t, q * k_t]
        h_i = dropout(activation(batch_norm?(h_{i-1} @ W_i + b_i)))
        score_t = h_L @ w_o + b_o

    The weights are laid out as in DeepCTR, so its trained weights load with
    `set_weights` (see the guide "Coming from DeepCTR"). The concatenation
    itself is never built (see the performance notes of the docs); the
    results are the same.

    Args:
        hidden_units: sequence of positive ints. Widths of the hidden layers.
            Defaults to `(64, 32)`.
        activation: Activation of every hidden layer: a Keras activation
            name or function, `"dice"`, `"prelu"` (per channel, from 0.25),
            or a layer (each hidden layer gets its own copy). Defaults to
            `"sigmoid"`.
        l2_reg: float. L2 factor of the hidden kernels. Defaults to `0.0`.
        dropout_rate: float in `[0, 1)`. Dropout after each hidden layer,
            `0.0` by default.
        use_bn: bool. Batch normalisation before each activation. Defaults
            to `False`.
        seed: int or `None`. Seed of the initialisers and dropout.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list `[query, keys]`: `query` of shape `(B, C, E)` holds
            `C` candidate embeddings (`C = 1` in classic DIN), `keys` of shape
            `(B, T, E)` the behaviour history.
        keys_mask: Optional boolean tensor of shape `(B, T)`, true at valid
            history positions. It only restricts the training statistics of
            Dice to the valid positions; every position is scored (masking
            is the pooling's job). A Keras mask on the inputs is ignored.
        query_index: Optional integer tensor of shape `(B_k,)`, for when
            `keys` holds `B_k` pieces of history that are not one per query
            row: row `i` of `keys` is scored against query row
            `query_index[i]`. Defaults to the same row.
        training: Python boolean. Whether dropout, batch normalisation and
            Dice run in training mode.

    Output:
        Scores of shape `(B, T, C)`: `(B, T, 1)` for one candidate, as in
        DeepCTR. The output carries no mask.

    Weights:
        `[W_1, b_1, ..., W_L, b_L, w_o, b_o]`, kernels of shape `(in, out)`
        and `W_1` of shape `(4E, H_1)` with rows in the order
        `[q; k; q - k; q * k]`; then, with `use_bn`, each hidden layer's
        batch normalisation weights; then each hidden layer's activation
        weights, if it has any (`alpha`, moving mean and variance for Dice;
        `alpha` for PReLU).

    Examples:

        >>> import numpy as np
        >>> unit = LocalActivationUnit(hidden_units=(16, 8))
        >>> query = np.random.rand(2, 1, 4).astype("float32")
        >>> keys = np.random.rand(2, 5, 4).astype("float32")
        >>> tuple(unit([query, keys]).shape)
        (2, 5, 1)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), Deep Interest
          Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        hidden_units=(64, 32),
        activation="sigmoid",
        l2_reg=0.0,
        dropout_rate=0.0,
        use_bn=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = check_positive_units("hidden_units", hidden_units)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.l2_reg = check_non_negative("l2_reg", l2_reg)
        self.activation = deserialize_activation(activation)
        self.use_bn = use_bn
        self.seed = seed
        # Masked inputs are taken without a warning; see `compute_mask`.
        self.supports_masking = True
        self.batch_norms = [
            keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name=f"batch_norm_{i}"
            )
            for i in range(len(self.hidden_units))
            if use_bn
        ]
        self._activation_function, self.activation_layers, self.dropouts = (
            hidden_layer_parts(self)
        )

    @property
    def uses_dice(self):
        """Whether the hidden layers' activation is `Dice`."""
        return any(isinstance(x, Dice) for x in self.activation_layers)

    def _initializer(self, index):
        seed = None if self.seed is None else self.seed + index
        return keras.initializers.GlorotNormal(seed=seed)

    def __call__(self, *args, **kwargs):
        check_given_dtypes(args, kwargs, _INPUT_KINDS, "keys_mask")
        return super().__call__(*args, **kwargs)

    def _validate_inputs(self, inputs, keys_mask=None, same_batch=True):
        """Checks the inputs (shapes or tensors); returns `[query, keys]`."""
        query, keys = split_inputs(inputs, self.__class__.__name__, (2,))
        check_query_and_keys(query, keys, same_batch=same_batch)
        if keys_mask is not None:
            check_keys_mask(keys_mask, keys, argument="keys_mask")
        return query, keys

    def build(self, input_shape):
        # The batch sizes are checked in the call, which knows `query_index`.
        _, keys_shape = self._validate_inputs(input_shape, same_batch=False)
        self.kernels, self.biases = [], []
        input_dim = 4 * static_shape(keys_shape)[-1]
        regularizer = keras.regularizers.L2(self.l2_reg) if self.l2_reg else None
        for i, units in enumerate(self.hidden_units):
            self.kernels.append(
                self.add_weight(
                    shape=(input_dim, units),
                    initializer=self._initializer(i),
                    regularizer=regularizer,
                    name=f"kernel_{i}",
                )
            )
            self.biases.append(
                self.add_weight(shape=(units,), initializer="zeros", name=f"bias_{i}")
            )
            input_dim = units
        self.output_kernel = self.add_weight(
            shape=(input_dim, 1),
            initializer=self._initializer(len(self.hidden_units)),
            name="output_kernel",
        )
        self.output_bias = self.add_weight(
            shape=(1,), initializer="zeros", name="output_bias"
        )
        for i, units in enumerate(self.hidden_units):
            for layers in (self.batch_norms, self.activation_layers):
                if layers:
                    layers[i].build((None, units))

    def call(self, inputs, keys_mask=None, query_index=None, training=None):
        query, keys = self._validate_inputs(inputs, keys_mask, query_index is None)
        batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
        candidates = ops.shape(query)[1]
        row_mask = None
        if keys_mask is not None and self.uses_dice:
            # One entry per (position, candidate) row of the hidden layers.
            row_mask = cast_to(keys_mask, "bool")
            if static_shape(query)[1] != 1:
                row_mask = ops.expand_dims(row_mask, -1)
                row_mask = ops.broadcast_to(row_mask, (batch, history, candidates))
            row_mask = ops.reshape(row_mask, (-1,))
        # One name for every layer's output, so that each is freed as soon
        # as the next layer has been computed.
        hidden = first_layer(query, keys, self.kernels[0], self.biases[0], query_index)
        for i in range(len(self.hidden_units)):
            if i > 0:
                hidden = ops.matmul(hidden, self.kernels[i]) + self.biases[i]
            if self.use_bn:
                hidden = self.batch_norms[i](hidden, training=training)
            hidden = activate(
                hidden,
                self._activation_function,
                self.activation_layers[i],
                training=training,
                mask=row_mask,
            )
            if self.dropouts:
                hidden = self.dropouts[i](hidden, training=training)
        scores = ops.matmul(hidden, self.output_kernel) + self.output_bias
        return ops.reshape(scores, (batch, history, candidates))

    def compute_output_shape(self, input_shape):
        query_shape, keys_shape = (static_shape(s) for s in input_shape)
        return keys_shape[:2] + query_shape[1:2]

    def compute_output_spec(self, inputs, keys_mask=None, query_index=None, **kwargs):
        query, keys = self._validate_inputs(inputs, keys_mask, query_index is None)
        shape = self.compute_output_shape([query.shape, keys.shape])
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": serialize_activation(self.activation),
                "l2_reg": self.l2_reg,
                "dropout_rate": self.dropout_rate,
                "use_bn": self.use_bn,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(config_with_activation(config, "activation"))
