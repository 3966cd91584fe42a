"""The README's Python examples run and do what they say."""

import re
import warnings
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_trains():
    namespace = {}
    with warnings.catch_warnings():
        # Keras warns when a layer drops a mask (a Flatten after the
        # candidate's embedding): the quickstart must not.
        warnings.simplefilter("error", UserWarning)
        exec(python_blocks()[0], namespace)
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
    (block,) = [b for b in python_blocks() if "InterestEvolution(gru_type" in b]
    namespace = {}
    exec(block, namespace)
    model, data = namespace["dien"], namespace["data"]
    assert model.predict(data, verbose=0).shape == (32, 1)
    assert np.all(np.isfinite(model.predict(data, verbose=0)))
