"""Export for serving: SavedModel (TensorFlow, JAX), ONNX and .pt2 (torch).

The exported models are the golden ones of `tests/golden/` (trained briefly,
one per way of masking) and one that scores several candidates per row, all
exported with plain `model.export`, reloaded the way a server would and run
at batch sizes and history lengths the models never saw, `T = 1` and empty
histories included. Every output is compared with the Keras model's
predictions.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from din_models import KINDS
from din_models import din_inputs
from din_models import din_model
from din_models import train_briefly
from layer_checks import serve_saved_models

import keras_din  # noqa: F401  (registers the layers before loading)
from keras_din.export import FORMATS
from keras_din.export import export_model

BACKEND = keras.backend.backend()
TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden"
# (batch, history length): none of them seen in training (16, 5) or in the
# golden inputs (7, 9). Row 0 of every case is an empty history.
SERVE_CASES = ((1, 1), (3, 1), (6, 13), (2, 30))
ATOL = 1e-5
# The golden kinds, and several candidates per row (no golden file).
EXPORTED = (*KINDS, "candidates")


def load_golden(backend, kind):
    return keras.saving.load_model(GOLDEN / f"{backend}_{kind}.keras", compile=False)


def load_model(backend, kind):
    """The golden model of `kind`, or one trained now for `"candidates"`."""
    if kind in KINDS:
        return load_golden(backend, kind)
    keras.utils.set_random_seed(7)
    return train_briefly(din_model(kind), kind)


def serve_cases(kind):
    """Inputs per case: the new shapes, then the golden inputs."""
    cases = [
        din_inputs(kind, batch, history, seed=batch * 100 + history)
        for batch, history in SERVE_CASES
    ]
    if kind in KINDS:
        golden = np.load(GOLDEN / f"{BACKEND}_{kind}.npz")
        cases.append([golden[f"input_{i}"] for i in range(len(golden.files) - 1)])
    return cases


def max_difference(actual, expected):
    assert actual.shape == expected.shape
    assert np.all(np.isfinite(actual))
    return float(np.max(np.abs(actual - expected)))


def report(label, differences):
    """Prints the largest difference (seen with `pytest -s`), returns it."""
    largest = max(differences)
    print(f"max |diff| {label}: {largest:.2e}")
    return largest


# --- SavedModel (TensorFlow and JAX backends) ------------------------------

needs_saved_model = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"),
    reason=f"Keras exports no SavedModel from the {BACKEND} backend; the "
    "route is a .keras file loaded on TensorFlow (tested in the tensorflow run)",
)


@pytest.fixture(scope="module")
def saved_model_results(tmp_path_factory):
    """Exports the models, serves them in one TensorFlow-only process.

    Returns `{(source backend, kind): [(served, keras), ...]}` with one pair
    of output arrays per case. On TensorFlow the torch-trained golden models
    are exported too: the documented route from torch to a SavedModel.
    """
    directory = tmp_path_factory.mktemp("saved_models")
    sources = [BACKEND] + (["torch"] if BACKEND == "tensorflow" else [])
    expected = {}
    for source in sources:
        for kind in EXPORTED if source == BACKEND else KINDS:
            model = load_model(source, kind)
            name = f"{source}_{kind}"
            model.export(directory / name, verbose=False)
            expected[source, kind] = []
            for index, inputs in enumerate(serve_cases(kind)):
                arrays = {f"input_{i}": x for i, x in enumerate(inputs)}
                np.savez(directory / f"{name}.case{index}.npz", **arrays)
                expected[source, kind].append(model.predict(inputs, verbose=0))
    serve_saved_models(directory)
    return {
        key: [
            (np.load(directory / f"{key[0]}_{key[1]}.case{i}.out.npy"), keras_out)
            for i, keras_out in enumerate(outputs)
        ]
        for key, outputs in expected.items()
    }


@needs_saved_model
@pytest.mark.parametrize("kind", EXPORTED)
def test_saved_model_serves_new_shapes_without_keras(saved_model_results, kind):
    pairs = saved_model_results[BACKEND, kind]
    largest = report(
        f"SavedModel {BACKEND} {kind}", [max_difference(*pair) for pair in pairs]
    )
    assert largest <= ATOL


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the route loads the torch-made .keras file on the TensorFlow "
    "backend; it runs in the tensorflow run",
)
@pytest.mark.parametrize("kind", KINDS)
def test_torch_trained_model_to_saved_model_via_keras_file(saved_model_results, kind):
    pairs = saved_model_results["torch", kind]
    largest = report(
        f"torch .keras -> SavedModel {kind}", [max_difference(*p) for p in pairs]
    )
    assert largest <= ATOL
    # The last case holds the golden inputs: the SavedModel gives what the
    # model gave on torch, where it was trained.
    torch_outputs = np.load(GOLDEN / f"torch_{kind}.npz")["expected"]
    largest = report(
        f"torch .keras -> SavedModel {kind} vs torch's own outputs",
        [max_difference(pairs[-1][0], torch_outputs)],
    )
    assert largest <= ATOL


# --- ONNX and .pt2 (torch backend) -----------------------------------------

needs_torch = pytest.mark.skipif(
    BACKEND != "torch",
    reason="keras-din exports ONNX and .pt2 from the torch backend "
    f"(the {BACKEND} backend exports {list(FORMATS.get(BACKEND, ()))})",
)


def torch_dynamic_shapes(model):
    """`dynamic_shapes` for `torch.export`: batch and history length free."""
    import torch

    batch = torch.export.Dim("batch")
    history = torch.export.Dim("history")
    specs = [
        {axis: batch if axis == 0 else history for axis in range(len(x.shape))}
        if x.shape[1] is None
        else {0: batch}
        for x in model.inputs
    ]
    return [(specs,)]


@needs_torch
@pytest.mark.parametrize("kind", EXPORTED)
def test_onnx_runs_in_onnxruntime_at_new_shapes(tmp_path, kind):
    import onnxruntime

    model = load_model("torch", kind)
    cases = serve_cases(kind)
    # Keras's ONNX export wants a model that has been called: predict first.
    expected = [model.predict(inputs, verbose=0) for inputs in cases]
    path = tmp_path / f"{kind}.onnx"
    model.export(path, format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    differences = []
    for inputs, keras_outputs in zip(cases, expected, strict=True):
        (served,) = session.run(None, dict(zip(names, inputs, strict=True)))
        differences.append(max_difference(served, keras_outputs))
    assert report(f"ONNX {kind}", differences) <= ATOL


@needs_torch
@pytest.mark.parametrize("kind", EXPORTED)
def test_pt2_reloads_with_torch_export_load(tmp_path, kind):
    import torch

    model = load_model("torch", kind)
    path = tmp_path / f"{kind}.pt2"
    model.export(
        path,
        format="torch",
        dynamic_shapes=torch_dynamic_shapes(model),
        verbose=False,
    )
    module = torch.export.load(str(path)).module()
    differences = []
    for inputs in serve_cases(kind):
        with torch.no_grad():
            served = module([torch.as_tensor(x) for x in inputs]).numpy()
        expected = model.predict(inputs, verbose=0)
        differences.append(max_difference(served, expected))
    assert report(f".pt2 {kind}", differences) <= ATOL


# --- Bad input --------------------------------------------------------------


def test_format_the_backend_cannot_produce_names_backend_and_formats(tmp_path):
    model = load_golden(BACKEND, "lengths")
    wrong = "onnx" if BACKEND != "torch" else "tf_saved_model"
    with pytest.raises(ValueError) as error:
        export_model(model, tmp_path / "model", format=wrong)
    message = str(error.value)
    assert repr(BACKEND) in message and repr(wrong) in message
    assert str(list(FORMATS[BACKEND])) in message
    assert not (tmp_path / "model").exists()


# --- The example --------------------------------------------------------------


def test_export_example_prints_a_row_per_format(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(TESTS.parent / "examples" / "export_din.py"),
            *("--samples", "512", "--batch", "16", "--repeats", "2"),
            *("--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    for fmt in (".keras", *FORMATS[BACKEND]):
        # ... max |diff|, ms per batch
        assert float(rows[fmt][-2]) <= ATOL, result.stdout
