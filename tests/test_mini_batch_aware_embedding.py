import keras
import numpy as np
import pytest
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import to_numpy

from keras_din import MiniBatchAwareEmbedding

VOCABULARY, DIM = 12, 4


def paper_penalty(table, ids, frequencies, l2, padding_id=None):
    """DIN paper eq. (4) for one mini-batch: every distinct id once."""
    distinct = set(np.asarray(ids).ravel().tolist()) - {padding_id}
    return l2 * sum(np.sum(table[j] ** 2) / max(frequencies[j], 1.0) for j in distinct)


@pytest.fixture
def frequencies(rng):
    counts = rng.integers(1, 50, size=VOCABULARY).astype("float32")
    counts[5] = 0  # an id never seen in training counts as 1
    return counts


@pytest.mark.parametrize("mask_zero", [False, True])
def test_penalty_matches_paper_formula(rng, frequencies, mask_zero):
    ids = np.array([[1, 3, 3, 0], [5, 1, 0, 0], [7, 3, 11, 2]], "int32")
    layer = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, frequencies=frequencies, l2=0.05, mask_zero=mask_zero
    )
    out = layer(ids, training=True)
    table = to_numpy(layer.embeddings).astype("float64")
    np.testing.assert_allclose(to_numpy(out), table[ids], rtol=1e-6)
    assert len(layer.losses) == 1
    expected = paper_penalty(
        table, ids, frequencies, 0.05, padding_id=0 if mask_zero else None
    )
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-5)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_a_list_of_inputs_counts_each_id_once(rng, frequencies, mask_zero):
    # The candidates and the history share the table: id 3 occurs in both
    # and counts once, as in the paper's penalty per table and batch.
    candidates = np.array([[3], [7]], "int32")
    history = np.array([[1, 3, 3, 0], [5, 7, 0, 0]], "int32")
    layer = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, frequencies=frequencies, l2=0.05, mask_zero=mask_zero
    )
    outputs = layer([candidates, history], training=True)
    table = to_numpy(layer.embeddings).astype("float64")
    assert isinstance(outputs, list) and len(outputs) == 2
    for output, ids in zip(outputs, (candidates, history), strict=True):
        np.testing.assert_allclose(to_numpy(output), table[ids], rtol=1e-6)
    assert len(layer.losses) == 1
    padding_id = 0 if mask_zero else None
    ids = np.concatenate([candidates.ravel(), history.ravel()])
    expected = paper_penalty(table, ids, frequencies, 0.05, padding_id)
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-5)
    # Called apart, the table penalises the shared ids in each call.
    apart = [
        paper_penalty(table, x, frequencies, 0.05, padding_id)
        for x in (candidates, history)
    ]
    for x, penalty in zip((candidates, history), apart, strict=True):
        layer(x, training=True)
        np.testing.assert_allclose(to_numpy(layer.losses[0]), penalty, rtol=1e-5)
    assert sum(apart) > expected * 1.01


def test_a_list_of_symbolic_inputs_carries_a_mask_each():
    layer = MiniBatchAwareEmbedding(VOCABULARY, DIM, mask_zero=True)
    candidates = keras.Input((1,), dtype="int32")
    history = keras.Input((4,), dtype="int32")
    embedded = layer([candidates, history])
    assert [tuple(x.shape) for x in embedded] == [(None, 1, DIM), (None, 4, DIM)]
    pooled = keras.layers.GlobalAveragePooling1D()(embedded[1])  # takes the mask
    model = keras.Model([candidates, history], pooled)
    history_ids = np.array([[2, 4, 0, 0]], "int32")
    table = to_numpy(layer.embeddings)
    expected = table[[2, 4]].mean(axis=0, keepdims=True)
    output = model([np.array([[1]], "int32"), history_ids])
    np.testing.assert_allclose(to_numpy(output), expected, rtol=1e-6)


def test_no_penalty_in_inference(frequencies):
    layer = MiniBatchAwareEmbedding(VOCABULARY, DIM, frequencies=frequencies, l2=0.1)
    layer(np.array([[1, 2]]))
    layer(np.array([[1, 2]]), training=False)
    assert layer.losses == []


def test_sgd_step_is_the_papers_update(rng, frequencies):
    """Only rows in the batch shrink, by lr * 2 * l2 * w_j / n_j."""
    ids = keras.Input((3,), dtype="int32")
    embedding = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, frequencies=frequencies, l2=0.5, mask_zero=True
    )
    outputs = keras.layers.Flatten()(embedding(ids))
    model = keras.Model(ids, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    batch = np.array([[1, 4, 4], [0, 0, 9], [4, 5, 0]], "int32")
    before = to_numpy(embedding.embeddings).copy()
    # Targets equal to the current outputs: the data loss has zero gradient,
    # so the step is the regularization's alone.
    targets = model.predict(batch, verbose=0)
    model.fit(batch, targets, batch_size=3, epochs=1, shuffle=False, verbose=0)
    after = to_numpy(embedding.embeddings)
    expected = before.copy()
    for j in (1, 4, 5, 9):
        expected[j] -= 0.1 * 2 * 0.5 * before[j] / max(frequencies[j], 1.0)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-7)


def test_mask_and_save_load(rng, frequencies, tmp_path):
    ids = keras.Input((None,), dtype="int32")
    embedding = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, frequencies=frequencies, l2=0.01, mask_zero=True
    )
    embedded = embedding(ids)
    assert embedded.shape == (None, None, DIM)
    pooled = keras.layers.GlobalAveragePooling1D()(embedded)
    model = keras.Model(ids, pooled)
    data = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], "int32")
    # The Keras mask reaches the pooling: the padding is not averaged in.
    table = to_numpy(embedding.embeddings)
    np.testing.assert_allclose(
        model.predict(data, verbose=0)[0], table[[1, 2]].mean(axis=0), rtol=1e-5
    )
    reloaded = assert_save_load(model, data, tmp_path)
    np.testing.assert_array_equal(to_numpy(reloaded.layers[1].frequencies), frequencies)


def test_config_round_trip(frequencies):
    layer = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, frequencies=frequencies, l2=0.2, mask_zero=True, name="mba"
    )
    assert_config_round_trip(layer)
    assert layer.get_config()["l2"] == 0.2


@keras.saving.register_keras_serializable(package="keras_din_tests")
class Filled(keras.initializers.Initializer):
    """A registered initializer: every entry `value`."""

    def __init__(self, value):
        self.value = value

    def __call__(self, shape, dtype=None):
        return keras.ops.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


def test_initializer_object_survives_config_round_trip_and_keras_save_and_load(
    tmp_path,
):
    layer = MiniBatchAwareEmbedding(
        VOCABULARY, DIM, embeddings_initializer=Filled(0.25)
    )
    assert_config_round_trip(layer)
    clone = MiniBatchAwareEmbedding.from_config(layer.get_config())
    clone.build()
    np.testing.assert_array_equal(to_numpy(clone.embeddings), 0.25)
    ids = keras.Input((None,), dtype="int32")
    model = keras.Model(ids, layer(ids))
    table = np.arange(VOCABULARY * DIM, dtype="float32").reshape(VOCABULARY, DIM)
    layer.embeddings.assign(table)
    assert_save_load(model, np.array([[1, 2, 0], [3, 11, 5]], "int32"), tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"l2": -1.0}, "l2"),
        ({"frequencies": np.ones(3)}, "frequencies"),
        ({"frequencies": -np.ones(VOCABULARY)}, "frequencies"),
        ({"input_dim": 0}, "input_dim"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"input_dim": VOCABULARY, "output_dim": DIM, **kwargs}
    with pytest.raises(ValueError, match=f"{message}.*Received"):
        MiniBatchAwareEmbedding(**arguments)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(frequencies, policy):
    keras.config.set_dtype_policy(policy)
    layer = MiniBatchAwareEmbedding(VOCABULARY, DIM, frequencies=frequencies, l2=0.1)
    out = layer(np.array([[1, 2, 2]]), training=True)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"
    table = to_numpy(layer.embeddings).astype("float64")
    expected = paper_penalty(table, [1, 2], frequencies, 0.1)
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-2)
