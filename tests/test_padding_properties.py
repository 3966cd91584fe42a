"""Property: what the padding holds leaves valid results the reference's.

Hypothesis draws the shapes, the valid positions (lengths, a Keras mask from
`Embedding(mask_zero=True)`, or both), the mode and the padding contents
(NaN, inf, huge or ordinary finite values). The output must be the NumPy
reference's, and one SGD step must move every weight and every valid
embedding row exactly as it does when the padding holds zeros.
"""

import keras
import numpy as np
import pytest
import reference as ref
from din_models import BUYS
from din_models import CATEGORIES
from din_models import CLICKS
from din_models import FEATURES
from din_models import T_CLICKS
from din_models import feature_data
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from layer_checks import random_like_weights
from layer_checks import to_numpy
from test_attention_sequence_pooling_layer import HIDDEN
from test_attention_sequence_pooling_layer import dense_weights

from keras_din import AttentionSequencePoolingLayer
from keras_din.models import DIEN
from keras_din.models import DIN
from keras_din.models import BaseModel

PADDING_VALUES = [np.nan, np.inf, -np.inf, 1e30, -1e30, 7.0, 0.5]


@st.composite
def cases(draw):
    batch = draw(st.integers(1, 4))
    history = draw(st.integers(1, 12))
    case = {
        "dim": draw(st.integers(1, 4)),
        "candidates": draw(st.integers(1, 3)),
        "weight_normalization": draw(st.booleans()),
        "return_score": draw(st.booleans()),
        "skip_padding": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
        "padding": draw(st.lists(st.sampled_from(PADDING_VALUES), min_size=1)),
    }
    by = draw(st.sampled_from(["lengths", "mask", "both"]))
    case["lengths"] = None
    case["mask"] = np.ones((batch, history), bool)
    if by != "mask":
        lengths = st.integers(-2, history + 2)
        case["lengths"] = np.array(
            draw(st.lists(lengths, min_size=batch, max_size=batch))
        )
    if by != "lengths":
        flags = st.lists(st.booleans(), min_size=history, max_size=history)
        case["mask"] = np.array(draw(st.lists(flags, min_size=batch, max_size=batch)))
    return case


# JAX compiles every operation it runs eagerly, once per shape: about a
# hundred compilations for each drawn shape, where `jit` (Keras's default
# there) compiles a prediction and a train step once. TensorFlow and torch
# run eagerly: a traced train step per drawn shape would take most of the time.
EAGER = keras.backend.backend() != "jax"


def run(case, query, keys, tables, weights, target):
    """For each history table of `tables`: the output and, after one SGD
    step from the same weights, every weight and embedding row."""
    batch, candidates, dim = query.shape
    history = keys.shape[1]
    item_ids = keras.Input((candidates,), dtype="int32")
    history_ids = keras.Input((history,), dtype="int32")
    # (One spare row: Keras's torch trainer builds on placeholder ids of 1.)
    items = keras.layers.Embedding(batch * candidates + 1, dim)
    histories = keras.layers.Embedding(len(tables[0]), dim, mask_zero=True)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        weight_normalization=case["weight_normalization"],
        return_score=case["return_score"],
        skip_padding=case["skip_padding"],
    )
    inputs = [item_ids, history_ids]
    layer_inputs = [items(item_ids), histories(history_ids)]
    if case["lengths"] is not None:
        inputs.append(keras.Input((), dtype="int32"))
        layer_inputs.append(inputs[-1])
    model = keras.Model(inputs, layer(layer_inputs))
    # Plain SGD keeps no state between steps: each table's step starts alike.
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=lambda y, out: keras.ops.sum(y * out),
        run_eagerly=EAGER,
    )
    ids = np.arange(1, batch * history + 1).reshape(batch, history)
    data = [
        np.arange(batch * candidates).reshape(batch, candidates),
        np.where(case["mask"], ids, 0),
    ]
    if case["lengths"] is not None:
        data.append(case["lengths"].astype("int32"))
    results = []
    for table in tables:
        layer.set_weights(weights)
        items.set_weights(
            [np.concatenate([query.reshape(-1, dim), np.zeros((1, dim))])]
        )
        histories.set_weights([table])
        output = to_numpy(model(data) if EAGER else model.predict_on_batch(data))
        model.train_on_batch(data, target)
        moved = [
            to_numpy(w)
            for w in (items.embeddings, histories.embeddings, *layer.weights)
        ]
        results.append((output, moved))
    return results


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_padding_never_changes_valid_outputs_or_gradients(case):
    rng = np.random.default_rng(case["seed"])
    batch, history = case["mask"].shape
    dim, candidates = case["dim"], case["candidates"]
    query = rng.normal(size=(batch, candidates, dim)).astype("float32")
    keys = rng.normal(size=(batch, history, dim)).astype("float32")
    valid = case["mask"].copy()
    if case["lengths"] is not None:
        valid &= ref.valid_from_lengths(case["lengths"], history)
    # Row 0 of the history table is the Keras mask's padding, row 1 + i
    # position i; the padding rows are those of the invalid positions.
    clean = np.concatenate([np.zeros((1, dim)), keys.reshape(-1, dim)]).astype(
        "float32"
    )
    clean[1:][~valid.reshape(-1)] = 0.0
    padding = np.resize(np.array(case["padding"], "float32"), clean.shape)
    garbage = clean.copy()
    padding_rows = np.concatenate([[0], 1 + np.flatnonzero(~valid.reshape(-1))])
    garbage[padding_rows] = padding[padding_rows]
    probe = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN)
    probe.build([query.shape, keys.shape])
    weights = random_like_weights(probe, rng)
    out_shape = (batch, candidates, history if case["return_score"] else dim)
    target = rng.normal(size=out_shape).astype("float32")

    (output, moved), (garbage_output, garbage_moved) = run(
        case, query, keys, [clean, garbage], weights, target
    )

    clean_keys = clean[1:].reshape(batch, history, dim)
    scores = ref.unit_scores(
        query, clean_keys, *dense_weights(weights), lambda i, x: ref.sigmoid(x)
    )
    expected = ref.pool(
        scores, clean_keys, valid, case["weight_normalization"], case["return_score"]
    )
    np.testing.assert_allclose(garbage_output, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(garbage_output, output, rtol=1e-6, atol=1e-6)
    garbage_moved[1] = np.delete(garbage_moved[1], padding_rows, axis=0)
    moved[1] = np.delete(moved[1], padding_rows, axis=0)
    for new, old in zip(garbage_moved, moved, strict=True):
        assert np.all(np.isfinite(new))
        np.testing.assert_allclose(new, old, rtol=1e-6, atol=1e-6)


# --- The models of keras_din.models --------------------------------------------

BUILDERS = {"din": DIN, "dien": DIEN, "base": BaseModel}
# The tables whose id 0 pads the histories (the candidates' features).
PADDED_TABLES = ("item", "category")


def builder_run(model, weights, x, y):
    """Predictions, then every weight after one SGD step (eager)."""
    model.set_weights(weights)
    predictions = to_numpy(model(x))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.5),
        loss="binary_crossentropy",
        run_eagerly=True,
    )
    model.train_on_batch(x, y)
    return predictions, [to_numpy(w) for w in model.weights]


# One non-finite and one finite padding row per case: derandomized, the one
# drawn example is the simplest, seed 0 with NaN rows (which 1e30 rows would
# repeat: both turn any arithmetic that reaches them non-finite); the
# explicit example holds rows of finite random values (7.0, constant, would
# repeat them), which a comparison or a count that reads the padding sees
# where NaN might slip through. Four drawn examples cost twice as much and
# left some cases without a finite row.
@settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**16),
    padding_row=st.sampled_from([np.nan, 1e30, 7.0, "random"]),
)
@example(seed=581, padding_row="random")
@pytest.mark.parametrize("candidates", [1, 2])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_builder_predictions_and_gradients_never_depend_on_the_padding(
    kind, candidates, seed, padding_row
):
    # CLICKS pads by its length input and by id 0 of its items (holes too),
    # BUYS by id 0; the other ids at those positions (past a length, the
    # categories at a hole, the negatives) may be anything.
    rng = np.random.default_rng(seed)
    x = feature_data(rng, rows=8, candidates=candidates)
    padding = ~ref.valid_from_lengths(x["clicks_length"], T_CLICKS)
    padding |= x["clicked_items"] == 0
    x["clicked_categories"] = rng.integers(1, CATEGORIES, (8, T_CLICKS))
    clean = dict(x)
    for name in ("clicked_categories", "negative_items", "negative_categories"):
        clean[name] = np.where(padding, 0, x[name])
    past = ~ref.valid_from_lengths(x["clicks_length"], T_CLICKS)
    clean["clicked_items"] = np.where(past, 0, x["clicked_items"])
    model = BUILDERS[kind](
        FEATURES, [CLICKS, BUYS], candidates=candidates, embedding_l2=0.01
    )
    clean = {name: clean[name] for name in model.input}
    garbage = {name: x[name] for name in model.input}
    assert any(not np.array_equal(clean[n], garbage[n]) for n in clean)
    weights = random_like_weights_of(model, rng)
    garbage_weights = [w.copy() for w in weights]
    padding_rows = []
    for table in PADDED_TABLES:
        table_path = model.get_layer("embedding").tables[table].embeddings.path
        index = [w.path for w in model.weights].index(table_path)
        padding_rows.append(index)
        weights[index][0] = 0.0
        row = rng.normal(size=weights[index].shape[1]) * 100
        garbage_weights[index][0] = row if padding_row == "random" else padding_row
    y = (rng.random((8, candidates)) < 0.5).astype("float32")

    predictions, moved = builder_run(model, weights, clean, y)
    garbage_predictions, garbage_moved = builder_run(model, garbage_weights, garbage, y)

    np.testing.assert_allclose(garbage_predictions, predictions, rtol=1e-6, atol=1e-7)
    for i, (new, old) in enumerate(zip(garbage_moved, moved, strict=True)):
        if i in padding_rows:  # all but the padding row
            new, old = new[1:], old[1:]
        assert np.all(np.isfinite(new)), model.weights[i].path
        np.testing.assert_allclose(
            new, old, rtol=1e-5, atol=1e-6, err_msg=model.weights[i].path
        )


def random_like_weights_of(model, rng):
    """Random weights for every layer of `model`, in `model.weights` order."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(random_like_weights(layer, rng))
    return [to_numpy(w) for w in model.weights]
