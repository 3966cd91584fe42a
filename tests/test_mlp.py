import re

import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import to_numpy

from keras_din import MLP


def test_weights_are_kernels_and_biases_then_activations():
    mlp = MLP((6, 3), activation="dice")
    mlp.build((None, 5))
    names = [w.path.split("/")[-1] for w in mlp.weights]
    assert names[:4] == ["kernel_0", "bias_0", "kernel_1", "bias_1"]
    assert names[4:] == ["alpha", "moving_mean", "moving_variance"] * 2
    assert [tuple(w.shape) for w in mlp.weights[:4]] == [(5, 6), (6,), (6, 3), (3,)]


@pytest.mark.parametrize("initializer", ["glorot_uniform", "he_normal"])
@pytest.mark.parametrize("seed", [None, 5])
def test_layers_draw_their_own_initial_kernels(initializer, seed):
    initializer = keras.initializers.get({"class_name": initializer, "config": {}})
    if seed is not None:
        initializer = initializer.__class__(seed=seed)
    mlp = MLP((4, 4, 4), kernel_initializer=initializer)
    mlp.build((None, 4))
    first, second, third = (to_numpy(k) for k in mlp.kernels)
    assert not np.allclose(first, second) and not np.allclose(second, third)
    if seed is not None:  # reproducible: the same seeds again
        again = MLP((4, 4, 4), kernel_initializer=initializer)
        again.build((None, 4))
        np.testing.assert_array_equal(to_numpy(again.kernels[1]), second)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "linear"])
def test_matches_numpy_reference(rng, activation):
    x = rng.normal(size=(7, 5)).astype("float32")
    mlp = MLP((8, 4), activation=activation)
    mlp.build(x.shape)
    weights = random_like_weights(mlp, rng)
    mlp.set_weights(weights)
    expected = x.astype("float64")
    for kernel, bias in zip(weights[0::2], weights[1::2], strict=True):
        expected = ref.ACTIVATIONS[activation](expected @ kernel + bias)
    np.testing.assert_allclose(to_numpy(mlp(x)), expected, rtol=1e-5, atol=1e-5)


def test_dice_trains_on_batch_moments_and_infers_on_moving_ones(rng):
    x = rng.normal(loc=1.0, size=(2, 6, 5)).astype("float32")  # rank 3
    mlp = MLP((4,), activation="dice")
    mlp.build(x.shape)
    kernel, bias = (rng.normal(size=s).astype("float32") for s in ((5, 4), (4,)))
    alpha = rng.normal(size=4).astype("float32")
    mean, variance = rng.normal(size=4), rng.random(4) + 0.5
    mlp.set_weights([kernel, bias, alpha, mean, variance])
    hidden = x.astype("float64") @ kernel + bias
    np.testing.assert_allclose(
        to_numpy(mlp(x)), ref.dice(hidden, alpha, mean, variance), rtol=1e-5, atol=1e-5
    )
    batch_mean, batch_variance = ref.dice_batch_moments(hidden)
    np.testing.assert_allclose(
        to_numpy(mlp(x, training=True)),
        ref.dice(hidden, alpha, batch_mean, batch_variance),
        rtol=1e-4,
        atol=1e-4,
    )
    moving_mean = mlp.get_weights()[3]
    np.testing.assert_allclose(
        moving_mean, 0.99 * mean + 0.01 * batch_mean, rtol=1e-5, atol=1e-6
    )


def test_prelu_layers_have_their_own_slopes(rng):
    mlp = MLP((3, 3), activation="prelu")
    mlp.build((None, 2))
    first, second = mlp.activation_layers
    assert first is not second
    x = -np.ones((1, 2), "float32")
    mlp.set_weights(
        [np.eye(2, 3, dtype="float32"), np.zeros(3, "float32")]
        + [np.eye(3, dtype="float32"), np.zeros(3, "float32")]
        + [np.full(3, 0.5, "float32"), np.full(3, 0.1, "float32")]
    )
    # -1 through the first slope (0.5), then the second (0.1); the third
    # unit gets 0 from the identity-like first kernel.
    np.testing.assert_allclose(to_numpy(mlp(x)), [[-0.05, -0.05, 0.0]], atol=1e-7)


def test_dropout_only_in_training_and_seeded(rng):
    x = rng.normal(size=(64, 8)).astype("float32")
    mlp = MLP((16,), activation="linear", dropout_rate=0.5, seed=3)
    inference = to_numpy(mlp(x))
    np.testing.assert_allclose(to_numpy(mlp(x)), inference)
    dropped = to_numpy(mlp(x, training=True))
    assert np.mean(dropped == 0) > 0.3
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * inference[kept], rtol=1e-5)


def test_trains_in_a_model(rng):
    x = rng.normal(size=(32, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(1, "sigmoid")(MLP((8,), activation="dice")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def test_config_and_save_load(rng, tmp_path):
    mlp = MLP(
        [4, 2],
        activation="prelu",
        dropout_rate=0.25,
        kernel_initializer="he_normal",
        seed=7,
        name="head",
    )
    assert_config_round_trip(mlp)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, mlp(inputs))
    model.set_weights(random_like_weights(model, rng))
    x = rng.normal(size=(5, 3)).astype("float32")
    reloaded = assert_save_load(model, x, tmp_path)
    assert reloaded.get_layer("head").get_config() == mlp.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_units": ()}, "`hidden_units` must be a non-empty sequence"),
        ({"hidden_units": (4, 0)}, "Received: hidden_units=(4, 0)"),
        ({"hidden_units": (4,), "dropout_rate": 1.0}, "`dropout_rate` must be"),
        ({"hidden_units": (4,), "activation": "nope"}, "Received: activation='nope'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MLP(**kwargs)


@pytest.mark.parametrize("shape", [(5,), (None, None)])
def test_input_needs_a_known_last_axis(shape):
    with pytest.raises(ValueError, match=r"known D. Received: input_shape="):
        MLP((4,)).build(shape)
