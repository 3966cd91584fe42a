"""keras_din.models.SIM and ETA: the builders' wiring against a NumPy
reference (SIM's main and auxiliary click models), the auxiliary loss, long
histories and export (saving and mixed precision are in test_models.py with
the other builders)."""

import functools

import keras
import numpy as np
import pytest
import reference as ref
from din_models import BUYS
from din_models import CLICKS
from din_models import DNN
from din_models import FEATURES
from din_models import feature_data
from test_models import export_and_serve
from test_models import inputs_of
from test_models import randomize
from test_models import reference_scores

from keras_din.models import ETA
from keras_din.models import SIM
from keras_din.models import BehaviorSequence
from keras_din.models import Feature

# The clicks' embeddings are 4 + 2 wide, the buys' 4: two heads (the default).
soft = functools.partial(
    SIM, FEATURES, [CLICKS, BUYS], top_k=3, dnn_hidden_units=DNN, dnn_activation="relu"
)
eta = functools.partial(
    ETA,
    FEATURES,
    [CLICKS, BUYS],
    top_k=3,
    hash_bits=8,
    dnn_hidden_units=DNN,
    dnn_activation="relu",
)
hard = functools.partial(
    SIM,
    FEATURES,
    [CLICKS],
    search="hard",
    search_feature="category",
    top_k=2,
    dnn_hidden_units=DNN,
    dnn_activation="relu",
)


def reference_sim(model, x, candidates, behaviors, search, prefix=""):
    """The click probabilities `(N, C)` of the main (or, with `prefix=
    "auxiliary_"`, the auxiliary) click model, ReLU MLP, in NumPy."""

    def interest(behavior, query, keys, valid):
        layer = model.get_layer(f"{behavior.name}_search")
        ids = [x["category"], x["clicked_categories"]] if search == "hard" else []
        interest, u = ref.search_based_interest(
            query, keys, valid, layer.get_weights(), 2, layer.top_k, *ids
        )
        return u if prefix else interest

    return reference_scores(model, x, candidates, behaviors, interest, prefix=prefix)


BUILDERS = {"soft": soft, "hard": hard, "simhash": eta}


@pytest.mark.parametrize("search", list(BUILDERS))
@pytest.mark.parametrize("built, candidates", [(1, 1), (3, 3), (None, 2)])
def test_matches_numpy_reference(rng, search, built, candidates):
    model = BUILDERS[search](candidates=built)
    randomize(model, rng)
    x = feature_data(rng, candidates=candidates)
    predicted = model.predict(inputs_of(model, x), verbose=0)
    assert predicted.shape == (8, candidates)
    behaviors = [CLICKS] if search == "hard" else [CLICKS, BUYS]
    expected = reference_sim(model, x, candidates, behaviors, search)
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-5)
    if search == "soft":
        # In training, the auxiliary click model's scores come second.
        main, auxiliary = model(inputs_of(model, x), training=True)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(main), predicted, rtol=1e-5, atol=1e-6
        )
        expected = reference_sim(model, x, candidates, behaviors, search, "auxiliary_")
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(auxiliary), expected, rtol=1e-4, atol=1e-5
        )


def bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_soft_search_trains_through_the_auxiliary_loss(rng):
    model = soft(candidates=2, auxiliary_loss_weight=0.5)
    assert len(model.outputs) == 2
    randomize(model, rng)
    x = inputs_of(model, feature_data(rng, rows=16, candidates=2))
    y = rng.integers(0, 2, (16, 2)).astype("float32")
    main, auxiliary = (keras.ops.convert_to_numpy(p) for p in model(x, training=True))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    assert np.isclose(model.evaluate(x, y, verbose=0), bce(y, main), rtol=1e-4)
    search = model.get_layer("clicks_search")
    before = [w.copy() for w in search.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isclose(loss, bce(y, main) + 0.5 * bce(y, auxiliary), rtol=1e-4)
    moved = {
        w.name
        for w, b in zip(search.weights, before, strict=True)
        if not np.allclose(b, keras.ops.convert_to_numpy(w))
    }
    assert {"search_query_kernel", "search_key_kernel"} <= moved
    # Without the auxiliary loss: one output, and no auxiliary layers.
    plain = soft(auxiliary_loss_weight=0.0)
    assert len(plain.outputs) == 1
    assert not [layer for layer in plain.layers if layer.name.startswith("auxiliary")]


def test_hard_search_needs_a_feature_of_every_sequence():
    with pytest.raises(
        ValueError, match="Behavior sequence 'buys' refers to \\['item'\\]"
    ):
        SIM(FEATURES, [CLICKS, BUYS], search="hard", search_feature="category")
    with pytest.raises(ValueError, match="Received: search_feature=None"):
        SIM(FEATURES, [CLICKS], search="hard")
    with pytest.raises(
        ValueError, match="`search_feature` is for `search='hard'` only"
    ):
        SIM(FEATURES, [CLICKS], search_feature="category")
    with pytest.raises(ValueError, match="`auxiliary_loss_weight` must be"):
        SIM(FEATURES, [CLICKS], auxiliary_loss_weight=-1)
    with pytest.raises(ValueError, match="SimHash search is the builder `ETA`"):
        SIM(FEATURES, [CLICKS], search="simhash")
    model = hard()
    assert model.get_layer("clicks_search").search == "hard"
    assert len(model.outputs) == 1


@pytest.mark.parametrize("search", list(BUILDERS))
def test_thousand_behaviours_score_as_a_shorter_padding(rng, search):
    # Top-k over 1,000 behaviours: after a training step there, the same
    # weights in a model of max_length 700 give the same scores to every
    # history of up to 700 behaviours.
    def model(max_length):
        history = BehaviorSequence(
            "history", {"items": "item", "categories": "category"}, max_length
        )
        features = [Feature("item", 50, 4), Feature("category", 5, 4)]
        if search == "simhash":
            return ETA(features, [history], top_k=30, dnn_hidden_units=(4,))
        return SIM(
            features,
            [history],
            search=search,
            search_feature="category" if search == "hard" else None,
            top_k=30,
            dnn_hidden_units=(4,),
        )

    lengths = np.array([1000, 700, 317, 1, 0])
    items = rng.integers(1, 50, size=(5, 1000))
    x = {
        "item": rng.integers(1, 50, size=5),
        "category": rng.integers(1, 5, size=5),
        "items": np.where(np.arange(1000) < lengths[:, None], items, 0),
        "categories": np.where(items > 0, items % 4 + 1, 0),
    }
    x["categories"] = np.where(x["items"] > 0, x["categories"], 0)
    long = model(1000)
    long.compile(optimizer="adam", loss="binary_crossentropy")
    assert np.isfinite(long.train_on_batch(x, np.array([1, 0, 1, 0, 1], "float32")))
    short = model(700)
    short.set_weights(long.get_weights())
    scores = long.predict(x, verbose=0)
    cut = {name: v[1:, :700] if v.ndim == 2 else v[1:] for name, v in x.items()}
    np.testing.assert_allclose(
        short.predict(cut, verbose=0), scores[1:], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("search", list(BUILDERS))
def test_plain_model_export_serves_the_predictions(rng, tmp_path, search):
    # Any number of candidates: one exported model serves requests of 2 and
    # of 5; the soft search's export serves the main click model alone.
    model = BUILDERS[search](candidates=None)
    randomize(model, rng)
    cases = [feature_data(rng, rows=5, candidates=2), feature_data(rng, 3, 5)]
    export_and_serve(model, [inputs_of(model, x) for x in cases], tmp_path)


def test_eta_searches_by_simhash_without_auxiliary_model():
    model = eta()
    layer = model.get_layer("clicks_search")
    assert (layer.search, layer.hash_bits, layer.top_k) == ("simhash", 8, 3)
    assert len(model.outputs) == 1
    assert not [w for w in layer.trainable_weights if w.name == "hash_projection"]
