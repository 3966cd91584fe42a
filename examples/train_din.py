"""Train DIN and the base model of the DIN paper end to end, and compare them.

Both models embed the candidate item and every history item (item id plus
category id, concatenated), pool the history into one vector, and feed
`[candidate, pooled history]` to an MLP that predicts the click:

- base: sum pooling of the history, PReLU MLP (the paper's Embedding&MLP);
- DIN: `AttentionSequencePoolingLayer` with a Dice activation unit, Dice MLP.

Both use `MiniBatchAwareEmbedding` (the paper's mini-batch aware
regularization) on the same data. The script prints a table of AUC, GAUC
(user-weighted AUC) and RelaImpr, saves the trained DIN model as
`din.keras` (and `base.keras`) in `--output`, exports DIN for serving where
the backend allows, and prints one JSON object with the results as its last
line.

    KERAS_BACKEND=jax python examples/train_din.py --quick
    KERAS_BACKEND=torch python examples/train_din.py --data movielens \\
        --data-path ml-1m/ratings.dat
    KERAS_BACKEND=tensorflow python examples/train_din.py --data amazon \\
        --data-path reviews_Electronics_5.json
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
from keras import ops

import keras_din
import keras_din.export
from keras_din import datasets
from keras_din import metrics

FEATURES = ("candidate", "candidate_category", "history", "history_category")


@keras.saving.register_keras_serializable(package="train_din")
class SumPooling(keras.layers.Layer):
    """Sum of the valid (unmasked) history embeddings: `(B, T, E) -> (B, 1, E)`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs, axis=1, keepdims=True)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2])


def load_data(args):
    """`(x_train, y_train), (x_test, y_test)` of the chosen data set."""
    if args.data == "synthetic":
        return datasets.load_synthetic(
            num_users=1500 if args.quick else 10000, seed=args.seed
        )
    per_user = 5 if args.quick else None
    if args.data == "movielens":
        return datasets.load_movielens(
            args.data_path, max_samples_per_user=per_user, seed=args.seed
        )
    return datasets.load_amazon(
        args.data_path,
        meta_path=args.meta_path,
        max_samples_per_user=per_user,
        seed=args.seed,
    )


def occurrences(ids_list, size):
    """How often each id occurs in the training data (for the MBA penalty)."""
    counts = sum(np.bincount(ids.ravel(), minlength=size) for ids in ids_list)
    return counts.astype("float32")


def build_model(kind, x_train, sizes, args):
    """The DIN model (`kind="din"`) or the base model (`kind="base"`)."""
    num_items, num_categories = sizes
    max_history = x_train["history"].shape[1]
    inputs = {
        "candidate": keras.Input((1,), dtype="int32", name="candidate"),
        "candidate_category": keras.Input(
            (1,), dtype="int32", name="candidate_category"
        ),
        "history": keras.Input((max_history,), dtype="int32", name="history"),
        "history_category": keras.Input(
            (max_history,), dtype="int32", name="history_category"
        ),
    }
    item_frequencies = occurrences(
        [x_train["candidate"], x_train["history"]], num_items
    )
    category_frequencies = occurrences(
        [x_train["candidate_category"], x_train["history_category"]], num_categories
    )
    items = keras_din.MiniBatchAwareEmbedding(
        num_items,
        args.embedding_dim,
        frequencies=item_frequencies,
        l2=args.l2,
        mask_zero=True,
        name="item_embedding",
    )
    categories = keras_din.MiniBatchAwareEmbedding(
        num_categories,
        args.embedding_dim,
        frequencies=category_frequencies,
        l2=args.l2,
        mask_zero=True,
        name="category_embedding",
    )
    # (B, 1, 2E) and (B, T, 2E); the history keeps the mask of id 0.
    query = keras.layers.Concatenate()(
        [items(inputs["candidate"]), categories(inputs["candidate_category"])]
    )
    keys = keras.layers.Concatenate()(
        [items(inputs["history"]), categories(inputs["history_category"])]
    )
    if kind == "din":
        interest = keras_din.AttentionSequencePoolingLayer(
            att_hidden_units=(32, 16),
            att_activation="dice",
            weight_normalization=False,
            name="attention_pooling",
        )([query, keys])
    else:
        interest = SumPooling(name="sum_pooling")(keys)
    # The candidate's mask (its id is never 0) ends here: keras.ops carry no
    # Keras mask, where a Flatten layer would warn that it drops one.
    hidden = ops.squeeze(ops.concatenate([query, interest], axis=-1), axis=1)
    for units in (64, 32):
        hidden = keras.layers.Dense(units)(hidden)
        hidden = (
            keras_din.Dice()(hidden) if kind == "din" else keras.layers.PReLU()(hidden)
        )
    output = keras.layers.Dense(1, activation="sigmoid", name="click")(hidden)
    model = keras.Model(inputs, output, name=kind)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def evaluate(model, x_test, y_test):
    scores = model.predict(features(x_test), batch_size=4096, verbose=0)
    return {
        "auc": metrics.auc(y_test, scores),
        "gauc": metrics.gauc(x_test["user"], y_test, scores),
    }


def features(x):
    return {name: x[name] for name in FEATURES}


def print_table(results):
    base = results["base"]
    print()
    print(
        f"{'model':<6} {'AUC':>7} {'GAUC':>7} {'RelaImpr(AUC)':>14} "
        f"{'RelaImpr(GAUC)':>15}"
    )
    for kind in ("base", "din"):
        row = results[kind]
        impr_auc = metrics.rela_impr(row["auc"], base["auc"])
        impr_gauc = metrics.rela_impr(row["gauc"], base["gauc"])
        print(
            f"{kind.upper() if kind == 'din' else kind:<6} {row['auc']:>7.4f} "
            f"{row['gauc']:>7.4f} {impr_auc:>13.2%} {impr_gauc:>14.2%}"
        )
    print()


def save(model, output, name):
    path = os.path.join(output, f"{name}.keras")
    model.save(path)
    print(f"saved {path}")


def export(model, output):
    """Exports for serving in the backend's first format (SavedModel on
    TensorFlow and JAX, ONNX on torch); reports why not where it cannot."""
    export_format = keras_din.export.FORMATS[keras.backend.backend()][0]
    name = {"tf_saved_model": "din_export", "onnx": "din.onnx"}[export_format]
    path = os.path.join(output, name)
    try:
        # `export_model`: on JAX the two history features share one length.
        keras_din.export.export_model(model, path, format=export_format, verbose=False)
    except Exception as error:  # Export needs optional packages (TF, onnx).
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"export skipped on the {keras.backend.backend()} backend: "
            f"{type(error).__name__}: {reason}"
        )
        return None
    print(f"exported {path}")
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data", choices=("synthetic", "movielens", "amazon"), default="synthetic"
    )
    parser.add_argument(
        "--data-path",
        help="movielens: ratings.dat or its folder; amazon: the reviews file or "
        "its folder; omitted: download with keras.utils.get_file",
    )
    parser.add_argument(
        "--meta-path", help="amazon: the metadata file (default: beside the reviews)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small data and few epochs (< 2 min)"
    )
    parser.add_argument("--epochs", type=int, help="default: 3 quick, 5 otherwise")
    parser.add_argument("--batch-size", type=int, help="default: 512 quick, 256")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--l2", type=float, default=0.01, help="MBA strength")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="output", help="folder for the models")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 3 if args.quick else 5
    if args.batch_size is None:
        args.batch_size = 512 if args.quick else 256
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}")
    try:
        (x_train, y_train), (x_test, y_test) = load_data(args)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    # Vocabulary sizes: the largest id anywhere, plus one for the padding 0.
    sizes = tuple(
        1 + max(int(x[name].max()) for x in (x_train, x_test) for name in names)
        for names in (FEATURES[::2], FEATURES[1::2])
    )
    print(
        f"data: {args.data}, {len(y_train)} training and {len(y_test)} test "
        f"samples, {sizes[0] - 1} items, {sizes[1] - 1} categories, "
        f"{len(np.unique(x_test['user']))} test users"
    )

    results, models = {}, {}
    for kind in ("base", "din"):
        keras.utils.set_random_seed(args.seed)
        print(f"training {kind}")
        model = build_model(kind, x_train, sizes, args)
        model.fit(
            features(x_train),
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            shuffle=True,
        )
        results[kind] = evaluate(model, x_test, y_test)
        models[kind] = model
    print_table(results)

    os.makedirs(args.output, exist_ok=True)
    for kind in ("din", "base"):
        save(models[kind], args.output, kind)
    exported = None if args.no_export else export(models["din"], args.output)

    summary = {
        "backend": keras.backend.backend(),
        "data": args.data,
        "quick": args.quick,
        "seed": args.seed,
        "din_auc": results["din"]["auc"],
        "base_auc": results["base"]["auc"],
        "din_gauc": results["din"]["gauc"],
        "base_gauc": results["base"]["gauc"],
        "rela_impr_auc": metrics.rela_impr(
            results["din"]["auc"], results["base"]["auc"]
        ),
        "rela_impr_gauc": metrics.rela_impr(
            results["din"]["gauc"], results["base"]["gauc"]
        ),
        "model_path": os.path.join(args.output, "din.keras"),
        "export_path": exported,
        "seconds": round(time.time() - start, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
