"""The README's Python examples run and do what they say."""

import re
import warnings
from pathlib import Path

import numpy as np

import keras_din

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_with(text):
    (block,) = [b for b in python_blocks() if text in b]
    return block


def test_builder_quickstart_is_ten_lines_that_learn():
    block = block_with("keras_din.datasets.load_synthetic()")
    assert python_blocks()[0] == block  # the first example of the README
    assert len([line for line in block.splitlines() if line.strip()]) <= 10
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        exec(block, namespace)
    model, x_test = namespace["model"], namespace["x_test"]
    assert isinstance(model, keras_din.models.FeatureModel)
    scores = model.predict({k: x_test[k] for k in model.input}, verbose=0)
    # Two epochs reach an AUC of about 0.7 (0.70 on JAX, 0.72 on torch).
    assert keras_din.metrics.auc(namespace["y_test"], scores[:, 0]) > 0.6


def test_feature_spec_example_builds_its_models():
    namespace = {}
    exec(block_with("ranker = DIN("), namespace)
    din, dien, ranker = (namespace[name] for name in ("din", "dien", "ranker"))
    assert "clicks_length" in din.input and "negative_items" not in din.input
    assert {"negative_items", "negative_categories"} <= set(dien.input)
    assert tuple(ranker.input["item"].shape) == (None, 5)
    assert tuple(ranker.output.shape) == (None, 5)
    assert namespace["base"].get_layer("buys_sum_pooling") is not None


def test_quickstart_trains():
    namespace = {}
    with warnings.catch_warnings():
        # Keras warns when a layer drops a mask (a Flatten after the
        # candidate's embedding): the quickstart must not.
        warnings.simplefilter("error", UserWarning)
        exec(block_with("keras.Input((1,)"), namespace)
    model = namespace["model"]
    rng = np.random.default_rng(0)
    histories = rng.integers(0, 1000, size=(64, 9)).astype("int32")
    histories[:8] = 0  # empty histories
    candidates = rng.integers(1, 1000, size=(64, 1)).astype("int32")
    labels = rng.integers(0, 2, size=(64, 1)).astype("float32")
    fitted = model.fit([candidates, histories], labels, epochs=1, verbose=0)
    assert np.isfinite(fitted.history["loss"][0])
    assert model.predict([candidates, histories], verbose=0).shape == (64, 1)


def test_dien_example_trains():
    namespace = {}
    exec(block_with("InterestEvolution(gru_type"), namespace)
    model, data = namespace["dien"], namespace["data"]
    assert model.predict(data, verbose=0).shape == (32, 1)
    assert np.all(np.isfinite(model.predict(data, verbose=0)))
