import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import to_numpy

from keras_din import Dice


def test_weights_and_initial_values():
    dice = Dice()
    dice.build((None, 6))
    assert [w.path.split("/")[-1] for w in dice.weights] == [
        "alpha",
        "moving_mean",
        "moving_variance",
    ]
    assert [w.trainable for w in dice.weights] == [True, False, False]
    alpha, mean, variance = dice.get_weights()
    assert np.all(alpha == 0) and np.all(mean == 0) and np.all(variance == 1)


def test_training_uses_batch_moments_and_updates_moving_ones(rng):
    x = rng.normal(loc=2.0, scale=3.0, size=(16, 5, 6)).astype("float32")
    dice = Dice()
    dice.build(x.shape)
    alpha = rng.normal(size=6).astype("float32")
    dice.set_weights([alpha, np.zeros(6, "float32"), np.ones(6, "float32")])
    mean, variance = ref.dice_batch_moments(x.astype("float64"))
    expected = ref.dice(x.astype("float64"), alpha, mean, variance)
    np.testing.assert_allclose(
        to_numpy(dice(x, training=True)), expected, rtol=1e-5, atol=1e-5
    )
    _, moving_mean, moving_variance = dice.get_weights()
    np.testing.assert_allclose(moving_mean, 0.01 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        moving_variance, 0.99 + 0.01 * variance, rtol=1e-5, atol=1e-6
    )


def test_inference_uses_moving_moments(rng):
    x = rng.normal(size=(8, 4)).astype("float32")
    dice = Dice(epsilon=1e-3)
    dice.build(x.shape)
    weights = [
        rng.normal(size=4).astype("float32"),
        rng.normal(size=4).astype("float32"),
        (rng.random(4) + 0.5).astype("float32"),
    ]
    dice.set_weights(weights)
    expected = ref.dice(x, *weights, epsilon=1e-3)
    np.testing.assert_allclose(to_numpy(dice(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(dice(x, training=False)), expected, rtol=1e-5, atol=1e-6
    )
    for got, want in zip(dice.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_zero_alpha_at_start_is_a_soft_relu_gate(rng):
    x = rng.normal(size=(64, 3)).astype("float32")
    out = to_numpy(Dice()(x, training=True))
    mean, variance = ref.dice_batch_moments(x)
    np.testing.assert_allclose(
        out, ref.sigmoid((x - mean) / np.sqrt(variance + 1e-9)) * x, atol=1e-5
    )


def test_channel_axis(rng):
    x = rng.normal(size=(4, 3, 5)).astype("float32")
    dice = Dice(axis=1)
    dice.build(x.shape)
    assert [tuple(w.shape) for w in dice.weights] == [(3,)] * 3
    alpha = rng.normal(size=3).astype("float32")
    dice.set_weights([alpha, np.zeros(3, "float32"), np.ones(3, "float32")])
    moved = np.moveaxis(x, 1, -1)
    expected = ref.dice(moved, alpha, *ref.dice_batch_moments(moved))
    np.testing.assert_allclose(
        to_numpy(dice(x, training=True)),
        np.moveaxis(expected, -1, 1),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(rng, policy):
    keras.config.set_dtype_policy(policy)
    x = rng.normal(size=(32, 4)).astype("float32")
    dice = Dice()
    out = dice(x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert all(
        keras.backend.standardize_dtype(w.dtype) == "float32" for w in dice.weights
    )
    expected = ref.dice(x, 0.0, *ref.dice_batch_moments(x))
    np.testing.assert_allclose(to_numpy(out).astype("float32"), expected, atol=0.05)


def test_config_and_save_load(rng, tmp_path):
    dice = Dice(axis=-1, epsilon=1e-6, momentum=0.9, name="dice")
    assert_config_round_trip(dice)
    assert dice.get_config()["momentum"] == 0.9
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Dice()(keras.layers.Dense(4)(inputs)))
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(16, 3)).astype("float32")
    model.fit(x, rng.normal(size=(16, 4)), epochs=1, verbose=0)
    assert_save_load(model, x, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"axis": 1.5}, "axis"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"momentum": 1.0}, "momentum"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"{message}.*Received"):
        Dice(**kwargs)


def test_axis_out_of_range():
    with pytest.raises(ValueError, match="axis.*Received"):
        Dice(axis=3).build((None, 4))
    with pytest.raises(ValueError, match="channel axis.*known"):
        Dice().build((None, None))


def test_mask_restricts_training_moments(rng):
    x = rng.normal(size=(6, 5, 4)).astype("float32")
    mask = rng.random((6, 5)) < 0.5
    x[~mask] = 100.0  # padding far off: it must not move the moments
    dice = Dice()
    dice.build(x.shape)
    alpha = rng.normal(size=4).astype("float32")
    dice.set_weights([alpha, np.zeros(4, "float32"), np.ones(4, "float32")])
    valid = x[mask].astype("float64")
    mean, variance = valid.mean(axis=0), valid.var(axis=0)
    expected = ref.dice(x.astype("float64"), alpha, mean, variance)
    actual = to_numpy(dice(x, training=True, mask=mask))
    np.testing.assert_allclose(actual[mask], expected[mask], rtol=1e-4, atol=1e-4)
    _, moving_mean, moving_variance = dice.get_weights()
    np.testing.assert_allclose(moving_mean, 0.01 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        moving_variance, 0.99 + 0.01 * variance, rtol=1e-4, atol=1e-6
    )
    # Inference ignores the mask.
    np.testing.assert_allclose(
        to_numpy(dice(x, training=False, mask=mask)), to_numpy(dice(x)), atol=1e-6
    )


def test_all_invalid_mask_keeps_moving_moments(rng):
    x = rng.normal(size=(3, 4, 2)).astype("float32")
    dice = Dice()
    dice.build(x.shape)
    weights = [
        np.full(2, 0.3, "float32"),
        np.array([0.5, -1.0], "float32"),
        np.array([2.0, 0.5], "float32"),
    ]
    dice.set_weights(weights)
    out = to_numpy(dice(x, training=True, mask=np.zeros((3, 4), bool)))
    np.testing.assert_allclose(out, ref.dice(x, *weights), rtol=1e-5, atol=1e-6)
    for got, want in zip(dice.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_empty_batch_keeps_moving_moments():
    dice = Dice()
    dice.build((None, 2))
    weights = [np.full(2, 0.3, "float32"), np.ones(2, "float32"), np.ones(2, "float32")]
    dice.set_weights(weights)
    out = to_numpy(dice(np.zeros((0, 2), "float32"), training=True))
    assert out.shape == (0, 2)
    for got, want in zip(dice.get_weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_keras_mask_reaches_dice(rng):
    ids = keras.Input((5,), dtype="int32")
    embedding = keras.layers.Embedding(10, 3, mask_zero=True)
    dice = Dice()
    model = keras.Model(ids, dice(embedding(ids)))
    model.compile(optimizer="sgd", loss="mse")
    data = np.array([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]], "int32")
    rows = to_numpy(embedding.embeddings)[[1, 2, 3]]
    model.fit(data, np.zeros((2, 5, 3)), epochs=1, batch_size=2, verbose=0)
    # Only the rows of ids 1, 2, 3 enter the moments, not the padding.
    np.testing.assert_allclose(
        dice.get_weights()[1], 0.01 * rows.mean(axis=0), rtol=1e-4, atol=1e-7
    )


def test_bad_mask_rank(rng):
    x = rng.normal(size=(3, 4, 2)).astype("float32")
    with pytest.raises(ValueError, match="mask.*Received"):
        Dice()(x, training=True, mask=np.ones((3, 4, 2), bool))
