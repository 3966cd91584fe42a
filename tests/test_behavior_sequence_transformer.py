"""`BehaviorSequenceTransformer` (BST) against a NumPy reference of the
paper's block, with masks, holes, empty histories and several candidates."""

import keras
import numpy as np
import pytest
import reference as ref

from keras_din import BehaviorSequenceTransformer

B, C, T, E = 4, 3, 6, 8


def data(rng, candidates=C):
    query = rng.normal(size=(B, candidates, E)).astype("float32")
    keys = rng.normal(size=(B, T, E)).astype("float32")
    valid = rng.random((B, T)) < 0.6  # holes anywhere
    valid[0] = False  # an empty history
    valid[1] = True  # a full one
    return query, keys, valid


def randomized(layer, rng):
    weights = [rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("pooling", ["concat", "mean", "target"])
@pytest.mark.parametrize("candidates", [1, C])
def test_matches_numpy_reference(rng, pooling, candidates):
    layer = BehaviorSequenceTransformer(num_heads=2, pooling=pooling)
    query, keys, valid = data(rng, candidates)
    layer([query, keys], mask=valid)
    weights = randomized(layer, rng)
    actual = keras.ops.convert_to_numpy(layer([query, keys], mask=valid))
    expected = ref.bst_output(query, keys, valid, weights, 2, pooling)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_padding_never_reaches_the_output(rng):
    layer = BehaviorSequenceTransformer(num_heads=4, pooling="concat")
    query, keys, valid = data(rng)
    clean = keras.ops.convert_to_numpy(layer([query, keys], mask=valid))
    garbage = np.where(valid[..., None], keys, np.nan).astype("float32")
    dirty = keras.ops.convert_to_numpy(layer([query, garbage], mask=valid))
    np.testing.assert_array_equal(dirty, clean)
    # 0 at the padding positions of the concatenation, the candidate's last.
    per_position = clean.reshape(B, C, T + 1, E)
    assert np.all(per_position.transpose(0, 2, 1, 3)[:, :T][~valid] == 0)
    assert np.all(np.abs(per_position[0, :, T]).sum(-1) > 0)  # empty history


def test_no_mask_means_every_position_is_valid(rng):
    layer = BehaviorSequenceTransformer(num_heads=2, pooling="mean")
    query, keys, _ = data(rng)
    everything = np.ones((B, T), bool)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer([query, keys])),
        keras.ops.convert_to_numpy(layer([query, keys], mask=everything)),
        rtol=1e-6,
    )


def test_gradients_reach_every_weight(rng):
    inputs = [keras.Input((C, E)), keras.Input((T, E)), keras.Input((T,), dtype="bool")]
    layer = BehaviorSequenceTransformer(num_heads=2, dropout_rate=0.1, seed=3)
    output = layer(inputs[:2], mask=inputs[2])
    model = keras.Model(inputs, keras.layers.Dense(1)(output))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    query, keys, valid = data(rng)
    before = [w.copy() for w in layer.get_weights()]
    model.train_on_batch([query, keys, valid], rng.normal(size=(B, C, 1)))
    moved = {
        w.path: not np.allclose(a, b)
        for w, a, b in zip(layer.weights, before, layer.get_weights(), strict=True)
    }
    assert all(moved.values()), [path for path, m in moved.items() if not m]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_symbolic_and_eager_agree(rng, policy):
    layer = BehaviorSequenceTransformer(num_heads=2, dtype=policy)
    symbolic = layer([keras.Input((C, E)), keras.Input((T, E))])
    query, keys, valid = data(rng)
    eager = layer([query, keys], mask=valid)
    assert tuple(symbolic.shape[1:]) == tuple(eager.shape[1:]) == (C, (T + 1) * E)
    compute = keras.DTypePolicy(policy).compute_dtype
    assert keras.backend.standardize_dtype(eager.dtype) == compute
    assert keras.backend.standardize_dtype(symbolic.dtype) == compute
    assert np.all(
        np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(eager, "float32")))
    )


def test_config_and_keras_file_round_trip(rng, tmp_path):
    layer = BehaviorSequenceTransformer(
        num_heads=2,
        key_dim=3,
        feed_forward_units=5,
        dropout_rate=0.2,
        pooling="target",
        seed=7,
        name="bst",
    )
    config = layer.get_config()
    assert BehaviorSequenceTransformer.from_config(config).get_config() == config
    inputs = [keras.Input((C, E)), keras.Input((T, E)), keras.Input((T,), dtype="bool")]
    model = keras.Model(inputs, layer(inputs[:2], mask=inputs[2]))
    path = tmp_path / "bst.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = list(data(rng))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0}, "num_heads"),
        ({"key_dim": -1}, "key_dim"),
        ({"feed_forward_units": 0}, "feed_forward_units"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        (
            {"pooling": "max"},
            r"`pooling` must be one of \('concat', 'mean', 'target'\). "
            "Received: pooling='max'",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BehaviorSequenceTransformer(**kwargs)


def test_bad_inputs_name_what_they_expected(rng):
    query, keys, valid = data(rng)
    with pytest.raises(ValueError, match="multiple of `num_heads`=3: pass `key_dim`"):
        BehaviorSequenceTransformer(num_heads=3)([query, keys])
    with pytest.raises(ValueError, match="same last dimension"):
        BehaviorSequenceTransformer(num_heads=2)([query[..., :4], keys])
    with pytest.raises(ValueError, match="history length of `keys` must be known"):
        BehaviorSequenceTransformer(num_heads=2)(
            [keras.Input((C, E)), keras.Input((None, E))]
        )
    with pytest.raises(ValueError, match=r"must have shape \(batch, history_length\)"):
        BehaviorSequenceTransformer(num_heads=2)([query, keys], mask=valid[:, :3])
