"""Small DIN models and inputs shared by the saving and export tests.

Three ways to mark the valid history positions, one model each:

- `"lengths"`: a `(B, 1)` `keys_length` input (Dice activation, softmax);
- `"mask_zero"`: `Embedding(mask_zero=True)`, id 0 pads (PReLU, raw scores);
- `"explicit_mask"`: a `(B, T)` boolean input passed as `mask=` (sigmoid,
  softmax).

Every model takes `candidate (B, 1)` and `history (B, T)` item ids first,
with the batch size and `T` unknown, and returns a click probability `(B, 1)`.
One more kind, `"candidates"`, has no golden file: `candidate (B, 3)` ids
scored in one call against the history (lengths, softmax), and a click
probability per candidate, `(B, 3)`.

`BUILDER_KINDS` are models of `keras_din.models` (DIN and DIEN, two
candidates per row) on the feature specs below, which take a dict of inputs.
"""

import keras
import numpy as np

import keras_din
from keras_din.models import DIEN
from keras_din.models import DIN
from keras_din.models import BehaviorSequence
from keras_din.models import Feature

KINDS = ("lengths", "mask_zero", "explicit_mask")
CANDIDATES = 3
NUM_ITEMS = 40


def din_model(kind, embedding_dim=6):
    if kind == "candidates":
        return candidates_model(embedding_dim)
    candidate = keras.Input((1,), dtype="int32", name="candidate")
    history = keras.Input((None,), dtype="int32", name="history")
    inputs = [candidate, history]
    items = keras.layers.Embedding(
        NUM_ITEMS, embedding_dim, mask_zero=kind == "mask_zero", name="items"
    )
    query, keys = items(candidate), items(history)
    if kind == "lengths":
        length = keras.Input((1,), dtype="int32", name="length")
        inputs.append(length)
        pooled = keras_din.AttentionSequencePoolingLayer(
            (8, 4), att_activation="dice", weight_normalization=True
        )([query, keys, length])
    elif kind == "mask_zero":
        pooled = keras_din.AttentionSequencePoolingLayer((8,), att_activation="prelu")(
            [query, keys]
        )
    elif kind == "explicit_mask":
        mask = keras.Input((None,), dtype="bool", name="mask")
        inputs.append(mask)
        pooled = keras_din.AttentionSequencePoolingLayer(
            (8, 4), weight_normalization=True
        )([query, keys], mask=mask)
    else:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {KINDS}")
    features = keras.layers.Flatten()(keras.layers.Concatenate()([query, pooled]))
    hidden = keras.layers.Dense(8, activation="relu")(features)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model(inputs, output, name=f"din_{kind}")


def candidates_model(embedding_dim):
    candidate = keras.Input((CANDIDATES,), dtype="int32", name="candidate")
    history = keras.Input((None,), dtype="int32", name="history")
    length = keras.Input((1,), dtype="int32", name="length")
    items = keras.layers.Embedding(NUM_ITEMS, embedding_dim, name="items")
    query = items(candidate)
    pooled = keras_din.AttentionSequencePoolingLayer((8, 4), weight_normalization=True)(
        [query, items(history), length]
    )
    features = keras.layers.Concatenate()([query, pooled])  # (B, C, 2E)
    hidden = keras.layers.Dense(8, activation="relu")(features)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    output = keras.layers.Reshape((CANDIDATES,))(output)
    return keras.Model([candidate, history, length], output, name="din_candidates")


def din_inputs(kind, batch, history, seed=0):
    """Model inputs; row 0 is an empty history, the others random lengths.

    Padded positions hold id 0 in every kind, and in `"lengths"` one row has
    a length above `history` (all valid).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, history + 1, size=batch)
    lengths[0] = 0
    valid = np.arange(history)[None, :] < lengths[:, None]
    ids = rng.integers(1, NUM_ITEMS, size=(batch, history))
    histories = np.where(valid, ids, 0).astype("int32")
    width = CANDIDATES if kind == "candidates" else 1
    candidates = rng.integers(1, NUM_ITEMS, size=(batch, width)).astype("int32")
    inputs = [candidates, histories]
    if kind in ("lengths", "candidates"):
        if batch > 1:
            lengths[-1] = history + 3
        inputs.append(lengths[:, None].astype("int32"))
    elif kind == "explicit_mask":
        inputs.append(valid)
    return inputs


def train_briefly(model, kind, seed=0):
    """A few optimiser steps, so weights (and Dice statistics) move."""
    inputs = din_inputs(kind, 64, 5, seed=seed)
    labels = (inputs[0] % 2).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(inputs, labels, batch_size=16, epochs=2, verbose=0)
    return model


# --- Models of keras_din.models -----------------------------------------------

ATT = (5, 3)
DNN = (8, 4)
ITEMS, CATEGORIES, USERS = 30, 7, 10
T_CLICKS, T_BUYS = 6, 4

FEATURES = [
    Feature("user", USERS, 3),
    Feature("item", ITEMS, 4),
    Feature("category", CATEGORIES, 2),
]
CLICKS = BehaviorSequence(
    "clicks",
    {"clicked_items": "item", "clicked_categories": "category"},
    max_length=T_CLICKS,
    length="clicks_length",
    negatives={
        "clicked_items": "negative_items",
        "clicked_categories": "negative_categories",
    },
)
BUYS = BehaviorSequence("buys", {"bought_items": "item"}, max_length=T_BUYS)


def feature_data(rng, rows=8, candidates=1):
    """Input arrays with an empty history, padding inside the lengths and
    lengths beyond the ids."""
    clicked = rng.integers(1, ITEMS, (rows, T_CLICKS))
    lengths = rng.integers(0, T_CLICKS + 2, rows)
    lengths[0] = 0
    clicked[1, 2] = 0  # a hole inside the length
    bought = np.where(
        rng.random((rows, T_BUYS)) < 0.3, 0, rng.integers(1, ITEMS, (rows, T_BUYS))
    )
    bought[2] = 0
    x = {
        "user": rng.integers(0, USERS, rows),
        "item": rng.integers(1, ITEMS, (rows, candidates)),
        "category": rng.integers(1, CATEGORIES, (rows, candidates)),
        "clicked_items": clicked,
        "clicked_categories": np.where(
            clicked > 0, rng.integers(1, CATEGORIES, clicked.shape), 0
        ),
        "clicks_length": lengths,
        "bought_items": bought,
        "negative_items": rng.integers(1, ITEMS, (rows, T_CLICKS)),
        "negative_categories": rng.integers(1, CATEGORIES, (rows, T_CLICKS)),
    }
    return {name: a.astype("int32") for name, a in x.items()}


BUILDER_KINDS = ("builder_din", "builder_dien")


def builder_model(kind, **kwargs):
    """A small DIN or DIEN (Dice, two candidates per row) on `FEATURES`;
    `kwargs` go to the builder."""
    if kind == "builder_din":
        return DIN(FEATURES, [CLICKS, BUYS], 2, ATT, dnn_hidden_units=DNN, **kwargs)
    return DIEN(
        FEATURES,
        [CLICKS, BUYS],
        candidates=2,
        auxiliary_hidden_units=(4,),
        att_hidden_units=ATT,
        dnn_hidden_units=DNN,
        **kwargs,
    )


def train_builder_briefly(model, seed=0):
    rng = np.random.default_rng(seed)
    x = feature_data(rng, rows=64, candidates=2)
    x = {name: x[name] for name in model.input}
    labels = (x["item"] % 2).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(x, labels, batch_size=16, epochs=2, verbose=0)
    return model
