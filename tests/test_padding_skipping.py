"""The padding-skipping strategy: its knobs, and that it changes nothing.

The spec tests (`test_attention_sequence_pooling_layer.py`) run the layer as
users get it; here the block size is forced (`force_block_size`) and the
skipping turned off, so that every way of gathering meets the same reference.
"""

import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import random_like_weights
from layer_checks import to_numpy
from test_attention_sequence_pooling_layer import HIDDEN
from test_attention_sequence_pooling_layer import MODES
from test_attention_sequence_pooling_layer import dense_weights
from test_attention_sequence_pooling_layer import make_inputs

from keras_din import AttentionSequencePoolingLayer
from keras_din.layers._padding import block_size

SKIPS = keras.backend.backend() != "jax"


@pytest.mark.parametrize("history", [None, 1, 7, 10, 20, 50, 64, 100, 1000, 1024])
def test_block_size_divides_history_and_bounds_the_padding(history):
    size = block_size(history)
    if history is None:
        assert size == 1
        return
    assert history % size == 0
    # A history's last block holds (size - 1) / 2 padding positions on
    # average: at most about 5% of T.
    assert size == 1 or 10 * (size - 1) <= history
    if history >= 20 and history % 2 == 0:  # long enough to gather blocks
        assert size > 1


@pytest.mark.parametrize("block", [None, 2, 8])
@pytest.mark.parametrize("activation", ["sigmoid", "dice"])
@pytest.mark.parametrize("weight_normalization, return_score", MODES)
@pytest.mark.parametrize("candidates", [1, 3])
def test_skipping_gives_the_results_of_every_position(
    rng,
    force_block_size,
    block,
    activation,
    weight_normalization,
    return_score,
    candidates,
):
    # 8: the whole history is one block; 2: the padding inside a block is
    # computed and must stay out of the weights and the Dice statistics.
    force_block_size(block)
    query, keys = make_inputs(rng, candidates=candidates, history=8)
    lengths = np.array([0, 3, 8, 12, 1])
    mask = rng.random((5, 8)) < 0.8
    layers = [
        AttentionSequencePoolingLayer(
            att_hidden_units=HIDDEN,
            att_activation=activation,
            weight_normalization=weight_normalization,
            return_score=return_score,
            skip_padding=skip,
        )
        for skip in (True, False)
    ]
    for layer in layers:
        layer.build([query.shape, keys.shape, lengths.shape])
    assert layers[1].skip_block_size is None
    assert layers[0].skip_block_size == ((block or 1) if SKIPS else None)
    layers[1].set_weights(layers[0].get_weights())
    for training in (False, True):
        skipped, dense = (
            to_numpy(layer([query, keys, lengths], mask=mask, training=training))
            for layer in layers
        )
        np.testing.assert_allclose(skipped, dense, rtol=1e-5, atol=1e-5)
    for layer in layers:  # Dice's moving moments stay finite
        for weight in layer.weights:
            assert np.all(np.isfinite(to_numpy(weight))), weight.path


@pytest.mark.parametrize("block", [None, 7])
def test_all_empty_batch_gives_zeros_with_blocks(rng, force_block_size, block):
    force_block_size(block)
    query, keys = make_inputs(rng)
    layer = AttentionSequencePoolingLayer(att_hidden_units=HIDDEN)
    out = to_numpy(layer([query, keys, np.zeros((5, 1), "int32")]))
    assert out.shape == (5, 1, 6) and np.all(out == 0)


@pytest.mark.parametrize("block", [None, 2, 7])
@pytest.mark.parametrize("candidates", [1, 3])
@pytest.mark.parametrize("return_score", [False, True])
def test_batch_of_no_row_gives_empty_outputs_with_blocks(
    force_block_size, block, candidates, return_score
):
    force_block_size(block)
    query = np.zeros((0, candidates, 6), "float32")
    keys = np.zeros((0, 14, 6), "float32")
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN, return_score=return_score
    )
    out = layer([query, keys, np.zeros((0, 1), "int32")])
    assert tuple(out.shape) == (0, candidates, 14 if return_score else 6)


def reference_gradients(query, keys, valid, arrays, projection, weight_normalization):
    """Central differences of `sum(projection * pooled)` in float64 NumPy."""
    values = [np.asarray(x, np.float64) for x in (query, keys, *arrays)]

    def loss():
        q, k, *w = values
        scores = ref.unit_scores(q, k, *dense_weights(w), lambda i, x: ref.sigmoid(x))
        pooled = ref.pool(scores, k, valid, weight_normalization, False)
        return np.sum(projection * pooled)

    gradients = []
    for value in values:
        gradient = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + 1e-6
            above = loss()
            value[index] = original - 1e-6
            below = loss()
            value[index] = original
            gradient[index] = (above - below) / 2e-6
        gradients.append(gradient)
    return gradients


@pytest.mark.parametrize("weight_normalization", [False, True])
@pytest.mark.parametrize("candidates", [1, 2])
@pytest.mark.parametrize(
    "skip_padding, block, jit_compile",
    [
        (False, None, "auto"),
        (True, None, "auto"),
        (True, 2, "auto"),
        (True, 4, "auto"),
    ]
    # XLA, which "auto" leaves off on a CPU, on TensorFlow alone: JAX always
    # compiles, and jit_compile=True is torch.compile on torch, minutes on a
    # CPU.
    + ([(True, 2, True)] if keras.backend.backend() == "tensorflow" else []),
)
def test_training_step_matches_reference_gradients(
    rng,
    force_block_size,
    weight_normalization,
    candidates,
    skip_padding,
    block,
    jit_compile,
):
    # One SGD step with learning rate 1 moves every weight by minus its
    # gradient. Query and keys come from embedding tables, so their steps
    # are the gradients with respect to them. Row 1 is an empty history;
    # row 0 fills half of its history, one block of 2 or half a block of 4.
    force_block_size(block)
    batch, history, dim = 3, 4, 3
    query, keys = make_inputs(rng, batch, candidates, history, dim)
    lengths = np.array([[2], [0], [4]], "int32")
    valid = ref.valid_from_lengths(lengths, history)
    projection = rng.normal(size=(batch, candidates, dim))

    item_ids = keras.Input((candidates,), dtype="int32")
    history_ids = keras.Input((history,), dtype="int32")
    length = keras.Input((1,), dtype="int32")
    items = keras.layers.Embedding(batch * candidates, dim)
    histories = keras.layers.Embedding(batch * history, dim)
    layer = AttentionSequencePoolingLayer(
        att_hidden_units=HIDDEN,
        weight_normalization=weight_normalization,
        skip_padding=skip_padding,
    )
    pooled = layer([items(item_ids), histories(history_ids), length])
    model = keras.Model([item_ids, history_ids, length], pooled)
    items.set_weights([query.reshape(-1, dim)])
    histories.set_weights([keys.reshape(-1, dim)])
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=lambda target, output: keras.ops.sum(target * output),
        jit_compile=jit_compile,
    )
    ids = [
        np.arange(batch * candidates).reshape(batch, candidates),
        np.arange(batch * history).reshape(batch, history),
        lengths,
    ]
    model.train_on_batch(ids, projection.astype("float32"))

    expected = reference_gradients(
        query, keys, valid, arrays, projection, weight_normalization
    )
    before = [query.reshape(-1, dim), keys.reshape(-1, dim), *arrays]
    after = [
        to_numpy(w) for w in (items.embeddings, histories.embeddings, *layer.weights)
    ]
    for old, new, gradient in zip(before, after, expected, strict=True):
        np.testing.assert_allclose(old - new, gradient.reshape(old.shape), atol=2e-5)
