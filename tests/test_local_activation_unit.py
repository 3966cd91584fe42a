import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import to_numpy

from keras_din import Dice
from keras_din import LocalActivationUnit


def make_inputs(rng, batch=4, candidates=1, history=6, dim=5):
    query = rng.normal(size=(batch, candidates, dim)).astype("float32")
    keys = rng.normal(size=(batch, history, dim)).astype("float32")
    return query, keys


def split_dense_weights(arrays, num_hidden):
    """[W_1, b_1, ..., w_o, b_o] -> kernels, biases, output kernel, bias."""
    dense = arrays[: 2 * num_hidden + 2]
    return dense[0:-2:2], dense[1:-2:2], dense[-2], dense[-1]


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("hidden_units", [(8, 4), (5,)])
def test_matches_reference(rng, activation, candidates, hidden_units):
    query, keys = make_inputs(rng, candidates=candidates)
    unit = LocalActivationUnit(hidden_units=hidden_units, activation=activation)
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, len(hidden_units))
    expected = ref.unit_scores(
        query,
        keys,
        kernels,
        biases,
        w_o,
        b_o,
        lambda i, x: ref.ACTIVATIONS[activation](x),
    )
    actual = to_numpy(unit([query, keys]))
    assert actual.shape == (4, 6, candidates)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_weight_layout():
    unit = LocalActivationUnit(hidden_units=(8, 4))
    unit.build([(None, 1, 5), (None, 7, 5)])
    shapes = [tuple(w.shape) for w in unit.get_weights()]
    assert shapes == [(20, 8), (8,), (8, 4), (4,), (4, 1), (1,)]
    assert all(w.trainable for w in unit.weights)


def test_history_of_length_one(rng):
    query, keys = make_inputs(rng, history=1)
    unit = LocalActivationUnit(hidden_units=(3,), activation="linear")
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 1)
    expected = ref.unit_scores(query, keys, kernels, biases, w_o, b_o, lambda i, x: x)
    np.testing.assert_allclose(to_numpy(unit([query, keys])), expected, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_dice_activation(rng, training):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(8, 4), activation="dice")
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    dice_weights = arrays[6:]
    assert [a.shape for a in dice_weights] == [(8,)] * 3 + [(4,)] * 3

    def act(i, x):
        alpha, mean, var = dice_weights[3 * i : 3 * i + 3]
        if training:
            mean, var = ref.dice_batch_moments(x)
        return ref.dice(x, alpha, mean, var)

    expected = ref.unit_scores(query, keys, kernels, biases, w_o, b_o, act)
    actual = to_numpy(unit([query, keys], training=training))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_prelu_activation(rng):
    query, keys = make_inputs(rng, candidates=2)
    unit = LocalActivationUnit(hidden_units=(8, 4), activation="prelu")
    unit([query, keys])
    assert [tuple(w.shape) for w in unit.weights[6:]] == [(8,), (4,)]
    np.testing.assert_allclose(to_numpy(unit.weights[6]), 0.25)
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    expected = ref.unit_scores(
        query, keys, kernels, biases, w_o, b_o, lambda i, x: ref.prelu(x, arrays[6 + i])
    )
    np.testing.assert_allclose(to_numpy(unit([query, keys])), expected, atol=1e-5)


def test_batch_norm_in_inference(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(8, 4), use_bn=True)
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    bn = [arrays[6:10], arrays[10:14]]  # gamma, beta, moving mean, variance

    def act(i, x):
        gamma, beta, mean, var = bn[i]
        return ref.sigmoid(gamma * (x - mean) / np.sqrt(var + 1e-3) + beta)

    expected = ref.unit_scores(query, keys, kernels, biases, w_o, b_o, act)
    actual = to_numpy(unit([query, keys], training=False))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_activation_layer_is_copied_per_hidden_layer(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(8, 4), activation=Dice(epsilon=1e-5))
    unit([query, keys])
    assert [type(layer) for layer in unit.activation_layers] == [Dice, Dice]
    assert unit.activation_layers[0] is not unit.activation_layers[1]
    assert unit.activation_layers[1].epsilon == 1e-5
    assert_config_round_trip(unit)


def test_activation_function(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(4,), activation=keras.activations.relu)
    assert unit.get_config()["activation"] == "relu"
    assert unit([query, keys]).shape == (4, 6, 1)


def test_dropout_only_in_training(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(16, 8), dropout_rate=0.5, seed=3)
    inference = to_numpy(unit([query, keys], training=False))
    plain = LocalActivationUnit(hidden_units=(16, 8))
    plain([query, keys])
    plain.set_weights(unit.get_weights())
    np.testing.assert_allclose(inference, to_numpy(plain([query, keys])), atol=1e-6)
    training = to_numpy(unit([query, keys], training=True))
    assert not np.allclose(training, inference)


def test_dropout_layers_get_distinct_seeds():
    unit = LocalActivationUnit(hidden_units=(8, 4, 2), dropout_rate=0.5, seed=3)
    assert [layer.seed for layer in unit.dropouts] == [3, 4, 5]


def test_l2_regularises_hidden_kernels_only(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(hidden_units=(8, 4), l2_reg=0.01)
    unit([query, keys])
    kernels = [to_numpy(unit.weights[i]) for i in (0, 2)]
    expected = sum(0.01 * np.sum(np.square(k)) for k in kernels)
    np.testing.assert_allclose(
        sum(to_numpy(x) for x in unit.losses), expected, rtol=1e-5
    )


def test_seed_makes_initialisation_reproducible():
    shapes = [(None, 1, 5), (None, 7, 5)]
    a, b = LocalActivationUnit(seed=7), LocalActivationUnit(seed=7)
    a.build(shapes)
    b.build(shapes)
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_config_round_trip():
    unit = LocalActivationUnit(
        hidden_units=(6, 3),
        activation="dice",
        l2_reg=0.1,
        dropout_rate=0.2,
        use_bn=True,
        seed=5,
        name="unit",
    )
    assert_config_round_trip(unit)
    config = unit.get_config()
    assert config["hidden_units"] == [6, 3]
    assert config["activation"] == "dice"
    assert config["l2_reg"] == 0.1 and config["dropout_rate"] == 0.2
    assert config["use_bn"] is True and config["seed"] == 5


def test_functional_model_save_load(rng, tmp_path):
    query, keys = make_inputs(rng, candidates=2)
    q_in, k_in = keras.Input((2, 5)), keras.Input((None, 5))
    scores = LocalActivationUnit(hidden_units=(8,), activation="prelu")([q_in, k_in])
    model = keras.Model([q_in, k_in], scores)
    assert scores.shape == (None, None, 2)
    assert_save_load(model, [query, keys], tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_units": ()}, "hidden_units"),
        ({"hidden_units": (4, 0)}, "hidden_units"),
        ({"hidden_units": (4, -2)}, "hidden_units"),
        ({"hidden_units": "64"}, "hidden_units"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"dropout_rate": -0.1}, "dropout_rate"),
        ({"l2_reg": -1.0}, "l2_reg"),
        ({"activation": "no_such_activation"}, "no_such_activation"),
        ({"activation": 3}, "activation"),
        ({"dropout_rate": "0.1"}, "dropout_rate='0.1'"),
        ({"l2_reg": "1"}, "l2_reg='1'"),
        ({"dropout_rate": True}, "dropout_rate=True"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        LocalActivationUnit(**kwargs)
    assert "Received" in str(error.value)


@pytest.mark.parametrize(
    "query_shape, keys_shape, message",
    [
        ((4, 5), (4, 6, 5), "query"),
        ((4, 1, 5), (4, 6), "keys"),
        ((4, 1, 5), (4, 6, 3), "same last dimension"),
        ((4, 1, 5), (3, 6, 5), "same batch size"),
    ],
)
def test_bad_input_shapes(query_shape, keys_shape, message):
    query = np.zeros(query_shape, "float32")
    keys = np.zeros(keys_shape, "float32")
    with pytest.raises(ValueError, match=message):
        LocalActivationUnit()([query, keys])
    with pytest.raises(ValueError, match=message):
        LocalActivationUnit()(
            [keras.Input(batch_shape=query_shape), keras.Input(batch_shape=keys_shape)]
        )


def test_wrong_number_of_inputs(rng):
    query, keys = make_inputs(rng)
    with pytest.raises(ValueError, match="list or tuple of 2 tensors"):
        LocalActivationUnit()([query, keys, keys])
    with pytest.raises(ValueError, match="list or tuple of 2 tensors"):
        LocalActivationUnit()(keys)


@pytest.mark.parametrize("candidates", [1, 2])
def test_keys_mask_restricts_dice_statistics(rng, candidates):
    query, keys = make_inputs(rng, candidates=candidates)
    valid = ref.valid_from_lengths([0, 2, 6, 4], 6)
    unit = LocalActivationUnit(hidden_units=(8, 4), activation="dice")
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    alphas = [arrays[6], arrays[9]]

    def masked_dice(i, x):  # x: (B, T, C, H); moments over valid (b, t)
        rows = x[valid]
        return ref.dice(x, alphas[i], rows.mean(axis=(0, 1)), rows.var(axis=(0, 1)))

    # Every position is scored (the padding too), with the valid moments.
    expected = ref.unit_scores_joint(
        query, keys, kernels, biases, w_o, b_o, masked_dice
    )
    actual = to_numpy(unit([query, keys], training=True, keys_mask=valid))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    # Without the mask the padding enters the moments and the scores differ.
    unmasked = to_numpy(unit([query, keys], training=True))
    assert not np.allclose(unmasked[valid], expected[valid], atol=1e-3)


def test_keys_mask_leaves_scores_of_plain_activations_alone(rng):
    query, keys = make_inputs(rng)
    valid = ref.valid_from_lengths([0, 2, 6, 4], 6)
    unit = LocalActivationUnit(hidden_units=(8, 4))
    expected = to_numpy(unit([query, keys]))
    actual = to_numpy(unit([query, keys], keys_mask=valid, training=True))
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("candidates", [1, 3])
def test_query_index_scores_each_keys_row_against_its_query_row(rng, candidates):
    query, keys = make_inputs(rng, candidates=candidates)
    index = np.array([2, 0, 0, 3, 1, 2, 2], "int32")
    pieces = rng.normal(size=(7, 3, 5)).astype("float32")
    unit = LocalActivationUnit(hidden_units=(8, 4))
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    expected = ref.unit_scores(
        query[index], pieces, kernels, biases, w_o, b_o, lambda i, x: ref.sigmoid(x)
    )
    actual = to_numpy(unit([query, pieces], query_index=index))
    assert actual.shape == (7, 3, candidates)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def halve(x):  # a plain, unregistered function
    return x / 2


@keras.saving.register_keras_serializable(package="keras_din_tests")
def halved_tanh(x):  # a registered function
    return keras.ops.tanh(x) / 2


# Activations given as objects, which a layer's config holds serialised.
OBJECT_ACTIVATIONS = {
    "layer": lambda: keras.layers.LeakyReLU(negative_slope=0.1),
    "layer_with_weights": lambda: Dice(epsilon=1e-5),
    "registered_function": lambda: halved_tanh,
}


def test_stateless_layer_of_an_unregistered_function_as_activation(rng):
    query, keys = make_inputs(rng)
    unit = LocalActivationUnit(
        hidden_units=(8, 4), activation=keras.layers.Lambda(halve)
    )
    unit([query, keys])
    arrays = random_like_weights(unit, rng)
    unit.set_weights(arrays)
    kernels, biases, w_o, b_o = split_dense_weights(arrays, 2)
    expected = ref.unit_scores(
        query, keys, kernels, biases, w_o, b_o, lambda i, x: x / 2
    )
    np.testing.assert_allclose(
        to_numpy(unit([query, keys])), expected, rtol=1e-5, atol=1e-5
    )


def test_stateful_layer_that_cannot_be_rebuilt_is_named():
    class Unregistered(keras.layers.PReLU):
        def get_config(self):
            return {**super().get_config(), "extra": 1}

    with pytest.raises(ValueError, match="`activation` is a layer that cannot be"):
        LocalActivationUnit(activation=Unregistered())


@pytest.mark.parametrize("dtype, expected", [("float64", "float64"), ("str", "string")])
def test_keys_mask_dtype_error_names_the_dtype_passed(rng, dtype, expected):
    query, keys = make_inputs(rng)
    mask = np.full((4, 6), "a") if dtype == "str" else np.ones((4, 6), dtype)
    with pytest.raises(TypeError, match=f"Received: keys_mask.dtype={expected}"):
        LocalActivationUnit()([query, keys], keys_mask=mask)
    with pytest.raises(TypeError, match=f"Received: keys_mask.dtype={expected}"):
        LocalActivationUnit()([query, keys], mask)  # positional


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_non_float_query_or_keys_is_a_type_error(rng, dtype):
    query, keys = make_inputs(rng)
    for name, inputs in (
        ("query", [query.astype(dtype), keys]),
        ("keys", [query, keys.astype(dtype)]),
    ):
        with pytest.raises(TypeError, match=f"`{name}` must have a float dtype"):
            LocalActivationUnit()(inputs)
        symbolic = [keras.Input(batch_shape=x.shape, dtype=x.dtype) for x in inputs]
        with pytest.raises(TypeError, match=f"`{name}` must have a float dtype"):
            LocalActivationUnit()(symbolic)


@pytest.mark.parametrize("activation", sorted(OBJECT_ACTIVATIONS))
def test_activation_object_survives_config_round_trip_and_keras_save_and_load(
    rng, tmp_path, activation
):
    query, keys = make_inputs(rng, candidates=2)
    unit = LocalActivationUnit(
        hidden_units=(8, 4), activation=OBJECT_ACTIVATIONS[activation]()
    )
    assert_config_round_trip(unit)
    q_in, k_in = keras.Input((2, 5)), keras.Input((None, 5))
    model = keras.Model([q_in, k_in], unit([q_in, k_in]))
    unit.set_weights(random_like_weights(unit, rng))
    assert_save_load(model, [query, keys], tmp_path)


def test_lambda_activation_loads_only_outside_safe_mode(rng, tmp_path):
    query, keys = make_inputs(rng)
    q_in, k_in = keras.Input((1, 5)), keras.Input((6, 5))
    unit = LocalActivationUnit(
        hidden_units=(4,), activation=keras.layers.Lambda(lambda x: x / 2)
    )
    model = keras.Model([q_in, k_in], unit([q_in, k_in]))
    path = tmp_path / "model.keras"
    model.save(path)
    # Keras's own error, as for a Lambda layer of the model itself.
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)
    reloaded = keras.saving.load_model(path, safe_mode=False)
    np.testing.assert_allclose(
        reloaded.predict([query, keys], verbose=0),
        model.predict([query, keys], verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("activation", ["sigmoid", "dice", "prelu"])
@pytest.mark.parametrize("with_keys_mask", [False, True])
def test_empty_batch_gives_empty_scores(candidates, activation, with_keys_mask):
    query = np.zeros((0, candidates, 5), "float32")
    keys = np.zeros((0, 6, 5), "float32")
    keys_mask = np.zeros((0, 6), bool) if with_keys_mask else None
    unit = LocalActivationUnit(hidden_units=(8, 4), activation=activation)
    unit.build([(None, candidates, 5), (None, 6, 5)])
    before = [to_numpy(w) for w in unit.weights]
    for training in (False, True):
        scores = unit([query, keys], keys_mask=keys_mask, training=training)
        assert tuple(scores.shape) == (0, 6, candidates)
        assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    # Dice's moving moments are not moved by a batch without entries (but
    # for their rounding).
    for old, new in zip(before, unit.weights, strict=True):
        np.testing.assert_allclose(to_numpy(new), old, rtol=1e-6, atol=0)
