"""keras_din.models.BST: the builder's wiring against a NumPy reference, its
layers and defaults, and export (training, saving and mixed precision are
in test_models.py with the other builders)."""

import functools

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

from keras_din.models import BST
from keras_din.models import BehaviorSequence
from keras_din.models import Feature

# The clicks' embeddings are 4 + 2 wide, the buys' 4: two heads.
bst = functools.partial(
    BST, FEATURES, [CLICKS, BUYS], num_heads=2, dnn_hidden_units=DNN
)


def reference_bst(model, x, candidates, pooling):
    """The click probabilities `(N, C)`, leaky ReLU MLP, in NumPy."""

    def interest(behavior, query, keys, valid):
        weights = model.get_layer(f"{behavior.name}_transformer").get_weights()
        return ref.bst_output(query, keys, valid, weights, 2, pooling)

    return reference_scores(model, x, candidates, (CLICKS, BUYS), interest, 0.2)


@pytest.mark.parametrize("pooling", ["concat", "target"])
@pytest.mark.parametrize("built, candidates", [(1, 1), (3, 3), (None, 2)])
def test_bst_matches_numpy_reference(rng, pooling, built, candidates):
    model = bst(candidates=built, pooling=pooling)
    randomize(model, rng)
    x = feature_data(rng, candidates=candidates)
    predicted = model.predict(inputs_of(model, x), verbose=0)
    assert predicted.shape == (8, candidates)
    expected = reference_bst(model, x, candidates, pooling)
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-5)


def test_layers_are_one_transformer_per_sequence():
    model = bst()
    names = {layer.name for layer in model.layers}
    assert {"embedding", "clicks_transformer", "buys_transformer", "dnn"} <= names
    assert model.get_layer("clicks_transformer").num_heads == 2
    assert model.get_layer("dnn").activation == "leaky_relu"
    # The paper's defaults: eight heads, and a (1024, 512, 256) MLP.
    history = BehaviorSequence(
        "history", {"items": "item", "categories": "category"}, max_length=5
    )
    paper = BST([Feature("item", 30, 8), Feature("category", 7, 8)], [history])
    assert paper.get_layer("history_transformer").num_heads == 8
    assert paper.get_layer("dnn").hidden_units == (1024, 512, 256)


def test_heads_that_do_not_divide_the_embedding_name_key_dim():
    with pytest.raises(ValueError, match="multiple of `num_heads`=8: pass `key_dim`"):
        BST(FEATURES, [CLICKS, BUYS])
    model = BST(FEATURES, [CLICKS, BUYS], key_dim=2, dnn_hidden_units=DNN)
    assert model.get_layer("clicks_transformer").key_dim == 2


def test_plain_model_export_serves_the_predictions(rng, tmp_path):
    # Any number of candidates: one exported model serves requests of 2 and
    # of 5 (and the batch sizes differ too).
    model = bst(candidates=None)
    randomize(model, rng)
    cases = [feature_data(rng, rows=5, candidates=2), feature_data(rng, 3, 5)]
    cases = [inputs_of(model, x) for x in cases]
    export_and_serve(model, cases, tmp_path)
