""".keras files are portable across backends.

`tests/golden/` holds models trained and saved on each backend by
`tests/golden/make_golden.py`, with inputs and the predictions they gave
there. Every backend's run loads all of them.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from din_models import ATT
from din_models import BUILDER_KINDS
from din_models import BUYS
from din_models import CLICKS
from din_models import DNN
from din_models import FEATURES
from din_models import KINDS
from din_models import builder_model
from din_models import feature_data
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from test_local_activation_unit import halved_tanh

import keras_din  # noqa: F401  (registers the layers before loading)
from keras_din import InterestEvolution
from keras_din.models import DIEN
from keras_din.models import DIN

GOLDEN = Path(__file__).resolve().parent / "golden"
BACKENDS = ("tensorflow", "torch", "jax")
GOLDEN_FILES = sorted(GOLDEN.glob("*.keras"))


def test_golden_files_cover_every_backend_and_model():
    names = {path.stem for path in GOLDEN_FILES}
    assert names == {f"{b}_{k}" for b in BACKENDS for k in KINDS + BUILDER_KINDS}
    for path in GOLDEN_FILES:
        assert path.with_suffix(".npz").exists(), path


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_model_loads_with_same_predictions(path):
    data = np.load(path.with_suffix(".npz"))
    if "input_0" in data.files:
        inputs = [data[f"input_{i}"] for i in range(len(data.files) - 1)]
    else:  # a keras_din.models model: a dict keyed by input name
        inputs = {name: data[name] for name in data.files if name != "expected"}
    # compile=False: a model compiled on JAX is saved with jit_compile=True,
    # which on torch means a torch.compile of minutes on CPU (docs/guides/serving.md).
    model = keras.saving.load_model(path, compile=False)
    actual = model.predict(inputs, verbose=0)
    # The empty histories (row 0) and all-valid rows are in the inputs.
    assert actual.shape == data["expected"].shape
    print(f"max |diff| {path.stem}: {np.max(np.abs(actual - data['expected'])):.2e}")
    np.testing.assert_allclose(actual, data["expected"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", BUILDER_KINDS)
def test_weights_of_a_0_2_builder_model_carry_into_one_built_now(kind):
    # The recipe of docs/changes.md: every layer by name; each table into
    # the "embedding" layer's; the MLP head's "dnn_<i>" kernels and biases,
    # then "dnn_<i>_activation" weights, into the one "dnn" layer.
    path = GOLDEN / f"torch_{kind}.keras"
    data = np.load(path.with_suffix(".npz"))
    inputs = {name: data[name] for name in data.files if name != "expected"}
    # Id 0 wherever a position is padding (0.2.0's graph did not put it
    # there itself; see docs/changes.md), so that both graphs agree.
    for behavior in (CLICKS, BUYS):
        valid = np.all([inputs[h] != 0 for h in behavior.features], axis=0)
        if behavior.length is not None:
            length = inputs[behavior.length].reshape(-1, 1)
            valid &= np.arange(behavior.max_length) < length
        names = [*behavior.features, *(behavior.negatives or {}).values()]
        for name in (n for n in names if n in inputs):
            inputs[name] = np.where(valid, inputs[name], 0)
    old = keras.saving.load_model(path, compile=False)
    # 0.2.0's default weight_normalization (DIEN's is True since, see
    # docs/changes.md).
    new = builder_model(kind, weight_normalization=False)
    names = {layer.name for layer in old.layers}
    new_names = {layer.name for layer in new.layers if layer.weights}
    assert new_names - names == {"dnn", "embedding"}
    head = [f"dnn_{i}" for i in range(len(DNN))]
    head += [f"{name}_activation" for name in head]
    for layer in new.layers:
        if layer.name == "dnn":
            layer.set_weights([w for n in head for w in old.get_layer(n).get_weights()])
        elif layer.name == "embedding":
            for table in layer.tables.values():
                table.set_weights(old.get_layer(table.name).get_weights())
        elif layer.weights:
            layer.set_weights(old.get_layer(layer.name).get_weights())
    np.testing.assert_allclose(
        new.predict(inputs, verbose=0),
        old.predict(inputs, verbose=0),
        rtol=0,
        atol=1e-6,
    )


def test_load_without_importing_keras_din_fails_with_keras_message():
    # Keras imports only its own packages when deserialising; docs/guides/serving.md
    # explains the message and that `import keras_din` comes first.
    code = f"import keras, sys\nkeras.saving.load_model({str(GOLDEN_FILES[0])!r})\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode != 0
    assert "Could not locate class" in result.stderr, result.stderr[-2000:]
    assert "keras_din" in result.stderr


@pytest.mark.parametrize("gru_type", ["AUGRU", "GRU"])
def test_interest_evolution_layer_activation_survives_keras_save_and_load(
    rng, tmp_path, gru_type
):
    # InterestEvolution hands its attention's serialised activation on.
    layer = InterestEvolution(
        gru_type=gru_type,
        att_hidden_units=(5,),
        att_activation=keras.layers.LeakyReLU(negative_slope=0.1),
    )
    assert_config_round_trip(layer)
    inputs = [
        keras.Input((1, 3)),
        keras.Input((6, 3)),
        keras.Input((), dtype="int32"),
    ]
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights(random_like_weights(layer, rng))
    data = [
        rng.normal(size=(4, 1, 3)).astype("float32"),
        rng.normal(size=(4, 6, 3)).astype("float32"),
        np.array([0, 1, 4, 6], "int32"),
    ]
    assert_save_load(model, data, tmp_path)


@pytest.mark.parametrize("builder", [DIN, DIEN])
def test_builder_with_layer_and_registered_function_activations_saves_and_loads(
    rng, tmp_path, builder
):
    model = builder(
        FEATURES,
        [CLICKS, BUYS],
        candidates=2,
        att_hidden_units=ATT,
        att_activation=keras.layers.LeakyReLU(negative_slope=0.1),
        dnn_hidden_units=DNN,
        dnn_activation=halved_tanh,
    )
    data = feature_data(rng, candidates=2)
    assert_save_load(model, {name: data[name] for name in model.input}, tmp_path)
