import keras
import numpy as np
import pytest
import reference as ref
from keras import ops
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import serve_saved_models
from layer_checks import to_numpy

from keras_din import InterestEvolution
from keras_din import InterestExtractor

HIDDEN = (5,)
TYPES = ["AUGRU", "AGRU", "AIGRU", "GRU"]


def make_inputs(rng, batch=4, candidates=1, history=6, dim=3):
    query = rng.normal(size=(batch, candidates, dim)).astype("float32")
    interests = rng.normal(size=(batch, history, dim)).astype("float32")
    return query, interests


def expected_output(query, interests, valid, arrays, gru_type, normalize=True):
    """The reference: the unit's attention, then the GRU of `gru_type`."""
    gru, unit = arrays[:4], arrays[4:]
    kernels, biases = unit[0:2:2], unit[1:2:2]

    def attention(keys):
        scores = ref.unit_scores(
            query, keys, kernels, biases, unit[2], unit[3], lambda i, x: ref.sigmoid(x)
        )
        if not normalize:
            return np.where(valid[..., None], scores, 0.0)
        return np.stack(
            [
                ref.softmax_over_valid(scores[..., c], valid)
                for c in range(query.shape[1])
            ],
            -1,
        )

    if gru_type == "GRU":
        states, _ = ref.gru_states(interests, valid, *gru)
        weights = attention(states)  # (B, T, C)
        return np.einsum("btc,bth->bch", weights, states)
    weights = attention(interests)
    finals = [
        ref.gru_states(interests, valid, *gru, gru_type, weights[..., c])[1]
        for c in range(query.shape[1])
    ]
    return np.stack(finals, 1)


@pytest.mark.parametrize("gru_type", TYPES)
@pytest.mark.parametrize("candidates", [1, 2])
def test_matches_reference(rng, gru_type, candidates):
    query, interests = make_inputs(rng, candidates=candidates)
    lengths = np.array([0, 1, 4, 9])
    mask = rng.random(interests.shape[:2]) < 0.8
    valid = ref.valid_from_lengths(lengths, 6) & mask
    layer = InterestEvolution(gru_type=gru_type, att_hidden_units=HIDDEN)
    layer.build([query.shape, interests.shape])
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    expected = expected_output(query, interests, valid, arrays, gru_type)
    actual = to_numpy(layer([query, interests, lengths], mask=mask))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert np.all(actual[0] == 0)  # the empty history
    if candidates == 1:  # a (B, E) query gives (B, H)
        flat = to_numpy(layer([query[:, 0], interests, lengths], mask=mask))
        np.testing.assert_allclose(flat, actual[:, 0], rtol=1e-6, atol=1e-7)


def test_raw_scores_without_weight_normalization(rng):
    query, interests = make_inputs(rng)
    valid = ref.valid_from_lengths([2, 6, 0, 3], 6)
    layer = InterestEvolution(att_hidden_units=HIDDEN, weight_normalization=False)
    layer.build([query.shape, interests.shape])
    arrays = random_like_weights(layer, rng)
    layer.set_weights(arrays)
    expected = expected_output(query, interests, valid, arrays, "AUGRU", False)
    actual = to_numpy(layer([query, interests, np.array([2, 6, 0, 3])]))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gru_type", TYPES)
@pytest.mark.parametrize("candidates", [1, 2])
def test_history_axis_of_length_zero_gives_zeros(rng, gru_type, candidates):
    query, interests = make_inputs(rng, candidates=candidates, history=0)
    negatives = np.zeros_like(interests)
    lengths = np.array([0, 1, 2, 9])
    extractor = InterestExtractor(
        auxiliary_loss_weight=1.0, auxiliary_hidden_units=(4,)
    )
    states = extractor([interests, lengths], negative_keys=negatives, training=True)
    assert tuple(states.shape) == (4, 0, 3)
    assert to_numpy(extractor.losses[0]) == 0.0
    layer = InterestEvolution(gru_type=gru_type, att_hidden_units=HIDDEN)
    output = layer([query, states, lengths])
    np.testing.assert_array_equal(to_numpy(output), np.zeros((4, candidates, 3)))
    output = layer([query[:, 0], states])
    np.testing.assert_array_equal(to_numpy(output), np.zeros((4, 3)))
    # And a training step of a model whose history length is free.
    item = keras.Input((candidates, 3))
    history = keras.Input((None, 3))
    negative = keras.Input((None, 3))
    extractor = InterestExtractor(
        auxiliary_loss_weight=1.0, auxiliary_hidden_units=(4,)
    )
    evolved = InterestEvolution(gru_type=gru_type, att_hidden_units=HIDDEN)(
        [item, extractor(history, negative_keys=negative)]
    )
    out = keras.layers.Dense(1, activation="sigmoid")(evolved)
    model = keras.Model([item, history, negative], out)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    loss = model.train_on_batch(
        [query, interests, negatives], np.ones((4, candidates, 1), "float32")
    )
    assert np.isfinite(loss)


def dien_model(rng, gru_type="AUGRU", history_length=6):
    """A compiled DIEN model (output in float32) and a batch of its inputs."""
    item = keras.Input((3,))
    history = keras.Input((history_length, 3))
    negative = keras.Input((history_length, 3))
    length = keras.Input((), dtype="int32")
    interests = InterestExtractor(
        auxiliary_loss_weight=1.0, auxiliary_hidden_units=(4,)
    )([history, length], negative_keys=negative)
    evolved = InterestEvolution(gru_type=gru_type, att_hidden_units=HIDDEN)(
        [item, interests, length]
    )
    out = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(evolved)
    model = keras.Model([item, history, negative, length], out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    data = [
        rng.normal(size=(4, 3)).astype("float32"),
        rng.normal(size=(4, history_length, 3)).astype("float32"),
        rng.normal(size=(4, history_length, 3)).astype("float32"),
        np.array([0, 1, history_length - 2, history_length]),
    ]
    return model, evolved, data


def traced_training_step_size(history_length):
    """The number of operations in the traced graph of a DIEN model's
    gradient (top level: a loop's body counts once)."""
    model, _, data = dien_model(np.random.default_rng(0), history_length=history_length)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def gradient(data):
            with tf.GradientTape() as tape:
                loss = ops.sum(model(data, training=True)) + sum(model.losses)
            return tape.gradient(loss, model.trainable_weights)

        return len(gradient.get_concrete_function(data).graph.get_operations())
    import jax

    def loss(trainable, non_trainable):
        output, _, losses = model.stateless_call(
            trainable, non_trainable, data, training=True, return_losses=True
        )
        return ops.sum(output) + sum(losses)

    values = [
        [v.value for v in w]
        for w in (model.trainable_weights, model.non_trainable_weights)
    ]
    return len(jax.make_jaxpr(jax.grad(loss))(*values).eqns)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="jit_compile=True is torch.compile on torch (minutes on the CPU), "
    "not XLA; the XLA backends are TensorFlow and JAX",
)
@pytest.mark.parametrize("gru_type", ["AUGRU", "GRU"])  # final state; all states
def test_dien_trains_under_xla_as_without_it(rng, gru_type):
    # TensorFlow's XLA differentiates a while loop only where its number of
    # iterations is bounded; Keras turns XLA on by default on a GPU.
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(7)
        model, _, data = dien_model(np.random.default_rng(3), gru_type)
        model.compile(
            optimizer="sgd", loss="binary_crossentropy", jit_compile=jit_compile
        )
        losses = [
            model.train_on_batch(data, np.array([1, 0, 1, 0], "float32"))
            for _ in range(2)
        ]
        results.append((losses, [to_numpy(w) for w in model.weights]))
    (losses, weights), (xla_losses, xla_weights) = results
    np.testing.assert_allclose(xla_losses, losses, rtol=1e-5)
    for xla, plain in zip(xla_weights, weights, strict=True):
        np.testing.assert_allclose(xla, plain, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="torch runs eagerly, a Python loop over the time steps: no graph",
)
def test_traced_training_step_does_not_grow_with_history_length():
    # A graph unrolled over T took 197 s to trace at T=1000 on TensorFlow.
    assert traced_training_step_size(4) == traced_training_step_size(40)


@pytest.mark.parametrize("gru_type", TYPES)
def test_dien_model_trains_and_saves(rng, tmp_path, gru_type):
    model, _, data = dien_model(rng, gru_type)
    model.fit(data, np.array([1, 0, 1, 0], "float32"), epochs=2, verbose=0)
    assert all(np.all(np.isfinite(to_numpy(w))) for w in model.weights)
    assert_save_load(model, data, tmp_path)


def test_config_round_trip():
    layer = InterestEvolution(gru_type="AGRU", units=4, att_hidden_units=(3, 2), seed=1)
    assert_config_round_trip(layer)
    config = layer.get_config()
    assert config["gru_type"] == "AGRU" and config["att_hidden_units"] == [3, 2]


def test_bad_arguments_and_inputs(rng):
    with pytest.raises(ValueError, match="gru_type"):
        InterestEvolution(gru_type="LSTM")
    with pytest.raises(ValueError, match="units"):
        InterestEvolution(units=0)
    query, interests = make_inputs(rng)
    with pytest.raises(ValueError, match="units"):
        InterestEvolution(gru_type="GRU", units=5)([query, interests])
    with pytest.raises(ValueError, match="expects `inputs`"):
        InterestEvolution()(interests)
    with pytest.raises(ValueError, match="same last dimension"):
        InterestEvolution()([query[..., :2], interests])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_is_finite(rng, policy):
    keras.config.set_dtype_policy(policy)
    try:
        model, evolved, data = dien_model(rng)
        assert evolved.dtype == policy.split("_")[1]
        fitted = model.fit(data, np.array([1, 0, 1, 0]), epochs=2, verbose=0)
        assert np.all(np.isfinite(fitted.history["loss"]))
        assert np.all(np.isfinite(model.predict(data, verbose=0)))
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.skipif(
    keras.backend.backend() not in ("tensorflow", "jax"),
    reason="Keras exports no SavedModel from torch (its ONNX and .pt2 "
    "export are tested below)",
)
def test_dien_saved_model_serves_new_shapes_without_keras(rng, tmp_path):
    item = keras.Input((3,))
    history = keras.Input((None, 3))
    length = keras.Input((), dtype="int32")
    interests = InterestExtractor()([history, length])
    evolved = InterestEvolution(att_hidden_units=HIDDEN)([item, interests, length])
    model = keras.Model(
        [item, history, length], keras.layers.Dense(1, activation="sigmoid")(evolved)
    )

    def case(batch, steps):
        return [
            rng.normal(size=(batch, 3)).astype("float32"),
            rng.normal(size=(batch, steps, 3)).astype("float32"),
            rng.integers(0, steps + 1, size=batch).astype("int32"),
        ]

    cases = {"traced": case(2, 4), "wider": case(9, 13), "one": case(1, 1)}
    cases["wider"][2][:3] = [0, 1, 13]  # empty, length 1, full
    model.predict(cases["traced"], verbose=0)
    model.export(tmp_path / "dien", verbose=False)
    for name, inputs in cases.items():
        arrays = {f"input_{i}": x for i, x in enumerate(inputs)}
        np.savez(tmp_path / f"dien.{name}.npz", **arrays)
    serve_saved_models(tmp_path)
    for name, inputs in cases.items():
        served = np.load(tmp_path / f"dien.{name}.out.npy")
        expected = model.predict(inputs, verbose=0)
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


needs_torch = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="ONNX and .pt2 are the torch backend's export formats (TensorFlow "
    "and JAX export a SavedModel, tested above)",
)


def exported_dien(model, path, export_format):
    """The exported model as a function of the four inputs' arrays."""
    if export_format == "onnx":
        import onnxruntime

        model.export(path, format="onnx", verbose=False)
        session = onnxruntime.InferenceSession(str(path))
        names = [x.name for x in session.get_inputs()]
        # The negatives feed the training-only auxiliary loss: ONNX drops them.
        assert len(names) == 3, names
        return lambda inputs: session.run(
            None, dict(zip(names, inputs[:2] + inputs[3:], strict=True))
        )[0]
    import torch

    batch = torch.export.Dim("batch")
    model.export(
        path,
        format="torch",
        dynamic_shapes=[([{0: batch}] * 4,)],
        verbose=False,
    )
    module = torch.export.load(str(path)).module()

    def serve(inputs):
        with torch.no_grad():
            return to_numpy(module([torch.as_tensor(x) for x in inputs]))

    return serve


@needs_torch
@pytest.mark.parametrize("gru_type", ["AUGRU", "GRU"])
@pytest.mark.parametrize("export_format, suffix", [("onnx", "onnx"), ("torch", "pt2")])
def test_dien_torch_export_serves_new_batch_sizes(
    rng, tmp_path, gru_type, export_format, suffix
):
    model, _, data = dien_model(rng, gru_type)  # history length 6, declared
    model.fit(data, np.ones((4, 1)), epochs=1, verbose=0)
    serve = exported_dien(model, tmp_path / f"dien.{suffix}", export_format)
    for batch in (1, 4, 9):
        inputs = [
            rng.normal(size=(batch, 3)).astype("float32"),
            rng.normal(size=(batch, 6, 3)).astype("float32"),
            rng.normal(size=(batch, 6, 3)).astype("float32"),
            rng.integers(0, 7, size=batch).astype("int32"),
        ]
        inputs[3][:3] = [0, 1, 6][:batch]  # empty, length 1, full
        expected = model.predict(inputs, verbose=0)
        np.testing.assert_allclose(serve(inputs), expected, rtol=1e-5, atol=1e-6)


@needs_torch
@pytest.mark.parametrize("export_format, suffix", [("onnx", "onnx"), ("torch", "pt2")])
def test_dien_torch_export_of_a_free_history_length_is_refused(
    tmp_path, export_format, suffix
):
    history = keras.Input((None, 3))
    length = keras.Input((), dtype="int32")
    interests = InterestExtractor()([history, length])
    model = keras.Model([history, length], interests)
    model.predict([np.zeros((2, 4, 3), "float32"), np.array([1, 4])], verbose=0)
    # Keras's .pt2 export wraps the layer's error in a RuntimeError.
    error = ValueError if export_format == "onnx" else RuntimeError
    with pytest.raises(error, match=r"`InterestExtractor` exports from the "):
        model.export(tmp_path / f"free.{suffix}", format=export_format, verbose=False)
    # The evolution layer checks its own input: a free length reaches it too.
    item = keras.Input((3,))
    states = keras.Input((None, 3))
    model = keras.Model(
        [item, states, length], InterestEvolution()([item, states, length])
    )
    model.predict(
        [np.zeros((2, 3), "float32"), np.zeros((2, 4, 3), "float32"), np.array([1, 4])],
        verbose=0,
    )
    with pytest.raises(error, match=r"`InterestEvolution` exports from the "):
        model.export(tmp_path / f"free.{suffix}", format=export_format, verbose=False)
