"""A DIN-style functional model learns a task that needs the history."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from keras_din import AttentionSequencePoolingLayer

ROOT = Path(__file__).resolve().parents[1]


def history_task(rng, samples=2048, items=60, history=12):
    """Click when the candidate itself occurs in the history (0 pads)."""
    lengths = rng.integers(0, history + 1, size=samples)
    histories = rng.integers(1, items, size=(samples, history))
    histories[np.arange(history)[None, :] >= lengths[:, None]] = 0
    candidates = rng.integers(1, items, size=(samples, 1))
    # Half of the candidates are drawn from the history when it has items.
    pick = (rng.random(samples) < 0.5) & (lengths > 0)
    positions = (rng.random(samples) * np.maximum(lengths, 1)).astype(int)
    candidates[pick, 0] = histories[pick, positions[pick]]
    labels = np.any(histories == candidates, axis=1).astype("float32")[:, None]
    return [candidates.astype("int32"), histories.astype("int32")], labels


def test_din_model_learns_from_history(rng):
    inputs, labels = history_task(rng)
    candidate = keras.Input((1,), dtype="int32")
    history = keras.Input((None,), dtype="int32")
    items = keras.layers.Embedding(60, 8, mask_zero=True)
    candidate_embedding = items(candidate)
    interest = AttentionSequencePoolingLayer(att_hidden_units=(16, 8))(
        [candidate_embedding, items(history)]
    )
    features = keras.layers.Flatten()(
        keras.layers.Concatenate()([candidate_embedding, interest])
    )
    hidden = keras.layers.Dense(16, activation="relu")(features)
    model = keras.Model(
        [candidate, history], keras.layers.Dense(1, activation="sigmoid")(hidden)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    fitted = model.fit(inputs, labels, batch_size=128, epochs=6, verbose=0)
    losses = fitted.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    # Better than always predicting the majority class.
    majority = max(labels.mean(), 1 - labels.mean())
    assert fitted.history["accuracy"][-1] > majority + 0.05


def test_example_runs():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "din_functional.py"),
            "--epochs",
            "1",
            "--samples",
            "2000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test " in result.stdout and "auc" in result.stdout
    # No layer drops a Keras mask with a warning (a Flatten after the
    # candidate's embedding would).
    assert "does not support masking" not in result.stderr
