"""Small checks every keras-din layer goes through (no keras.src internals)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def assert_config_round_trip(layer):
    """`get_config`/`from_config` and `serialize_keras_object` round trips."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(layer)
    assert restored.get_config() == config


def assert_save_load(model, inputs, tmp_path):
    """Saves `model` as `.keras`, reloads it and compares predictions."""
    expected = model.predict(inputs, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    actual = reloaded.predict(inputs, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
    assert len(reloaded.weights) == len(model.weights)
    return reloaded


def random_like_weights(layer, rng, scale=0.5):
    """Random arrays shaped like `layer`'s weights (variances kept positive)."""
    arrays = []
    for w in layer.weights:
        a = rng.normal(scale=scale, size=tuple(w.shape))
        if "variance" in w.path:
            a = np.abs(a) + 0.5
        arrays.append(a.astype("float32"))
    return arrays


def serve_saved_models(directory):
    """Serves the SavedModels of `directory` with `tests/tf_serving.py`, in a
    TensorFlow-only process, as a server would (see that file)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "tf_serving.py"), str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
