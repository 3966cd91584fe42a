"""`FeatureEmbedding`: every input of a model on feature specs, embedded in
one call, against a NumPy reference."""

import keras
import numpy as np
import pytest
from din_models import BUYS
from din_models import CATEGORIES
from din_models import CLICKS
from din_models import FEATURES
from din_models import ITEMS
from din_models import T_BUYS
from din_models import T_CLICKS
from din_models import USERS

from keras_din.models import Feature
from keras_din.models import FeatureEmbedding

B = 6


def layer(**kwargs):
    return FeatureEmbedding(FEATURES, [CLICKS, BUYS], **kwargs)


def inputs(rng, candidates=2):
    x = {
        "user": rng.integers(0, USERS, B),
        "item": rng.integers(1, ITEMS, (B, candidates)),
        "category": rng.integers(1, CATEGORIES, (B, candidates)),
        "clicked_items": rng.integers(0, ITEMS, (B, T_CLICKS)),
        "clicked_categories": rng.integers(0, CATEGORIES, (B, T_CLICKS)),
        "negative_items": rng.integers(1, ITEMS, (B, T_CLICKS)),
        "negative_categories": rng.integers(1, CATEGORIES, (B, T_CLICKS)),
        "clicks_length": rng.integers(0, T_CLICKS + 3, B),  # some above T
        "bought_items": rng.integers(0, ITEMS, (B, T_BUYS)),
    }
    x["clicked_items"][0] = 0  # an empty history
    x["bought_items"][1] = 0
    return {name: value.astype("int32") for name, value in x.items()}


def reference(x, tables, negatives):
    """The embeddings and masks, from the tables' NumPy arrays."""
    valid = {
        "clicks": (x["clicked_items"] != 0)
        & (x["clicked_categories"] != 0)
        & (np.arange(T_CLICKS) < x["clicks_length"][:, None]),
        "buys": x["bought_items"] != 0,
    }

    def rows(table, name, sequence=None):
        ids = x[name] if sequence is None else np.where(valid[sequence], x[name], 0)
        return tables[table][ids]

    features = {f.name: rows(f.name, f.name) for f in FEATURES}
    clicks = {
        "query": np.concatenate([features["item"], features["category"]], -1),
        "keys": np.concatenate(
            [
                rows("item", "clicked_items", "clicks"),
                rows("category", "clicked_categories", "clicks"),
            ],
            -1,
        ),
        "mask": valid["clicks"],
    }
    if negatives:
        clicks["negative_keys"] = np.concatenate(
            [
                rows("item", "negative_items", "clicks"),
                rows("category", "negative_categories", "clicks"),
            ],
            -1,
        )
    buys = {
        "query": features["item"],
        "keys": rows("item", "bought_items", "buys"),
        "mask": valid["buys"],
    }
    return {"features": features, "behaviors": {"clicks": clicks, "buys": buys}}, valid


def table_arrays(embedding):
    return {
        name: keras.ops.convert_to_numpy(table.embeddings)
        for name, table in embedding.tables.items()
    }


@pytest.mark.parametrize("negatives", [False, True])
def test_embeddings_and_masks_match_numpy_reference(rng, negatives):
    embedding = layer(negatives=negatives)
    x = inputs(rng)
    actual = keras.tree.map_structure(keras.ops.convert_to_numpy, embedding(x))
    expected, _ = reference(x, table_arrays(embedding), negatives)
    assert keras.tree.map_structure(np.shape, actual) == keras.tree.map_structure(
        np.shape, expected
    )
    keras.tree.map_structure(
        lambda a, e: np.testing.assert_allclose(a, e, rtol=0, atol=0), actual, expected
    )


def test_penalty_counts_each_id_once_per_table_and_batch(rng):
    counts = {"item": rng.integers(0, 5, ITEMS), "user": rng.integers(0, 5, USERS)}
    l2 = 0.01
    embedding = layer(embedding_l2=l2, frequencies=counts, negatives=True)
    x = inputs(rng)
    embedding(x, training=True)
    tables = table_arrays(embedding)
    _, valid = reference(x, tables, True)

    def penalty(table, names, padded):
        ids = []
        for name in names:
            sequence = {"clicked": "clicks", "negative": "clicks", "bought": "buys"}
            sequence = sequence.get(name.split("_")[0])
            value = (
                x[name] if sequence is None else np.where(valid[sequence], x[name], 0)
            )
            ids.append(value.ravel())
        ids = np.unique(np.concatenate(ids))
        if padded:
            ids = ids[ids != 0]
        n = np.maximum(counts.get(table, np.ones(len(tables[table]))), 1)[ids]
        return l2 * np.sum(np.sum(tables[table][ids] ** 2, -1) / n)

    expected = [
        penalty("user", ["user"], padded=False),
        penalty(
            "item",
            ["item", "clicked_items", "bought_items", "negative_items"],
            padded=True,
        ),
        penalty(
            "category",
            ["category", "clicked_categories", "negative_categories"],
            padded=True,
        ),
    ]
    actual = [float(keras.ops.convert_to_numpy(loss)) for loss in embedding.losses]
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    embedding(x)  # inference: no penalty
    assert not embedding.losses


@pytest.mark.parametrize("candidates", [1, 3, None])
@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_symbolic_and_eager_calls_agree(rng, candidates, policy):
    embedding = layer(negatives=True, dtype=policy)
    shapes = embedding.input_shapes(candidates)
    symbolic = embedding(
        {
            name: keras.Input(shape, dtype="int32", name=name)
            for name, shape in shapes.items()
        }
    )
    eager = embedding(inputs(rng, candidates=candidates or 4))
    flat_symbolic = keras.tree.flatten(symbolic)
    flat_eager = keras.tree.flatten(eager)
    assert len(flat_symbolic) == len(flat_eager) == 3 + 4 + 3
    for s, e in zip(flat_symbolic, flat_eager, strict=True):
        assert s.shape[1:] == tuple(e.shape)[1:] or (
            candidates is None and s.shape[2:] == tuple(e.shape)[2:]
        )
        assert keras.backend.standardize_dtype(s.dtype) == (
            keras.backend.standardize_dtype(e.dtype)
        )
    dtype = keras.backend.standardize_dtype(eager["features"]["item"].dtype)
    assert dtype == keras.DTypePolicy(policy).compute_dtype
    assert (
        keras.backend.standardize_dtype(eager["behaviors"]["buys"]["mask"].dtype)
        == "bool"
    )


def test_input_shapes_name_every_input_once():
    assert layer(negatives=True).input_shapes(candidates=2) == {
        "user": (),
        "item": (2,),
        "category": (2,),
        "clicked_items": (T_CLICKS,),
        "clicked_categories": (T_CLICKS,),
        "negative_items": (T_CLICKS,),
        "negative_categories": (T_CLICKS,),
        "clicks_length": (),
        "bought_items": (T_BUYS,),
    }
    assert "negative_items" not in layer().input_shapes()


def test_config_and_keras_file_round_trip(rng, tmp_path):
    counts = {"item": rng.integers(0, 5, ITEMS)}
    embedding = layer(embedding_l2=0.5, frequencies=counts, negatives=True, name="e")
    config = embedding.get_config()
    again = FeatureEmbedding.from_config(config)
    assert again.get_config() == config
    assert again.features == embedding.features
    assert again.behaviors == embedding.behaviors
    model_inputs = {
        name: keras.Input(shape, dtype="int32", name=name)
        for name, shape in embedding.input_shapes(2).items()
    }
    outputs = embedding(model_inputs)
    model = keras.Model(model_inputs, outputs["behaviors"]["clicks"]["keys"])
    path = tmp_path / "embedding.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = inputs(rng)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )
    frequencies = loaded.get_layer("e").tables["item"].frequencies
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(frequencies), counts["item"]
    )


def test_missing_input_names_the_inputs(rng):
    x = inputs(rng)
    del x["clicks_length"]
    with pytest.raises(ValueError, match=r"Missing: \['clicks_length'\]"):
        layer()(x)


@pytest.mark.parametrize("symbolic", [False, True])
def test_history_of_another_length_names_the_input(rng, symbolic):
    x = inputs(rng)
    x["clicked_items"] = rng.integers(0, ITEMS, (B, T_CLICKS + 2)).astype("int32")
    if symbolic:  # a known other length is refused when building too
        x = {n: keras.Input(v.shape[1:], dtype="int32") for n, v in x.items()}
    with pytest.raises(
        ValueError,
        match=r"Input 'clicked_items' of behavior sequence 'clicks' must have "
        rf"shape \(batch, max_length\) = \(batch, {T_CLICKS}\)\. Received: shape",
    ):
        layer()(x)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"frequencies": {"items": np.ones(ITEMS)}},
            ValueError,
            "keyed by feature name",
        ),
        ({"embedding_l2": -1.0}, ValueError, "embedding_l2"),
        (
            {"features": [Feature("item", 30)], "behaviors": [BUYS, BUYS]},
            ValueError,
            "distinct names",
        ),
        (
            {"features": [Feature("item", 30)], "behaviors": [CLICKS]},
            ValueError,
            "'category', which is not in `features`",
        ),
        ({"features": "item", "behaviors": [BUYS]}, TypeError, "`features` must"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    arguments = {"features": FEATURES, "behaviors": [CLICKS, BUYS], **kwargs}
    with pytest.raises(error, match=message):
        FeatureEmbedding(**arguments)
