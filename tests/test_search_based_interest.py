"""`SearchBasedInterest` (SIM, ETA) and its top-k retrieval against NumPy
references: soft, hard and SimHash search, masks with holes, empty
histories, `top_k` above the history length, several candidates and exact
ties."""

import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import to_numpy

from keras_din import SearchBasedInterest
from keras_din.layers import _backend
from keras_din.layers import _retrieval

B, C, T, E = 4, 3, 9, 8


def data(rng, candidates=C, search="soft", history=T):
    query = rng.normal(size=(B, candidates, E)).astype("float32")
    keys = rng.normal(size=(B, history, E)).astype("float32")
    valid = rng.random((B, history)) < 0.7  # holes anywhere
    valid[0] = False  # an empty history
    valid[1] = True  # a full one
    if search != "hard":
        return [query, keys], valid
    ids = [rng.integers(0, 3, (B, candidates)), rng.integers(0, 3, (B, history))]
    return [query, keys, *ids], valid


def randomized(layer, rng):
    weights = [rng.normal(scale=0.5, size=w.shape) for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


def outputs(layer, inputs, valid):
    out = layer(inputs, mask=valid)
    return [to_numpy(x) for x in (out if isinstance(out, list) else [out])]


def expected(inputs, valid, weights, layer):
    query, keys, *ids = inputs
    interest, u = ref.search_based_interest(
        query, keys, valid, weights, layer.num_heads, layer.top_k, *ids
    )
    return [interest] if u is None else [interest, u]


def assert_matches_reference(layer, inputs, valid, rng):
    layer(inputs, mask=valid)
    weights = randomized(layer, rng)
    for actual, wanted in zip(
        outputs(layer, inputs, valid),
        expected(inputs, valid, weights, layer),
        strict=True,
    ):
        np.testing.assert_allclose(actual, wanted, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("search", ["soft", "hard", "simhash"])
@pytest.mark.parametrize("candidates", [1, C])
@pytest.mark.parametrize("top_k", [1, 3, 50])
def test_matches_numpy_reference(rng, search, candidates, top_k):
    layer = SearchBasedInterest(top_k=top_k, search=search, num_heads=2)
    inputs, valid = data(rng, candidates, search)
    assert_matches_reference(layer, inputs, valid, rng)


@pytest.mark.parametrize("search", ["soft", "hard", "simhash"])
def test_long_history_with_key_dim(rng, search):
    layer = SearchBasedInterest(top_k=20, search=search, num_heads=3, key_dim=5)
    inputs, valid = data(rng, search=search, history=300)
    assert_matches_reference(layer, inputs, valid, rng)


def test_equal_relevances_keep_the_most_recent(rng):
    # Integer embeddings and search kernels: relevances are exact, so the
    # copies of an item repeated in the history tie exactly.
    layer = SearchBasedInterest(top_k=3, search="soft", num_heads=1)
    items = rng.integers(-2, 3, (3, E)).astype("float32")
    history = rng.integers(0, 3, (B, 40))
    keys = items[history]
    query = items[rng.integers(0, 3, (B, C))]
    valid = np.ones((B, 40), bool)
    valid[:, -4:] = False
    layer([query, keys], mask=valid)
    weights = randomized(layer, rng)
    weights[5:] = [rng.integers(-2, 3, w.shape).astype("float32") for w in weights[5:]]
    layer.set_weights(weights)
    interest, _ = ref.search_based_interest(query, keys, valid, weights, 1, 3)
    np.testing.assert_allclose(
        outputs(layer, [query, keys], valid)[0], interest, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("history", [1, 7, 500])
def test_retrieval_keeps_the_highest_then_the_latest(rng, history):
    k = 5
    scores = rng.integers(0, 4, (2, 3, history)).astype("float32")  # many ties
    valid = rng.random((2, 1, history)) < 0.5
    positions, kept = (to_numpy(x) for x in _retrieval.highest(scores, valid, k))
    for b in range(2):
        for c in range(3):
            eligible = [t for t in range(history) if valid[b, 0, t]]
            best = sorted(eligible, key=lambda t: (-scores[b, c, t], -t))[:k]
            assert sorted(positions[b, c][kept[b, c]], reverse=True) == sorted(
                best, reverse=True
            )
            # The kept come first, latest first; the rest is position 0.
            assert list(positions[b, c][kept[b, c]]) == sorted(best, reverse=True)
            assert kept[b, c].sum() == len(best)
            assert np.all(positions[b, c][~kept[b, c]] == 0)


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_largest_values_on_every_backend(rng, dtype):
    # The backends' ranking (a sort of the floats' bits on JAX), with the
    # extremes, both zeros and ties.
    x = rng.normal(size=(3, 4, 300)) * 10
    x[0, 0, :8] = [-0.0, 0.0, -np.inf, np.inf, 3.4e38, -3.4e38, 0.5, -0.5]
    x[1] = np.round(x[1])
    x = x.astype(dtype) if dtype == "float32" else np.round(x[..., 8:]).astype(dtype)
    largest = to_numpy(_backend.largest(keras.ops.convert_to_tensor(x), 20))
    np.testing.assert_array_equal(largest, -np.sort(-x, axis=-1)[..., :20])


def test_padding_never_reaches_the_output(rng):
    for search in ("soft", "hard", "simhash"):
        layer = SearchBasedInterest(top_k=4, search=search)
        inputs, valid = data(rng, search=search)
        clean = outputs(layer, inputs, valid)
        dirty = list(inputs)
        dirty[1] = np.where(valid[..., None], inputs[1], np.nan).astype("float32")
        for a, b in zip(outputs(layer, dirty, valid), clean, strict=True):
            np.testing.assert_array_equal(a, b)
        assert np.all(clean[0][0] == 0)  # the empty history
        assert np.all(np.abs(clean[0][1]).sum(-1) > 0)


def test_no_mask_means_every_position_is_valid_and_empty_history_axis(rng):
    layer = SearchBasedInterest(top_k=4)
    inputs, _ = data(rng)
    everything = np.ones((B, T), bool)
    for a, b in zip(
        outputs(layer, inputs, None), outputs(layer, inputs, everything), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    query, keys = inputs
    for a in outputs(layer, [query, keys[:, :0]], None):
        np.testing.assert_array_equal(a, np.zeros((B, C, E)))


def test_gradients_reach_every_weight_through_their_own_output(rng):
    inputs = [keras.Input((C, E)), keras.Input((T, E)), keras.Input((T,), dtype="bool")]
    layer = SearchBasedInterest(top_k=3, seed=3)
    interest, u = layer(inputs[:2], mask=inputs[2])
    model = keras.Model(inputs, [interest, u])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", "mse"])
    x, valid = data(rng)
    y = [rng.normal(size=(B, C, E)), rng.normal(size=(B, C, E))]
    before = [w.copy() for w in layer.get_weights()]
    model.train_on_batch([*x, valid], y)
    moved = {
        w.path: not np.allclose(a, b)
        for w, a, b in zip(layer.weights, before, layer.get_weights(), strict=True)
    }
    assert all(moved.values()), [path for path, m in moved.items() if not m]
    # Through the interest alone, the top-k passes nothing to the search.
    model = keras.Model(inputs, interest)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in layer.get_weights()]
    model.train_on_batch([*x, valid], y[0])
    for w, a in zip(layer.weights, before, strict=True):
        assert np.allclose(a, to_numpy(w)) == w.name.startswith("search_"), w.path


@pytest.mark.parametrize("search", ["soft", "hard", "simhash"])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_symbolic_and_eager_agree(rng, search, policy):
    layer = SearchBasedInterest(top_k=4, search=search, dtype=policy)
    inputs, valid = data(rng, search=search)
    symbolic = layer(
        [keras.Input(x.shape[1:], dtype=x.dtype) for x in inputs],
        mask=keras.Input((T,), dtype="bool"),
    )
    eager = layer(inputs, mask=valid)
    compute = keras.DTypePolicy(policy).compute_dtype
    pairs = zip(
        symbolic if search == "soft" else [symbolic],
        eager if search == "soft" else [eager],
        strict=True,
    )
    for s, e in pairs:
        assert tuple(s.shape[1:]) == tuple(e.shape[1:]) == (C, E)
        assert keras.backend.standardize_dtype(e.dtype) == compute
        assert keras.backend.standardize_dtype(s.dtype) == compute
        assert np.all(np.isfinite(to_numpy(keras.ops.cast(e, "float32"))))


def test_config_and_keras_file_round_trip(rng, tmp_path):
    layer = SearchBasedInterest(
        top_k=2, search="hard", num_heads=3, key_dim=2, seed=7, name="sim"
    )
    assert_config_round_trip(layer)
    inputs = [
        keras.Input((C, E)),
        keras.Input((T, E)),
        keras.Input((C,), dtype="int32"),
        keras.Input((T,), dtype="int32"),
        keras.Input((T,), dtype="bool"),
    ]
    model = keras.Model(inputs, layer(inputs[:4], mask=inputs[4]))
    path = tmp_path / "sim.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, valid = data(rng, search="hard")
    np.testing.assert_allclose(
        to_numpy(loaded([*x, valid])), to_numpy(model([*x, valid])), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": 0}, "top_k"),
        ({"hash_bits": 0}, "hash_bits"),
        ({"num_heads": 0}, "num_heads"),
        ({"key_dim": -1}, "key_dim"),
        (
            {"search": "cosine"},
            r"`search` must be one of \('soft', 'hard', 'simhash'\). "
            "Received: search='cosine'",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchBasedInterest(**kwargs)


def test_bad_inputs_name_what_they_expected(rng):
    (query, keys, query_ids, key_ids), valid = data(rng, search="hard")
    with pytest.raises(ValueError, match="list or tuple of 4 tensors"):
        SearchBasedInterest(search="hard")([query, keys])
    with pytest.raises(ValueError, match="list or tuple of 2 tensors"):
        SearchBasedInterest()([query, keys, query_ids, key_ids])
    with pytest.raises(ValueError, match="multiple of `num_heads`=3: pass `key_dim`"):
        SearchBasedInterest(num_heads=3)([query, keys])
    with pytest.raises(ValueError, match="same last dimension"):
        SearchBasedInterest()([query[..., :4], keys])
    with pytest.raises(ValueError, match=r"`key_ids` must have shape \(4, 9\)"):
        SearchBasedInterest(search="hard")([query, keys, query_ids, key_ids[:, :3]])
    with pytest.raises(TypeError, match="`query_ids` must have an integer dtype"):
        SearchBasedInterest(search="hard")(
            [query, keys, query_ids.astype("float32"), key_ids]
        )
    with pytest.raises(ValueError, match=r"must have shape \(batch, history_length\)"):
        SearchBasedInterest()([query, keys], mask=valid[:, :3])


def test_simhash_projection_is_fixed_and_takes_no_gradient(rng):
    inputs = [keras.Input((C, E)), keras.Input((T, E)), keras.Input((T,), dtype="bool")]
    layer = SearchBasedInterest(top_k=3, search="simhash", hash_bits=16, seed=3)
    model = keras.Model(inputs, layer(inputs[:2], mask=inputs[2]))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    assert [w.name for w in layer.non_trainable_weights] == ["hash_projection"]
    assert tuple(layer.hash_projection.shape) == (E, 16)
    x, valid = data(rng, search="simhash")
    before = [w.copy() for w in layer.get_weights()]
    model.train_on_batch([*x, valid], rng.normal(size=(B, C, E)))
    for w, a in zip(layer.weights, before, strict=True):
        assert np.allclose(a, to_numpy(w)) == (w.name == "hash_projection"), w.path
    # The same seed, the same projection.
    again = SearchBasedInterest(search="simhash", hash_bits=16, seed=3)
    again(x)
    np.testing.assert_array_equal(to_numpy(again.hash_projection), before[-1])
