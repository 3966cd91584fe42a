"""The activation of the unit's hidden layers: names, functions, layers."""

import keras
from keras import ops

from keras_din.layers.dice import Dice


def activation_factory(activation, argument="activation"):
    """Returns `(make_layer, function)` for the hidden layers' activation.

    `make_layer(name)` makes one fresh activation layer per hidden layer.
    `function` is the activation as a plain function when it has no state
    (else `None`): the unit applies it directly, as the overhead of a layer
    call is comparable to a sigmoid over a small batch.
    """
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()
        config.pop("name", None)
        try:
            activation.__class__.from_config(dict(config))
        except Exception as error:
            if not isinstance(
                activation, (keras.layers.Lambda, keras.layers.Activation)
            ):
                raise ValueError(
                    f"`{argument}` is a layer that cannot be rebuilt from its "
                    "config, which gives each hidden layer its own copy: "
                    f"{error}. Register its class (and any function it holds) "
                    "with keras.saving.register_keras_serializable. "
                    f"Received: {argument}={activation!r}"
                ) from error
            # Stateless: one object can serve every hidden layer.
            return (lambda name: activation), None
        return (
            lambda name: activation.__class__.from_config({**config, "name": name}),
            None,
        )
    if isinstance(activation, str) and activation.lower() == "dice":
        return (lambda name: Dice(name=name)), None
    if isinstance(activation, str) and activation.lower() == "prelu":
        # One slope per channel, starting at 0.25 as in the PReLU paper and
        # in torch.nn.PReLU (keras.layers.PReLU alone would start at 0).
        return (
            lambda name: keras.layers.PReLU(
                alpha_initializer=keras.initializers.Constant(0.25), name=name
            ),
            None,
        )
    if isinstance(activation, str) or callable(activation):
        try:
            function = keras.activations.get(activation)
        except (ValueError, TypeError):
            function = None
        if function is keras.activations.sigmoid:
            # keras.activations.sigmoid hangs its input on the output (for
            # losses): autograd, which keeps the output, would keep the
            # pre-activation alive too, a hidden layer's worth of memory.
            function = ops.sigmoid
        if function is not None:
            return (lambda name: keras.layers.Activation(function, name=name)), function
    raise ValueError(
        f"`{argument}` must be a Keras activation name, 'dice', 'prelu', an "
        f"activation function or a keras.layers.Layer. Received: "
        f"{argument}={activation!r}"
    )


def hidden_layer_parts(owner):
    """`(function, activations, dropouts)` of the hidden layers of `owner`.

    `owner` (the unit, an `MLP`) has `activation`, `hidden_units`,
    `dropout_rate`, `seed` and `dtype_policy`. `function` is its activation
    as a plain function, or `None` (see `activation_factory`); `activations`
    holds one activation layer per hidden layer (named `activation_<i>`),
    `dropouts` one `Dropout` per hidden layer where `dropout_rate > 0`
    (seeded `seed + i`, so that their masks are not alike), else none.
    """
    make_activation, function = activation_factory(owner.activation)
    count, seed = len(owner.hidden_units), owner.seed
    activations = [make_activation(f"activation_{i}") for i in range(count)]
    for layer in activations:
        layer.dtype_policy = owner.dtype_policy
    dropouts = [
        keras.layers.Dropout(
            owner.dropout_rate,
            seed=None if seed is None else seed + i,
            dtype=owner.dtype_policy,
        )
        for i in range(count)
        if owner.dropout_rate > 0
    ]
    return function, activations, dropouts


def activate(x, function, layer, training=None, mask=None):
    """`x` through a hidden layer's activation: `function` where it is one
    (see `activation_factory`), else `layer`.

    A `Dice`, built by its owner, runs its `call` (with `mask`, the valid
    rows of its training statistics): the `Layer.__call__` costs more than
    Dice itself on small eager batches, and adds nothing a built sublayer of
    a called layer needs (as in keras.layers.TimeDistributed).
    """
    if function is not None:
        return function(x)
    if isinstance(layer, Dice):
        return layer.call(x, training=training, mask=mask)
    return layer(x, training=training)


def serialize_activation(activation):
    if isinstance(activation, str):
        return activation
    if isinstance(activation, keras.layers.Layer):
        return keras.saving.serialize_keras_object(activation)
    return keras.activations.serialize(activation)


def deserialize_activation(config):
    """The activation that `serialize_activation` gave `config` for."""
    if isinstance(config, dict):
        return keras.saving.deserialize_keras_object(config)
    return config


def config_with_activation(config, key):
    """A copy of layer config `config` with its activation `key` deserialised.

    For `from_config`: Keras turns whatever a layer's constructor raises into
    a `TypeError` of its own, which would hide its errors about the
    activation (such as safe_mode's about a `Lambda`); raised here, they
    reach the caller as Keras raises them.
    """
    return {**config, key: deserialize_activation(config[key])}
