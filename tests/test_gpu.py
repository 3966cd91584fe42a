"""GPU checks: they run where the active backend sees a GPU (the `gpu-*` tox
environments) and are skipped elsewhere. The first test runs everywhere: it
checks that `KERAS_DIN_REQUIRE_GPU=1` refuses to run without a GPU."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_din import AttentionSequencePoolingLayer

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()
ITEMS, HISTORY = 40, 8


def test_require_gpu_refuses_to_run_without_a_gpu():
    """A session with KERAS_DIN_REQUIRE_GPU=1 and no visible GPU stops at
    start with an error, whatever tests it was asked to run. The GPUs are
    hidden, so this holds on GPU hosts too."""
    env = {
        **os.environ,
        "KERAS_DIN_REQUIRE_GPU": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
        + ["--collect-only", "tests/test_dice.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert f"no GPU is visible to the {BACKEND} backend" in output
    assert "collected" not in result.stdout


def din_model():
    candidate = keras.Input((1,), dtype="int32")
    history = keras.Input((HISTORY,), dtype="int32")
    items = keras.layers.Embedding(ITEMS, 8, mask_zero=True)
    query = items(candidate)
    interest = AttentionSequencePoolingLayer(
        att_hidden_units=(16, 8), att_activation="dice", weight_normalization=True
    )([query, items(history)])
    features = keras.layers.Flatten()(keras.layers.Concatenate()([query, interest]))
    hidden = keras.layers.Dense(16, activation="relu")(features)
    output = keras.layers.Dense(1, activation="sigmoid", dtype="float32")(hidden)
    return keras.Model([candidate, history], output)


def din_data(rng, samples=512):
    lengths = rng.integers(0, HISTORY + 1, size=samples)  # some empty
    histories = rng.integers(1, ITEMS, size=(samples, HISTORY))
    histories[np.arange(HISTORY)[None, :] >= lengths[:, None]] = 0
    candidates = rng.integers(1, ITEMS, size=(samples, 1))
    labels = np.any(histories == candidates, axis=1).astype("float32")[:, None]
    return [candidates.astype("int32"), histories.astype("int32")], labels


def device_kind(tensor):
    """Where a backend tensor lives: "gpu" or "cpu"."""
    if BACKEND == "tensorflow":
        return "gpu" if "GPU" in tensor.device.upper() else "cpu"
    if BACKEND == "torch":
        return "gpu" if tensor.device.type == "cuda" else "cpu"
    platforms = {device.platform for device in tensor.devices()}
    return "gpu" if platforms == {"gpu"} else "cpu"


@pytest.mark.gpu
def test_outputs_and_weights_live_on_the_gpu(rng):
    layer = AttentionSequencePoolingLayer(att_hidden_units=(16, 8))
    query = rng.normal(size=(4, 1, 8)).astype("float32")
    keys = rng.normal(size=(4, 6, 8)).astype("float32")
    lengths = np.array([0, 2, 6, 9], dtype="int32")
    output = layer([query, keys, lengths])
    assert device_kind(output) == "gpu"
    assert all(device_kind(w.value) == "gpu" for w in layer.weights)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(output)))


@pytest.mark.gpu
def test_mixed_float16_training_on_the_gpu(rng):
    keras.config.set_dtype_policy("mixed_float16")
    model = din_model()
    pooling = next(
        layer
        for layer in model.layers
        if isinstance(layer, AttentionSequencePoolingLayer)
    )
    assert pooling.compute_dtype == "float16"
    assert pooling.output.dtype == "float16"
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    inputs, labels = din_data(rng)
    losses = model.fit(inputs, labels, batch_size=64, epochs=3, verbose=0)
    losses = losses.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    for weight in model.weights:
        assert weight.dtype == "float32"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(weight))), weight.path
    predictions = model(inputs)
    assert device_kind(predictions) == "gpu"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(predictions)))


SERVE_ON_CPU = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    assert not tf.config.list_physical_devices("GPU")
    served = tf.saved_model.load(sys.argv[1])
    data = np.load(sys.argv[2])
    with tf.device("/CPU:0"):
        output = served.serve([data["candidate"], data["history"]])
    np.save(sys.argv[3], output.numpy())
    """
)


@pytest.mark.gpu
@pytest.mark.skipif(
    BACKEND != "jax",
    reason="exports from JAX; runs in the `gpu-jax` tox environment",
)
def test_jax_savedmodel_exported_on_the_gpu_serves_on_the_cpu(rng, tmp_path):
    pytest.importorskip("tensorflow", reason="SavedModel export needs TensorFlow")
    import jax

    model = din_model()
    inputs, _ = din_data(rng, samples=16)
    # Full float32 matmuls (no TF32), as the CPU serves them.
    with jax.default_matmul_precision("highest"):
        expected = keras.ops.convert_to_numpy(model(inputs))
    # Lower for both platforms: by default jax2tf lowers for the exporting
    # host's platform only, and the CUDA-only model cannot run on a CPU.
    model.export(
        str(tmp_path / "served"),
        format="tf_saved_model",
        jax2tf_kwargs={"native_serialization_platforms": ("cpu", "cuda")},
    )
    np.savez(tmp_path / "inputs.npz", candidate=inputs[0], history=inputs[1])
    result = subprocess.run(
        [sys.executable, "-c", SERVE_ON_CPU]
        + [str(tmp_path / "served"), str(tmp_path / "inputs.npz")]
        + [str(tmp_path / "served.npy")],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    np.testing.assert_allclose(
        np.load(tmp_path / "served.npy"), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.gpu
def test_dien_trains_with_the_default_jit_compile_on_the_gpu(rng):
    # Keras's jit_compile="auto" turns XLA on for TensorFlow on a GPU.
    from test_interest_evolution import dien_model

    model, _, data = dien_model(rng)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(data, np.array([1, 0, 1, 0], "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
