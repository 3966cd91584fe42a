import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import to_numpy

from keras_din import InterestExtractor
from keras_din.layers import _auxiliary_loss

AUX = (6,)


@pytest.fixture(params=["valid pairs", "every pair"])
def pair_selection(request, monkeypatch):
    """Runs a test on both ways of computing the auxiliary loss: the MLP on
    the valid pairs only (backends with data-dependent sizes, in eager
    calls) and on every pair with the others selected out (JAX's `jit`)."""
    monkeypatch.setattr(
        _auxiliary_loss, "has_dynamic_shapes", lambda: request.param == "valid pairs"
    )
    return request.param


def make_inputs(rng, batch=4, history=6, dim=3):
    keys = rng.normal(size=(batch, history, dim)).astype("float32")
    negatives = rng.normal(size=(batch, history, dim)).astype("float32")
    return keys, negatives


def make_layer(rng, keys, **kwargs):
    layer = InterestExtractor(auxiliary_hidden_units=AUX, **kwargs)
    layer.build(keys.shape)
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    return layer, arrays


def reference_mlp(arrays):
    """The auxiliary MLP of `arrays` (after the four GRU weights)."""
    (w1, b1, w2, b2) = arrays[4:]

    def mlp(x):
        return ref.sigmoid(ref.sigmoid(x @ w1 + b1) @ w2 + b2)[0]

    return mlp


@pytest.mark.parametrize("by", ["lengths", "mask", "both"])
def test_states_match_reference(rng, by):
    keys, _ = make_inputs(rng)
    lengths = np.array([0, 1, 4, 9])
    mask = rng.random(keys.shape[:2]) < 0.7  # holes anywhere
    valid = np.ones(keys.shape[:2], bool)
    inputs, call_mask = keys, None
    if by != "mask":
        valid &= ref.valid_from_lengths(lengths, keys.shape[1])
        inputs = [keys, lengths]
    if by != "lengths":
        valid &= mask
        call_mask = mask
    layer, arrays = make_layer(rng, keys)
    expected, _ = ref.gru_states(keys, valid, *arrays[:4])
    actual = to_numpy(layer(inputs, mask=call_mask))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert np.all(actual[~valid] == 0)


def test_auxiliary_loss_matches_reference(rng, pair_selection):
    keys, negatives = make_inputs(rng)
    lengths = np.array([0, 1, 4, 6])
    valid = ref.valid_from_lengths(lengths, keys.shape[1])
    layer, arrays = make_layer(rng, keys, auxiliary_loss_weight=0.5)
    states = to_numpy(layer([keys, lengths], negative_keys=negatives, training=True))
    expected = ref.auxiliary_loss(states, keys, negatives, valid, reference_mlp(arrays))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(to_numpy(layer.losses[0]), 0.5 * expected, rtol=1e-5)
    # No loss at inference, or without negatives.
    layer([keys, lengths], negative_keys=negatives)
    assert not layer.losses
    layer([keys, lengths], training=True)
    assert not layer.losses


def test_no_pair_gives_zero_loss(rng, pair_selection):
    keys, negatives = make_inputs(rng)
    layer, _ = make_layer(rng, keys, auxiliary_loss_weight=1.0)
    layer([keys, np.array([0, 1, 1, 0])], negative_keys=negatives, training=True)
    assert to_numpy(layer.losses[0]) == 0.0


def test_nan_in_padding_never_reaches_valid_results(rng, pair_selection):
    keys, negatives = make_inputs(rng)
    lengths = np.array([0, 2, 5, 6])
    valid = ref.valid_from_lengths(lengths, keys.shape[1])
    garbage_keys, garbage_negatives = keys.copy(), negatives.copy()
    garbage_keys[~valid] = np.nan
    garbage_negatives[~valid] = np.inf
    layer, _ = make_layer(rng, keys, auxiliary_loss_weight=1.0)
    results = []
    for k, n in ((keys, negatives), (garbage_keys, garbage_negatives)):
        states = to_numpy(layer([k, lengths], negative_keys=n, training=True))
        results.append((states, to_numpy(layer.losses[0])))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])


def training_model(history=6, dim=3):
    """`[history, negatives, lengths] -> states` through an extractor with
    the auxiliary loss; returns `(model, extractor)`."""
    keys = keras.Input((history, dim))
    negatives = keras.Input((history, dim))
    lengths = keras.Input((), dtype="int32")
    layer = InterestExtractor(auxiliary_loss_weight=1.0, auxiliary_hidden_units=AUX)
    states = layer([keys, lengths], negative_keys=negatives)
    return keras.Model([keys, negatives, lengths], states), layer


def test_training_with_auxiliary_loss_and_save_load(rng, tmp_path):
    keys, negatives = make_inputs(rng)
    lengths = np.array([0, 1, 4, 6])
    keys[ref.valid_from_lengths(lengths, 6) == 0] = np.nan
    model, layer = training_model()
    model.compile(optimizer="sgd", loss="mse")
    before = [to_numpy(w) for w in layer.weights]
    model.fit([keys, negatives, lengths], np.zeros((4, 6, 3)), epochs=2, verbose=0)
    after = [to_numpy(w) for w in layer.weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    # The auxiliary MLP learns only through the auxiliary loss.
    assert not np.allclose(before[-1], after[-1])
    assert_save_load(model, [keys, negatives, lengths], tmp_path)


def test_pair_selections_train_alike(rng, monkeypatch):
    # One SGD step on the auxiliary loss alone moves every weight the same
    # way whether the MLP sees the valid pairs only or every pair.
    keys, negatives = make_inputs(rng)
    lengths = np.array([0, 2, 5, 6])
    keys[~ref.valid_from_lengths(lengths, 6)] = np.nan
    weights = None
    results = []
    for valid_pairs_only in (True, False):
        monkeypatch.setattr(
            _auxiliary_loss, "has_dynamic_shapes", lambda v=valid_pairs_only: v
        )
        model, layer = training_model()
        # Eager, so that JAX computes the pairs' data-dependent sizes too.
        model.compile(
            optimizer=keras.optimizers.SGD(1.0),
            loss=lambda y, out: 0.0 * keras.ops.sum(out),
            run_eagerly=True,
        )
        weights = weights or random_like_weights(layer, rng)
        layer.set_weights(weights)
        model.train_on_batch([keys, negatives, lengths], np.zeros((4, 6, 3)))
        results.append([to_numpy(w) for w in layer.weights])
    for after, other, before in zip(*results, weights, strict=True):
        assert not np.array_equal(after, before)
        np.testing.assert_allclose(after, other, rtol=1e-5, atol=1e-6)


def test_keras_mask_of_keys_reaches_the_call_beside_negative_keys(rng):
    # Keras passes a call's `mask` only where it has one tensor argument;
    # with `negative_keys` too, the mask of id 0 (holes and right padding)
    # must still decide the states and the auxiliary loss's pairs.
    history, dim = 6, 3
    ids = rng.integers(1, 20, (4, history))
    ids[0] = 0  # an empty history
    ids[1, 2] = 0  # a hole
    ids[2, 4:] = 0  # right padding
    table = rng.normal(size=(20, dim)).astype("float32")
    negatives = rng.normal(size=(4, history, dim)).astype("float32")
    id_input = keras.Input((history,), dtype="int32")
    negative_input = keras.Input((history, dim))
    embedding = keras.layers.Embedding(20, dim, mask_zero=True)
    layer = InterestExtractor(auxiliary_loss_weight=1.0, auxiliary_hidden_units=AUX)
    states = layer(embedding(id_input), negative_keys=negative_input)
    model = keras.Model([id_input, negative_input], states)
    embedding.set_weights([table])
    layer.set_weights(random_like_weights(layer, rng))
    arrays = [to_numpy(w) for w in layer.weights]
    valid = ids != 0
    keys = table[ids]
    expected, _ = ref.gru_states(keys, valid, *arrays[:4])
    actual = to_numpy(model([ids, negatives], training=True))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    loss = ref.auxiliary_loss(expected, keys, negatives, valid, reference_mlp(arrays))
    assert len(model.losses) == 1
    np.testing.assert_allclose(to_numpy(model.losses[0]), loss, rtol=1e-5)


def test_output_mask_marks_valid_positions(rng):
    keys, _ = make_inputs(rng)
    layer = InterestExtractor()
    lengths = np.array([0, 1, 4, 9])
    mask = layer.compute_mask([keys, lengths])
    np.testing.assert_array_equal(to_numpy(mask), ref.valid_from_lengths(lengths, 6))


def test_units_and_config():
    layer = InterestExtractor(units=5, auxiliary_loss_weight=0.3, seed=2)
    assert layer.compute_output_shape((None, 6, 3)) == (None, 6, 5)
    assert_config_round_trip(layer)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units"),
        ({"auxiliary_loss_weight": -1.0}, "auxiliary_loss_weight"),
        ({"auxiliary_hidden_units": ()}, "auxiliary_hidden_units"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InterestExtractor(**kwargs)


def test_bad_inputs(rng):
    keys, negatives = make_inputs(rng)
    layer = InterestExtractor()
    with pytest.raises(ValueError, match="expects `inputs`"):
        layer({"keys": keys})
    with pytest.raises(ValueError, match="keys.shape"):
        layer(keys[0])
    with pytest.raises(TypeError, match="`keys` must have a float dtype"):
        layer(keys.astype("int32"))
    with pytest.raises(TypeError, match="keys_length"):
        layer([keys, np.ones(4, "float32")])
    with pytest.raises(ValueError, match="negative_keys.shape"):
        layer(keys, negative_keys=negatives[:, :3])
