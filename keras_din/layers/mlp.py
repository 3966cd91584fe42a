import keras
from keras import ops

from keras_din.layers._activations import activate
from keras_din.layers._activations import config_with_activation
from keras_din.layers._activations import deserialize_activation
from keras_din.layers._activations import hidden_layer_parts
from keras_din.layers._activations import serialize_activation
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_rate
from keras_din.layers._checks import static_shape


@keras.saving.register_keras_serializable(package="keras_din")
class MLP(keras.layers.Layer):
    """A stack of dense layers with one activation: the builders' MLP head.

    For each hidden width `H_i`,

        h_i = dropout(activation(h_{i-1} @ W_i + b_i))

    with `h_0` the input. It computes what a `keras.layers.Dense` followed by
    an activation layer (and a `Dropout`) per width computes, in one layer:
    a functional model runs one layer call instead of two or three per
    width, which on an eager backend costs more than the small products.

    Args:
        hidden_units: sequence of positive ints. The widths `H_i`.
        activation: Activation of every layer: a Keras activation name or
            function, `"dice"`, `"prelu"` (per channel, from 0.25), or a
            layer (each layer gets its own copy). Defaults to `"relu"`.
        dropout_rate: float in `[0, 1)`. Dropout after each activation.
            Defaults to `0.0`.
        kernel_initializer: Initializer of the kernels. Defaults to
            `"glorot_uniform"`, as `keras.layers.Dense`.
        seed: int or `None`. Seed of the dropout (layer `i` uses
            `seed + i`). Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A floating tensor of shape `(..., D)`.
        training: Python boolean. Whether dropout and Dice run in training
            mode.

    Output:
        A tensor of shape `(..., H_L)`, the last width.

    Weights:
        `[W_1, b_1, ..., W_L, b_L]`, kernels of shape `(in, out)`, then each
        layer's activation weights, if it has any (`alpha`, moving mean and
        variance for Dice; `alpha` for PReLU).

    Examples:

        >>> import numpy as np
        >>> mlp = MLP(hidden_units=(16, 8), activation="dice")
        >>> tuple(mlp(np.ones((4, 10), "float32")).shape)
        (4, 8)
    """

    def __init__(
        self,
        hidden_units,
        activation="relu",
        dropout_rate=0.0,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = check_positive_units("hidden_units", hidden_units)
        self.activation = deserialize_activation(activation)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self._activation_function, self.activation_layers, self.dropouts = (
            hidden_layer_parts(self)
        )

    def build(self, input_shape):
        input_dim = static_shape(input_shape)[-1] if len(input_shape) else None
        if len(input_shape) < 2 or input_dim is None:
            raise ValueError(
                "`MLP` takes inputs of shape (..., D) with a known D. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.kernels, self.biases = [], []
        for i, units in enumerate(self.hidden_units):
            self.kernels.append(
                self.add_weight(
                    shape=(input_dim, units),
                    initializer=self._initializer(i),
                    name=f"kernel_{i}",
                )
            )
            self.biases.append(
                self.add_weight(shape=(units,), initializer="zeros", name=f"bias_{i}")
            )
            input_dim = units
        for units, layer in zip(self.hidden_units, self.activation_layers, strict=True):
            layer.build((*input_shape[:-1], units))

    def _initializer(self, index):
        """`kernel_initializer` for the first layer, a copy of it for each
        later one: one object draws the same numbers at every call (a seeded
        copy is seeded `seed + index`, as the dropout)."""
        if index == 0:
            return self.kernel_initializer
        config = keras.initializers.serialize(self.kernel_initializer)
        seed = config["config"].get("seed")
        if isinstance(seed, int):
            config = {**config, "config": {**config["config"], "seed": seed + index}}
        return keras.initializers.deserialize(config)

    def call(self, inputs, training=None):
        hidden = inputs
        for i in range(len(self.hidden_units)):
            hidden = ops.matmul(hidden, self.kernels[i]) + self.biases[i]
            hidden = activate(
                hidden,
                self._activation_function,
                self.activation_layers[i],
                training=training,
            )
            if self.dropouts:
                hidden = self.dropouts[i](hidden, training=training)
        return hidden

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.hidden_units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": serialize_activation(self.activation),
                "dropout_rate": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(config_with_activation(config, "activation"))
