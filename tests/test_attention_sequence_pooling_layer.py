import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import to_numpy
from test_local_activation_unit import OBJECT_ACTIVATIONS

from keras_din import AttentionSequencePoolingLayer

HIDDEN = (8, 4)


def jax_x64_enabled():
    if keras.backend.backend() != "jax":
        return False
    import jax

    return bool(jax.config.jax_enable_x64)


MODES = [(wn, rs) for wn in (False, True) for rs in (False, True)]


def make_inputs(rng, batch=5, candidates=1, history=7, dim=6):
    query = rng.normal(size=(batch, candidates, dim)).astype("float32")
    keys = rng.normal(size=(batch, history, dim)).astype("float32")
    return query, keys


def make_layer(rng, query, keys, **kwargs):
    """A built layer with random weights, and the reference of its scores."""
    layer = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN, **kwargs)
    layer.build([query.shape, keys.shape])
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    scores = ref.unit_scores(
        query, keys, *dense_weights(arrays), lambda i, x: ref.sigmoid(x)
    )
    return layer, scores


def dense_weights(arrays):
    """[W_1, b_1, ..., w_o, b_o, ...] -> kernels, biases, output kernel, bias."""
    n = len(HIDDEN)
    return (
        arrays[0 : 2 * n : 2],
        arrays[1 : 2 * n : 2],
        arrays[2 * n],
        arrays[2 * n + 1],
    )


@pytest.mark.parametrize("weight_normalization, return_score", MODES)
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("lengths_shape", [(-1, 1), (-1,)])
def test_lengths_match_reference(
    rng, weight_normalization, return_score, candidates, lengths_shape
):
    query, keys = make_inputs(rng, candidates=candidates)
    # Empty, partial, full, above T and negative histories in one batch.
    lengths = np.array([0, 3, 7, 12, -2]).reshape(lengths_shape)
    layer, scores = make_layer(
        rng,
        query,
        keys,
        weight_normalization=weight_normalization,
        return_score=return_score,
    )
    expected = ref.pool(
        scores,
        keys,
        ref.valid_from_lengths(lengths, 7),
        weight_normalization,
        return_score,
    )
    actual = to_numpy(layer([query, keys, lengths]))
    assert actual.shape == ((5, candidates, 7) if return_score else (5, candidates, 6))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    # Empty histories (length 0 and -2) give exactly zero.
    assert np.all(actual[[0, 4]] == 0)


LENGTHS_BEYOND_INT32 = {
    # Above T, below 0 (its low 32 bits are 3), above T.
    "int64": [2**31 + 5, -(2**32) + 3, 3, 2**40, 0],
    "uint32": [2**31 + 5, 3, 2**32 - 1, 0, 7],
    "uint8": [255, 3, 0, 7, 200],
}


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(
            "int64",
            marks=pytest.mark.skipif(
                keras.backend.backend() == "jax",
                reason="JAX (without jax_enable_x64) turns int64 arrays into "
                "int32 before the layer sees them",
            ),
        ),
        "uint32",
        "uint8",
    ],
)
@pytest.mark.parametrize("candidates", [1, 2])
@pytest.mark.parametrize("functional", [False, True])
def test_lengths_of_any_integer_dtype_do_not_wrap(rng, dtype, candidates, functional):
    query, keys = make_inputs(rng, candidates=candidates)
    lengths = np.array(LENGTHS_BEYOND_INT32[dtype], dtype=dtype).reshape(-1, 1)
    layer, scores = make_layer(rng, query, keys, weight_normalization=True)
    expected = ref.pool(scores, keys, ref.valid_from_lengths(lengths, 7), True, False)
    if functional:  # T unknown until the call
        inputs = [
            keras.Input((candidates, 6)),
            keras.Input((None, 6)),
            keras.Input((1,), dtype=dtype),
        ]
        model = keras.Model(inputs, layer(inputs))
        actual = model.predict([query, keys, lengths], verbose=0)
    else:
        actual = to_numpy(layer([query, keys, lengths]))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_int64_lengths_clipped_to_history_work_everywhere(rng):
    # The docs' advice for JAX without x64: clip lengths to T first.
    query, keys = make_inputs(rng)
    lengths = np.array(LENGTHS_BEYOND_INT32["int64"], "int64")
    layer, scores = make_layer(rng, query, keys, weight_normalization=True)
    expected = ref.pool(scores, keys, ref.valid_from_lengths(lengths, 7), True, False)
    actual = to_numpy(layer([query, keys, np.clip(lengths, 0, 7)]))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "jax" or jax_x64_enabled(),
    reason="only JAX without jax_enable_x64 turns int64 arrays into int32",
)
def test_jax_int64_lengths_wrap_as_documented(rng):
    query, keys = make_inputs(rng)
    layer, scores = make_layer(rng, query, keys, return_score=True)
    lengths = np.array([2**40, 2**32 + 3, 3, 7, 0], "int64")  # wrap to 0 and 3
    expected = ref.pool(
        scores, keys, ref.valid_from_lengths([0, 3, 3, 7, 0], 7), False, True
    )
    np.testing.assert_allclose(
        to_numpy(layer([query, keys, lengths])), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("weight_normalization, return_score", MODES)
@pytest.mark.parametrize("candidates", [1, 2])
def test_explicit_mask_matches_reference(
    rng, weight_normalization, return_score, candidates
):
    query, keys = make_inputs(rng, candidates=candidates)
    valid = rng.random((5, 7)) < 0.6
    valid[0] = False
    layer, scores = make_layer(
        rng,
        query,
        keys,
        weight_normalization=weight_normalization,
        return_score=return_score,
    )
    expected = ref.pool(scores, keys, valid, weight_normalization, return_score)
    np.testing.assert_allclose(
        to_numpy(layer([query, keys], mask=valid)), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(layer((query, keys), mask=[None, valid])),
        expected,
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("weight_normalization, return_score", MODES)
def test_no_mask_means_all_valid(rng, weight_normalization, return_score):
    query, keys = make_inputs(rng, candidates=2)
    layer, scores = make_layer(
        rng,
        query,
        keys,
        weight_normalization=weight_normalization,
        return_score=return_score,
    )
    valid = np.ones((5, 7), bool)
    expected = ref.pool(scores, keys, valid, weight_normalization, return_score)
    np.testing.assert_allclose(
        to_numpy(layer([query, keys])), expected, rtol=1e-5, atol=1e-5
    )


def test_lengths_and_explicit_mask_combine(rng):
    query, keys = make_inputs(rng)
    lengths = np.array([[7], [4], [0], [2], [6]])
    valid = rng.random((5, 7)) < 0.7
    layer, scores = make_layer(rng, query, keys, return_score=True)
    both = ref.valid_from_lengths(lengths, 7) & valid
    expected = ref.pool(scores, keys, both, False, True)
    actual = to_numpy(layer([query, keys, lengths], mask=valid))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("candidates", [1, 2])
def test_all_histories_empty(rng, candidates):
    query, keys = make_inputs(rng, candidates=candidates)
    lengths = np.zeros((5, 1), "int32")
    for wn, rs in MODES:
        layer, _ = make_layer(
            rng, query, keys, weight_normalization=wn, return_score=rs
        )
        out = to_numpy(layer([query, keys, lengths]))
        assert out.shape == (5, candidates, 7 if rs else 6), (wn, rs)
        assert np.all(out == 0), (wn, rs)


@pytest.mark.parametrize("weight_normalization", [False, True])
def test_batch_of_empty_histories_trains(weight_normalization):
    # Cold-start users make whole batches without a history item.
    candidate = keras.Input((1,), dtype="int32")
    history = keras.Input((6,), dtype="int32")
    items = keras.layers.Embedding(20, 4, mask_zero=True)
    pooled = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, weight_normalization=weight_normalization
    )([items(candidate), items(history)])
    output = keras.layers.Dense(1, activation="sigmoid")(keras.ops.squeeze(pooled, 1))
    model = keras.Model([candidate, history], output)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    inputs = [np.ones((8, 1), "int32"), np.zeros((8, 6), "int32")]
    model.fit(inputs, np.ones((8, 1), "float32"), epochs=2, verbose=0)
    for weight in model.weights:
        assert np.all(np.isfinite(to_numpy(weight))), weight.path
    assert np.all(to_numpy(pooled_of(model, inputs)) == 0)


def pooled_of(model, inputs):
    layer = next(
        x for x in model.layers if isinstance(x, AttentionSequencePoolingLayer)
    )
    return keras.Model(model.inputs, layer.output)(inputs)


@pytest.mark.parametrize("weight_normalization", [False, True])
def test_history_of_length_one(rng, weight_normalization):
    query, keys = make_inputs(rng, history=1)
    lengths = np.array([1, 0, 1, 5, 0])
    layer, scores = make_layer(
        rng, query, keys, weight_normalization=weight_normalization
    )
    expected = ref.pool(
        scores, keys, ref.valid_from_lengths(lengths, 1), weight_normalization, False
    )
    np.testing.assert_allclose(
        to_numpy(layer([query, keys, lengths])), expected, rtol=1e-5, atol=1e-5
    )


def embedding_models(weight_normalization, vocabulary=20, dim=6):
    """Two models sharing one layer: masked by `mask_zero`, and by lengths."""
    embedding = keras.layers.Embedding(vocabulary, dim, mask_zero=True)
    pooling = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        weight_normalization=weight_normalization,
        return_score=True,
    )
    item = keras.Input((1,), dtype="int32")
    history = keras.Input((None,), dtype="int32")
    lengths = keras.Input((1,), dtype="int32")
    by_mask = keras.Model(
        [item, history], pooling([embedding(item), embedding(history)])
    )
    by_lengths = keras.Model(
        [item, history, lengths],
        pooling([embedding(item), embedding(history), lengths]),
    )
    return by_mask, by_lengths


def padded_histories(rng, lengths, history=7, vocabulary=20):
    ids = rng.integers(1, vocabulary, size=(len(lengths), history))
    ids[np.arange(history)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return ids.astype("int32")


@pytest.mark.parametrize("weight_normalization", [False, True])
def test_keras_mask_equals_lengths(rng, weight_normalization):
    lengths = np.array([0, 3, 7, 1, 5])
    items = rng.integers(1, 20, size=(5, 1)).astype("int32")
    histories = padded_histories(rng, lengths)
    by_mask, by_lengths = embedding_models(weight_normalization)
    from_mask = by_mask.predict([items, histories], verbose=0)
    from_lengths = by_lengths.predict(
        [items, histories, lengths[:, None].astype("int32")], verbose=0
    )
    np.testing.assert_allclose(from_mask, from_lengths, rtol=1e-6, atol=1e-6)
    assert np.all(from_mask[0] == 0)
    assert np.all(from_mask[1, :, 3:] == 0) and np.all(from_mask[1, :, :3] != 0)


def test_keras_mask_and_lengths_combine(rng):
    by_mask, by_lengths = embedding_models(True)
    items = rng.integers(1, 20, size=(5, 1)).astype("int32")
    histories = padded_histories(rng, [2, 7, 7, 4, 0])
    # Lengths shorter than the unpadded histories cut them further.
    lengths = np.array([[7], [3], [7], [1], [7]], "int32")
    combined = by_lengths.predict([items, histories, lengths], verbose=0)
    expected_valid = ref.valid_from_lengths([2, 3, 7, 1, 0], 7)
    assert np.array_equal(combined[:, 0] != 0, expected_valid)
    np.testing.assert_allclose(combined.sum(axis=-1)[[0, 1, 2, 3]], 1.0, rtol=1e-5)


def test_explicit_mask_replaces_the_keras_mask(rng):
    embedding = keras.layers.Embedding(20, 6, mask_zero=True)
    pooling = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN, return_score=True)
    item = keras.Input((1,), dtype="int32")
    history = keras.Input((7,), dtype="int32")
    extra = keras.Input((7,), dtype="bool")
    out = pooling([embedding(item), embedding(history)], mask=extra)
    model = keras.Model([item, history, extra], out)
    items = rng.integers(1, 20, size=(5, 1)).astype("int32")
    histories = padded_histories(rng, [2, 7, 7, 4, 0])
    extra_mask = rng.random((5, 7)) < 0.5
    weights = model.predict([items, histories, extra_mask], verbose=0)
    # As everywhere in Keras, an explicit `mask=` replaces the propagated one.
    assert np.array_equal(weights[:, 0] != 0, extra_mask)


def test_output_carries_no_mask(rng):
    embedding = keras.layers.Embedding(20, 6, mask_zero=True)
    item = keras.Input((1,), dtype="int32")
    history = keras.Input((None,), dtype="int32")
    out = AttentionSequencePoolingLayer()([embedding(item), embedding(history)])
    assert getattr(out, "_keras_mask", None) is None
    # A layer that does not support masking takes it without complaint.
    keras.layers.Flatten()(out)


def test_weights_are_the_units(rng):
    query, keys = make_inputs(rng)
    layer = AttentionSequencePoolingLayer(att_hidden_units=(8, 4))
    layer([query, keys])
    assert [id(w) for w in layer.weights] == [id(w) for w in layer.local_att.weights]
    shapes = [tuple(w.shape) for w in layer.weights]
    assert shapes == [(24, 8), (8,), (8, 4), (4,), (4, 1), (1,)]


def test_dice_activation_runs_in_training(rng):
    query, keys = make_inputs(rng, candidates=2)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, att_activation="dice"
    )
    out = layer([query, keys, np.array([0, 3, 7, 1, 5])], training=True)
    assert np.all(np.isfinite(to_numpy(out)))
    assert len(layer.weights) == 6 + 3 * len(HIDDEN)


def test_config_round_trip():
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=(6, 3),
        att_activation="dice",
        weight_normalization=True,
        return_score=True,
        supports_masking=True,
        skip_padding=False,
        name="attention",
    )
    assert_config_round_trip(layer)
    config = layer.get_config()
    assert config["att_hidden_units"] == [6, 3]
    assert config["att_activation"] == "dice"
    assert config["weight_normalization"] is True
    assert config["return_score"] is True
    assert config["skip_padding"] is False


def test_skip_block_size_is_resolved_at_build(rng):
    query, keys = make_inputs(rng, history=50)
    skipping = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN)
    dense = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN, skip_padding=False)
    assert skipping.skip_block_size is None and dense.skip_block_size is None
    skipping.build([query.shape, keys.shape])
    dense.build([query.shape, keys.shape])
    assert dense.skip_block_size is None
    if keras.backend.backend() == "jax":  # jit needs static shapes
        assert skipping.skip_block_size is None
    else:
        assert skipping.skip_block_size == 5
    with_padding_statistics = AttentionSequencePoolingLayer(
        att_activation="dice", dice_ignores_padding=False
    )
    with_padding_statistics.build([query.shape, keys.shape])
    assert with_padding_statistics.skip_block_size is None


@pytest.mark.parametrize("activation", ["sigmoid", "dice", "prelu"])
def test_functional_save_load(rng, tmp_path, activation):
    item = keras.Input((1,), dtype="int32")
    history = keras.Input((None,), dtype="int32")
    lengths = keras.Input((1,), dtype="int32")
    embedding = keras.layers.Embedding(20, 6, mask_zero=True)
    masked = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, att_activation=activation, weight_normalization=True
    )([embedding(item), embedding(history)])
    by_length = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, att_activation=activation
    )([embedding(item), embedding(history), lengths])
    model = keras.Model(
        [item, history, lengths], keras.layers.Concatenate()([masked, by_length])
    )
    inputs = [
        rng.integers(1, 20, size=(5, 1)).astype("int32"),
        padded_histories(rng, [0, 3, 7, 1, 5]),
        np.array([[0], [2], [7], [9], [4]], "int32"),
    ]
    assert_save_load(model, inputs, tmp_path)


def lengths_model(layer, candidates=1, history=7, dim=6):
    """`[query, keys, keys_length]` -> `layer`, as a functional model."""
    inputs = [
        keras.Input((candidates, dim)),
        keras.Input((history, dim)),
        keras.Input((1,), dtype="int32"),
    ]
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize("activation", sorted(OBJECT_ACTIVATIONS))
def test_activation_object_survives_config_round_trip_and_keras_save_and_load(
    rng, tmp_path, activation
):
    query, keys = make_inputs(rng)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        att_activation=OBJECT_ACTIVATIONS[activation](),
        weight_normalization=True,
    )
    assert_config_round_trip(layer)
    model = lengths_model(layer)
    layer.set_weights(random_like_weights(layer, rng))
    lengths = np.array([[0], [2], [7], [9], [4]], "int32")
    assert_save_load(model, [query, keys, lengths], tmp_path)


def test_lambda_activation_loads_only_outside_safe_mode(rng, tmp_path):
    query, keys = make_inputs(rng)
    lengths = np.array([[0], [2], [7], [9], [4]], "int32")
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, att_activation=keras.layers.Lambda(lambda x: x / 2)
    )
    model = lengths_model(layer)
    path = tmp_path / "model.keras"
    model.save(path)
    # Keras's own error, as for a Lambda layer of the model itself.
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)
    reloaded = keras.saving.load_model(path, safe_mode=False)
    np.testing.assert_allclose(
        reloaded.predict([query, keys, lengths], verbose=0),
        model.predict([query, keys, lengths], verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("weight_normalization, return_score", MODES)
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("by", ["lengths", "flat_lengths", "mask"])
@pytest.mark.parametrize("skip_padding", [True, False])
@pytest.mark.parametrize("activation", ["sigmoid", "dice"])
def test_empty_batch_gives_empty_outputs(
    weight_normalization, return_score, candidates, by, skip_padding, activation
):
    # Serving code sees batches of no row.
    query = np.zeros((0, candidates, 6), "float32")
    keys = np.zeros((0, 7, 6), "float32")
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        att_activation=activation,
        weight_normalization=weight_normalization,
        return_score=return_score,
        skip_padding=skip_padding,
    )
    for training in (False, True):
        if by == "mask":
            out = layer([query, keys], mask=np.zeros((0, 7), bool), training=training)
        else:
            lengths = np.zeros((0, 1) if by == "lengths" else (0,), "int32")
            out = layer([query, keys, lengths], training=training)
        assert tuple(out.shape) == (0, candidates, 7 if return_score else 6)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("return_score", [False, True])
def test_empty_batch_output_has_the_compute_dtype_of_the_policy(policy, return_score):
    keras.config.set_dtype_policy(policy)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, weight_normalization=True, return_score=return_score
    )
    query = np.zeros((0, 1, 6), "float32")
    keys = np.zeros((0, 7, 6), "float32")
    out = layer([query, keys, np.zeros((0, 1), "int32")])
    assert tuple(out.shape) == (0, 1, 7 if return_score else 6)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]


@pytest.mark.parametrize("weight_normalization", [False, True])
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("skip_padding", [True, False])
def test_empty_batch_predicts_and_leaves_weights_unchanged_by_a_training_step(
    rng, weight_normalization, candidates, skip_padding
):
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        att_activation="dice",
        weight_normalization=weight_normalization,
        skip_padding=skip_padding,
    )
    model = lengths_model(layer, candidates)
    layer.set_weights(random_like_weights(layer, rng))
    before = [to_numpy(w) for w in model.weights]
    empty = [
        np.zeros((0, candidates, 6), "float32"),
        np.zeros((0, 7, 6), "float32"),
        np.zeros((0, 1), "int32"),
    ]
    out = model.predict_on_batch(empty)
    assert out.shape == (0, candidates, 6) and out.dtype == np.float32
    # No row, no gradient: SGD leaves every weight (and Dice's moving
    # moments, to their rounding) as it was.
    model.compile(optimizer="sgd", loss=lambda y, out: keras.ops.sum(y * out))
    model.train_on_batch(empty, np.zeros((0, candidates, 6), "float32"))
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_allclose(to_numpy(new), old, rtol=1e-6, atol=0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("weight_normalization", [False, True])
def test_mixed_precision_training_with_empty_histories(
    rng, policy, weight_normalization
):
    keras.config.set_dtype_policy(policy)
    embedding = keras.layers.Embedding(30, 8, mask_zero=True)
    item = keras.Input((1,), dtype="int32")
    history = keras.Input((10,), dtype="int32")
    pooled = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        att_activation="dice",
        weight_normalization=weight_normalization,
    )([embedding(item), embedding(history)])
    logits = keras.layers.Dense(1)(keras.layers.Flatten()(pooled))
    out = keras.layers.Activation("sigmoid", dtype="float32")(logits)
    model = keras.Model([item, history], out)
    assert model.layers[-1].dtype == "float32"
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    lengths = rng.integers(0, 11, size=32)
    lengths[:8] = 0  # a quarter of every batch is empty
    histories = padded_histories(rng, lengths, history=10, vocabulary=30)
    items = rng.integers(1, 30, size=(32, 1)).astype("int32")
    labels = rng.integers(0, 2, size=(32, 1)).astype("float32")
    history_log = model.fit(
        [items, histories], labels, batch_size=16, epochs=3, verbose=0
    )
    assert np.all(np.isfinite(history_log.history["loss"]))
    for w in model.weights:
        assert np.all(np.isfinite(to_numpy(w))), w.path
    pooled_model = keras.Model(model.inputs, pooled)
    empty = pooled_model.predict([items[:8], histories[:8]], verbose=0)
    assert np.all(empty == 0)


@pytest.mark.parametrize("weight_normalization", [False, True])
def test_float16_long_history_sums_in_float32(rng, weight_normalization):
    # A thousand positions pooled in float16. Zero kernels and an output bias
    # of 1 make every score exactly 1, so the only error left is the sum's:
    # summed in float16 it would be about 1e-2 of the output, in float32 it
    # is the output's own rounding.
    _, keys = make_inputs(rng, batch=3, history=1000)
    keys = keys.astype("float16")
    query = np.zeros((3, 1, 6), "float16")
    lengths = np.array([[1000], [617], [0]])
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        weight_normalization=weight_normalization,
        dtype="float16",
    )
    layer.build([query.shape, keys.shape])
    weights = [np.zeros_like(to_numpy(w)) for w in layer.get_weights()]
    weights[2 * len(HIDDEN) + 1][:] = 1.0  # the output bias
    layer.set_weights(weights)
    valid = ref.valid_from_lengths(lengths, 1000)
    expected = ref.pool(np.ones((3, 1000, 1)), keys, valid, weight_normalization, False)
    actual = to_numpy(layer([query, keys, lengths]))
    assert actual.dtype == np.float16
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        actual.astype("float64"), expected, rtol=0, atol=2e-3 * scale
    )
    assert np.all(actual[2] == 0)


def test_gradients_finite_with_empty_rows_and_large_scores(rng):
    query, keys = make_inputs(rng)
    keys[1, 3:] = 1e4  # padding with huge values must not leak
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, att_activation="linear", weight_normalization=True
    )
    lengths = np.array([[0], [3], [7], [0], [2]])
    item = keras.Input((1, 6))
    history = keras.Input((7, 6))
    length = keras.Input((1,), dtype="int32")
    out = layer([item, history, length])
    model = keras.Model([item, history, length], keras.layers.Flatten()(out))
    model.compile(optimizer="sgd", loss="mse")
    model.fit([query, keys, lengths], np.ones((5, 6), "float32"), epochs=2, verbose=0)
    for w in model.weights:
        assert np.all(np.isfinite(to_numpy(w))), w.path


@pytest.mark.parametrize(
    "inputs, message",
    [
        (lambda q, k, n: [q], "list or tuple of 2 or 3 tensors"),
        (lambda q, k, n: [q, k, n, n], "list or tuple of 2 or 3 tensors"),
        (lambda q, k, n: q, "list or tuple"),
        (
            lambda q, k, n: [q, k, None],
            r"tensors\. Received: a list of 3: \[.*, None\]",
        ),
        (lambda q, k, n: [q[:, 0], k], "query"),
        (lambda q, k, n: [q, k[:, :, 0]], "keys"),
        (lambda q, k, n: [q[:, :, :3], k], "same last dimension"),
        (lambda q, k, n: [q[:2], k], "same batch size"),
        (lambda q, k, n: [q, k, np.zeros((5, 2), "int32")], "keys_length"),
        (lambda q, k, n: [q, k, np.zeros((5, 1, 1), "int32")], "keys_length"),
        (lambda q, k, n: [q, k, n[:3]], "same batch size"),
        (lambda q, k, n: {"query": q, "keys": k}, r"Received: dict"),
        (lambda q, k, n: None, r"Received: NoneType None"),
    ],
)
def test_bad_inputs(rng, inputs, message):
    query, keys = make_inputs(rng)
    lengths = np.ones((5, 1), "int32")
    args = inputs(query, keys, lengths)
    with pytest.raises(ValueError, match=message) as error:
        AttentionSequencePoolingLayer()(args)
    assert "Received" in str(error.value)
    if isinstance(args, list) and all(a is not None for a in args):  # symbolic
        symbolic = [keras.Input(batch_shape=a.shape, dtype=a.dtype) for a in args]
        with pytest.raises(ValueError, match=message):
            AttentionSequencePoolingLayer()(symbolic)


def test_float_keys_length_is_a_type_error(rng):
    query, keys = make_inputs(rng)
    lengths = np.ones((5, 1), "float32")
    with pytest.raises(TypeError, match="keys_length.*integer.*Received"):
        AttentionSequencePoolingLayer()([query, keys, lengths])
    symbolic = [keras.Input((1, 6)), keras.Input((7, 6)), keras.Input((1,))]
    with pytest.raises(TypeError, match="keys_length") as error:
        AttentionSequencePoolingLayer()(symbolic)
    # keras-din's own message, without Keras's shape-inference preface.
    assert "`keys_length` must have an integer dtype" in str(error.value)
    assert "Could not automatically infer" not in str(error.value)


@pytest.mark.parametrize(
    "argument, dtype, expected",
    [
        ("keys_length", "float64", "float64"),
        ("keys_length", "float16", "float16"),
        ("keys_length", "str", "string"),
        ("mask", "float64", "float64"),
        ("mask", "str", "string"),
        ("query", "int64", "int64"),
        ("query", "str", "string"),
        ("keys", "uint8", "uint8"),
    ],
)
def test_dtype_errors_name_the_dtype_passed(rng, argument, dtype, expected):
    # Keras converts array arguments before `call` (floats to the compute
    # dtype, JAX's int64 to int32; text fails in the conversion): the
    # message names what the caller passed.
    query, keys = make_inputs(rng)
    given = {"query": query, "keys": keys, "mask": np.ones((5, 7), bool)}
    given["keys_length"] = np.ones((5, 1), "int32")
    shape = given[argument].shape
    given[argument] = np.full(shape, "a") if dtype == "str" else np.ones(shape, dtype)
    with pytest.raises(TypeError) as error:
        AttentionSequencePoolingLayer()(
            [given["query"], given["keys"], given["keys_length"]], mask=given["mask"]
        )
    message = str(error.value)
    assert f"`{argument}` must" in message
    assert f"Received: {argument}.dtype={expected}" in message


def test_bad_masks(rng):
    query, keys = make_inputs(rng)
    layer = AttentionSequencePoolingLayer()
    with pytest.raises(ValueError, match="mask.*Received: mask.shape"):
        layer([query, keys], mask=np.ones((5, 6), bool))
    with pytest.raises(ValueError, match="one entry per input"):
        layer([query, keys], mask=[None, None, np.ones((5, 7), bool)])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"att_hidden_units": ()}, "att_hidden_units"),
        ({"att_hidden_units": (0,)}, "att_hidden_units"),
        ({"att_activation": "nope"}, "att_activation='nope'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionSequencePoolingLayer(**kwargs)


@pytest.mark.parametrize("dice_ignores_padding", [True, False])
def test_dice_statistics_and_padding(rng, dice_ignores_padding):
    query, keys = make_inputs(rng, candidates=2)
    lengths = np.array([0, 3, 7, 1, 5])
    valid = ref.valid_from_lengths(lengths, 7)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        att_activation="dice",
        return_score=True,
        dice_ignores_padding=dice_ignores_padding,
    )
    layer.build([query.shape, keys.shape])
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    n = len(HIDDEN)
    alphas = [arrays[2 * n + 2 + 3 * i] for i in range(n)]
    moment_rows = valid if dice_ignores_padding else np.ones_like(valid)

    def dice(i, x):
        rows = x[moment_rows]
        return ref.dice(x, alphas[i], rows.mean(axis=(0, 1)), rows.var(axis=(0, 1)))

    scores = ref.unit_scores_joint(query, keys, *dense_weights(arrays), dice)
    expected = ref.pool(scores, keys, valid, False, True)
    actual = to_numpy(layer([query, keys, lengths], training=True))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_float_mask_is_a_type_error(rng, dtype):
    query, keys = make_inputs(rng)
    mask = np.full((5, 7), 0.5, dtype)
    # (Keras casts a float mask to the layer's float dtype before `call`.)
    with pytest.raises(TypeError, match="`mask` must be boolean.*mask.dtype=float"):
        AttentionSequencePoolingLayer()([query, keys], mask=mask)
    symbolic = [keras.Input((1, 6)), keras.Input((7, 6))]
    with pytest.raises(TypeError, match="`mask` must be boolean"):
        AttentionSequencePoolingLayer()(symbolic, mask=keras.Input((7,)))


def test_integer_mask_counts_nonzero_as_valid(rng):
    query, keys = make_inputs(rng)
    valid = rng.random((5, 7)) < 0.6
    layer, scores = make_layer(rng, query, keys, return_score=True)
    expected = ref.pool(scores, keys, valid, False, True)
    actual = to_numpy(layer([query, keys], mask=valid.astype("int32") * 3))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_non_float_keys_is_a_type_error(rng):
    query, keys = make_inputs(rng)
    with pytest.raises(TypeError, match="`keys` must have a float dtype"):
        AttentionSequencePoolingLayer()([query, keys.astype("int32")])


@pytest.mark.parametrize("weight_normalization, return_score", MODES)
@pytest.mark.parametrize("by", ["lengths", "mask"])
def test_history_axis_of_length_zero_gives_zeros(
    rng, weight_normalization, return_score, by
):
    query, keys = make_inputs(rng, history=0)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        weight_normalization=weight_normalization,
        return_score=return_score,
    )
    if by == "lengths":
        out = layer([query, keys, np.array([0, 1, 3, 0, 2])])
    else:
        out = layer([query, keys], mask=np.zeros((5, 0), bool))
    out = to_numpy(out)
    assert out.shape == ((5, 1, 0) if return_score else (5, 1, 6))
    assert np.all(out == 0)


def padding_model(layer, batch, candidates, history, dim, by):
    """Embeddings -> `layer` -> pooled, with `by` "lengths" or "mask".

    With "lengths" every history position has its own embedding row, given
    by a length input; with "mask" padding is id 0 of an `Embedding` with
    `mask_zero=True`, as in a real model.
    """
    item_ids = keras.Input((candidates,), dtype="int32")
    history_ids = keras.Input((history,), dtype="int32")
    items = keras.layers.Embedding(batch * candidates, dim)
    histories = keras.layers.Embedding(batch * history + 1, dim, mask_zero=by == "mask")
    inputs = [item_ids, history_ids]
    layer_inputs = [items(item_ids), histories(history_ids)]
    if by == "lengths":
        inputs.append(keras.Input((1,), dtype="int32"))
        layer_inputs.append(inputs[-1])
    model = keras.Model(inputs, layer(layer_inputs))
    return model, items, histories


@pytest.mark.parametrize(
    "activation, skip_padding",
    [("sigmoid", True), ("sigmoid", False), ("dice", True)],
)
@pytest.mark.parametrize("weight_normalization", [False, True])
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("by", ["lengths", "mask"])
def test_nan_in_padding_never_reaches_valid_rows(
    rng, activation, skip_padding, weight_normalization, candidates, by
):
    # What the padding rows hold must change neither the output nor, after
    # one SGD step, any weight or valid embedding row: NaN and inf there
    # give exactly what zeros give.
    batch, history, dim = 2, 20, 4
    lengths = np.array([[2], [17]], "int32")
    valid = ref.valid_from_lengths(lengths, history)
    ids = np.arange(1, batch * history + 1).reshape(batch, history)
    if by == "mask":
        ids = np.where(valid, ids, 0)
    inputs = [np.arange(batch * candidates).reshape(batch, candidates), ids]
    if by == "lengths":
        inputs.append(lengths)
    query, keys = make_inputs(rng, batch, candidates, history, dim)
    table = np.concatenate([np.zeros((1, dim), "float32"), keys.reshape(-1, dim)])
    padding_rows = np.concatenate([[0], ids[~valid]]) if by == "lengths" else [0]
    garbage = table.copy()
    garbage[padding_rows] = rng.choice(
        [np.nan, np.inf, -np.inf], (len(padding_rows), dim)
    )
    clean = table.copy()
    clean[padding_rows] = 0.0
    target = rng.normal(size=(batch, candidates, dim)).astype("float32")
    results = []
    weights = None
    for values in (clean, garbage):
        layer = AttentionSequencePoolingLayer(
            att_hidden_units=HIDDEN,
            att_activation=activation,
            weight_normalization=weight_normalization,
            skip_padding=skip_padding,
        )
        model, items, histories = padding_model(
            layer, batch, candidates, history, dim, by
        )
        weights = weights or random_like_weights(layer, rng)
        layer.set_weights(weights)
        items.set_weights([query.reshape(-1, dim)])
        histories.set_weights([values])
        output = to_numpy(model(inputs, training=True))
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1.0),
            loss=lambda y, out: keras.ops.sum(y * out),
        )
        model.train_on_batch(inputs, target)
        after = [to_numpy(w) for w in (items.embeddings, *layer.weights)]
        valid_rows = np.delete(to_numpy(histories.embeddings), padding_rows, axis=0)
        results.append((output, after, valid_rows))
    (output, after, rows), (garbage_output, garbage_after, garbage_rows) = results
    assert np.all(np.isfinite(garbage_output))
    np.testing.assert_allclose(garbage_output, output, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(garbage_rows, rows, rtol=1e-6, atol=1e-6)
    for new, old in zip(garbage_after, after, strict=True):
        np.testing.assert_allclose(new, old, rtol=1e-6, atol=1e-6)
