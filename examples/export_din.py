"""Trains a small DIN model, exports it for serving and checks each artifact.

Exports every format that the current backend produces (SavedModel on
TensorFlow and JAX; ONNX and a `.pt2` ExportedProgram on PyTorch), plus the
`.keras` file, reloads each the way a server would (TensorFlow,
onnxruntime, `torch.export.load`), and prints a table: format, size on
disk, largest difference from the Keras model's predictions (over several
batch sizes and history lengths, empty histories included), and latency
per batch.

    KERAS_BACKEND=jax python examples/export_din.py
    KERAS_BACKEND=torch python examples/export_din.py   # needs onnx, onnxruntime

Every artifact comes from plain `model.export`. A SavedModel of a
torch-trained model: save it as `.keras`, then load and
export it with KERAS_BACKEND=tensorflow (see docs/guides/serving.md).
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import keras_din
from keras_din.export import FORMATS

NUM_ITEMS = 200
NUM_CATEGORIES = 10


def synthetic_data(num_samples, history, seed=0):
    """Candidate and history ids (0 pads) and a click label."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, history + 1, size=num_samples)
    histories = rng.integers(1, NUM_ITEMS, size=(num_samples, history))
    histories[np.arange(history)[None, :] >= lengths[:, None]] = 0
    candidates = rng.integers(1, NUM_ITEMS, size=(num_samples, 1))
    categories = np.where(histories > 0, histories % NUM_CATEGORIES, -1)
    labels = np.any(categories == candidates % NUM_CATEGORIES, axis=1)
    inputs = [candidates.astype("int32"), histories.astype("int32")]
    return inputs, labels.astype("float32")[:, None]


def din_model(embedding_dim=8):
    """DIN with a history of any length; id 0 pads (`mask_zero=True`)."""
    candidate = keras.Input((1,), dtype="int32", name="candidate")
    history = keras.Input((None,), dtype="int32", name="history")
    items = keras.layers.Embedding(NUM_ITEMS, embedding_dim, mask_zero=True)
    query = items(candidate)
    interest = keras_din.AttentionSequencePoolingLayer(
        att_hidden_units=(32, 16), att_activation="dice", weight_normalization=True
    )([query, items(history)])
    # keras.ops carry no Keras mask (a Flatten layer would warn it drops one).
    features = keras.ops.squeeze(keras.ops.concatenate([query, interest], -1), 1)
    hidden = keras.layers.Dense(32, activation="relu")(features)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model([candidate, history], output, name="din")


def disk_size(path):
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_and_load(model, fmt, directory):
    """Exports `model` as `fmt`; returns (path, predict function)."""
    if fmt == "tf_saved_model":
        path = directory / "din_saved_model"
        model.export(path, verbose=False)
        import tensorflow as tf

        served = tf.saved_model.load(str(path))
        return path, lambda x: served.serve([tf.constant(a) for a in x]).numpy()
    if fmt == "onnx":
        import onnxruntime

        path = directory / "din.onnx"
        model.export(path, format="onnx", verbose=False)
        session = onnxruntime.InferenceSession(str(path))
        names = [i.name for i in session.get_inputs()]
        return path, lambda x: session.run(None, dict(zip(names, x, strict=True)))[0]
    if fmt == "torch":
        import torch

        batch, history = torch.export.Dim("batch"), torch.export.Dim("history")
        path = directory / "din.pt2"
        model.export(
            path,
            format="torch",
            # Batch size and history length stay free in the program.
            dynamic_shapes=[([{0: batch}, {0: batch, 1: history}],)],
            verbose=False,
        )
        module = torch.export.load(str(path)).module()

        def predict(x):
            with torch.no_grad():
                return module([torch.as_tensor(a) for a in x]).numpy()

        return path, predict
    raise ValueError(f"Unknown format {fmt!r}")


def latency_ms(predict, inputs, repeats):
    predict(inputs)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(inputs)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=256, help="serving batch")
    parser.add_argument("--repeats", type=int, default=20, help="latency calls")
    parser.add_argument("--out", help="where to write the artifacts (a temp dir)")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    directory = Path(args.out or tempfile.mkdtemp(prefix="din_export_"))
    directory.mkdir(parents=True, exist_ok=True)

    train_x, train_y = synthetic_data(args.samples, history=20, seed=0)
    model = din_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(train_x, train_y, batch_size=256, epochs=args.epochs, verbose=0)

    # Shapes the model never saw: a new batch size, T = 1, a longer history.
    checks = [
        synthetic_data(args.batch, history=30, seed=1)[0],
        synthetic_data(3, history=1, seed=2)[0],
        synthetic_data(5, history=7, seed=3)[0],
    ]
    expected = [model.predict(x, verbose=0) for x in checks]

    keras_path = directory / "din.keras"
    model.save(keras_path)
    reloaded = keras.saving.load_model(keras_path, compile=False)
    servers = {".keras predict": (keras_path, lambda x: reloaded.predict(x, verbose=0))}
    for fmt in FORMATS[backend]:
        servers[fmt] = export_and_load(model, fmt, directory)

    print(f"backend {backend}, keras {keras.__version__}, artifacts in {directory}")
    print(
        f"latency: median of {args.repeats} calls on a batch of {args.batch}, "
        "history 30"
    )
    header = f"{'format':<16}{'size on disk':>14}{'max |diff|':>14}{'ms / batch':>12}"
    print(header)
    print("-" * len(header))
    for fmt, (path, predict) in servers.items():
        diff = max(
            float(np.max(np.abs(np.asarray(predict(x)) - y)))
            for x, y in zip(checks, expected, strict=True)
        )
        size = f"{disk_size(path) / 1024:.1f} KiB"
        ms = latency_ms(predict, checks[0], args.repeats)
        print(f"{fmt:<16}{size:>14}{diff:>14.2e}{ms:>12.2f}")


if __name__ == "__main__":
    main()
