"""A DIN-style functional model trained on built-in synthetic data.

Each user has a history of up to 20 item ids (0 is padding, some histories
are empty) and sees one candidate item. Items belong to 10 categories, and a
user clicks a candidate when its category occurs in the history: the label
depends on the part of the history that matches the candidate, the local
interest that DIN's attention is built to find.

Run it on any backend:

    KERAS_BACKEND=jax python examples/din_functional.py
"""

import argparse

import keras
import numpy as np

import keras_din

NUM_ITEMS = 200
NUM_CATEGORIES = 10
MAX_HISTORY = 20


def synthetic_data(num_samples, seed=0):
    """Histories, candidates and click labels; ids start at 1, 0 is padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, MAX_HISTORY + 1, size=num_samples)
    histories = rng.integers(1, NUM_ITEMS, size=(num_samples, MAX_HISTORY))
    histories[np.arange(MAX_HISTORY)[None, :] >= lengths[:, None]] = 0
    candidates = rng.integers(1, NUM_ITEMS, size=(num_samples, 1))
    history_categories = np.where(histories > 0, histories % NUM_CATEGORIES, -1)
    labels = np.any(history_categories == candidates % NUM_CATEGORIES, axis=1)
    inputs = {
        "candidate": candidates.astype("int32"),
        "history": histories.astype("int32"),
    }
    return inputs, labels.astype("float32")[:, None]


def din_model(embedding_dim=8):
    """Candidate and history share an embedding; attention pools the history."""
    candidate = keras.Input((1,), dtype="int32", name="candidate")
    history = keras.Input((MAX_HISTORY,), dtype="int32", name="history")
    items = keras.layers.Embedding(NUM_ITEMS, embedding_dim, mask_zero=True)
    candidate_embedding = items(candidate)  # (B, 1, E)
    interest = keras_din.AttentionSequencePoolingLayer(
        att_hidden_units=(32, 16), att_activation="dice"
    )([candidate_embedding, items(history)])  # (B, 1, E), masked by id 0
    # keras.ops carry no Keras mask: a Flatten layer here would warn that
    # it drops the candidate's (from `mask_zero`).
    features = keras.ops.squeeze(
        keras.ops.concatenate([candidate_embedding, interest], axis=-1), axis=1
    )
    hidden = keras.layers.Dense(32, activation="relu")(features)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model([candidate, history], output, name="din")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20000)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    train_x, train_y = synthetic_data(args.samples, seed=0)
    test_x, test_y = synthetic_data(args.samples // 4, seed=1)
    model = din_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), "accuracy"],
    )
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}")
    model.fit(train_x, train_y, batch_size=256, epochs=args.epochs, verbose=2)
    metrics = model.evaluate(
        test_x, test_y, batch_size=1024, verbose=0, return_dict=True
    )
    print("test " + ", ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
