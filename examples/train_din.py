"""Train DIN, DIEN and the base model of the DIN paper end to end, and compare them.

Every model embeds the candidate item and every history item (item id plus
category id, concatenated), turns the history into one interest vector, and
feeds `[candidate, interest]` to an MLP that predicts the click:

- base: sum pooling of the history, PReLU MLP (the paper's Embedding&MLP);
- DIN: `AttentionSequencePoolingLayer` with a Dice activation unit, Dice MLP;
- DIEN: `InterestExtractor` (a GRU, with the auxiliary loss on the data's
  negative histories) and `InterestEvolution` (AUGRU driven by the attention
  to the candidate), Dice MLP.

All use `MiniBatchAwareEmbedding` (the paper's mini-batch aware
regularization) on the same data. The script prints a table of AUC, GAUC
(user-weighted AUC) and RelaImpr over base, saves each trained model as
`<model>.keras` in `--output`, exports the attention models for serving where
the backend allows, and prints one JSON object with the results as its last
line.

    KERAS_BACKEND=jax python examples/train_din.py --quick
    KERAS_BACKEND=jax python examples/train_din.py --quick --models base,din,dien
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
NEGATIVES = ("negative_history", "negative_history_category")
MODELS = ("base", "din", "dien")


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


def inputs_of(kind):
    """The features a model takes: DIEN's auxiliary loss adds the negatives."""
    return FEATURES + NEGATIVES if kind == "dien" else FEATURES


def build_model(kind, x_train, sizes, args):
    """The model `kind` (one of `MODELS`), compiled."""
    num_items, num_categories = sizes
    max_history = x_train["history"].shape[1]
    inputs = {
        name: keras.Input(
            (1,) if name.startswith("candidate") else (max_history,),
            dtype="int32",
            name=name,
        )
        for name in inputs_of(kind)
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

    def embed(item, category):
        # (B, 1, 2E) or (B, T, 2E); a history keeps the mask of id 0.
        return keras.layers.Concatenate()(
            [items(inputs[item]), categories(inputs[category])]
        )

    query = embed("candidate", "candidate_category")
    keys = embed("history", "history_category")
    if kind == "din":
        interest = keras_din.AttentionSequencePoolingLayer(
            att_hidden_units=(32, 16),
            att_activation="dice",
            weight_normalization=False,
            name="attention_pooling",
        )([query, keys])
    elif kind == "dien":
        states = keras_din.InterestExtractor(
            auxiliary_loss_weight=args.auxiliary_loss_weight,
            name="interest_extractor",
        )(keys, negative_keys=embed(*NEGATIVES))
        # Sigmoid scores, as in the DIN model: a softmax over 20 steps scales
        # the AUGRU's update gates down to about 1/T (--quick GAUC 0.797
        # with it, 0.841 without).
        interest = keras_din.InterestEvolution(
            gru_type="AUGRU",
            att_hidden_units=(32, 16),
            att_activation="dice",
            weight_normalization=False,
            name="interest_evolution",
        )([query, states])
    else:
        interest = SumPooling(name="sum_pooling")(keys)
    # The candidate's mask (its id is never 0) ends here: keras.ops carry no
    # Keras mask, where a Flatten layer would warn that it drops one.
    hidden = ops.squeeze(ops.concatenate([query, interest], axis=-1), axis=1)
    for units in (64, 32):
        hidden = keras.layers.Dense(units)(hidden)
        hidden = (
            keras.layers.PReLU()(hidden) if kind == "base" else keras_din.Dice()(hidden)
        )
    output = keras.layers.Dense(1, activation="sigmoid", name="click")(hidden)
    model = keras.Model(inputs, output, name=kind)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def evaluate(model, kind, x_test, y_test):
    scores = model.predict(features(x_test, kind), batch_size=4096, verbose=0)
    return {
        "auc": metrics.auc(y_test, scores),
        "gauc": metrics.gauc(x_test["user"], y_test, scores),
    }


def features(x, kind):
    return {name: x[name] for name in inputs_of(kind)}


def rela_impr(results, kind, metric):
    """RelaImpr of `kind` over base, or None when base was not trained."""
    if "base" not in results:
        return None
    return metrics.rela_impr(results[kind][metric], results["base"][metric])


def print_table(results, args):
    print()
    print(
        f"{'model':<6} {'AUC':>7} {'GAUC':>7} {'RelaImpr(AUC)':>14} "
        f"{'RelaImpr(GAUC)':>15} {'aux. loss weight':>17}"
    )
    for kind, row in results.items():
        impr = [rela_impr(results, kind, metric) for metric in ("auc", "gauc")]
        impr = [f"{value:.2%}" if value is not None else "-" for value in impr]
        weight = f"{args.auxiliary_loss_weight:g}" if kind == "dien" else "-"
        print(
            f"{kind if kind == 'base' else kind.upper():<6} {row['auc']:>7.4f} "
            f"{row['gauc']:>7.4f} {impr[0]:>14} {impr[1]:>15} {weight:>17}"
        )
    print()


def save(model, output, kind):
    path = os.path.join(output, f"{kind}.keras")
    model.save(path)
    print(f"saved {path}")
    return path


def export(model, output, kind):
    """Exports for serving in the backend's first format (SavedModel on
    TensorFlow and JAX, ONNX on torch); reports why not where it cannot."""
    export_format = keras_din.export.FORMATS[keras.backend.backend()][0]
    suffix = {"tf_saved_model": "_export", "onnx": ".onnx"}[export_format]
    path = os.path.join(output, kind + suffix)
    try:
        # `export_model`: on JAX the history features share one length.
        keras_din.export.export_model(model, path, format=export_format, verbose=False)
    except Exception as error:  # Export needs optional packages (TF, onnx).
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"export of {kind} skipped on the {keras.backend.backend()} backend: "
            f"{type(error).__name__}: {reason}"
        )
        return None
    print(f"exported {path}")
    return path


def model_list(text):
    kinds = [kind.strip() for kind in text.split(",")]
    unknown = [kind for kind in kinds if kind not in MODELS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise argparse.ArgumentTypeError(
            f"expected distinct names from {', '.join(MODELS)}, comma-separated. "
            f"Received: {text!r}"
        )
    return kinds


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
    models = parser.add_mutually_exclusive_group()
    models.add_argument(
        "--models",
        type=model_list,
        default=["base", "din"],
        help=f"the models to train, in order, from {', '.join(MODELS)}",
    )
    models.add_argument(
        "--model",
        choices=MODELS,
        help="one model to train with base, its RelaImpr reference (--models "
        "base,MODEL)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small data and few epochs (< 2 min)"
    )
    parser.add_argument("--epochs", type=int, help="default: 3 quick, 5 otherwise")
    parser.add_argument("--batch-size", type=int, help="default: 512 quick, 256")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--l2", type=float, default=0.01, help="MBA strength")
    parser.add_argument(
        "--auxiliary-loss-weight",
        type=float,
        default=1.0,
        help="DIEN: the weight of the auxiliary loss (the paper's alpha)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="output", help="folder for the models")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    if args.model is not None:
        args.models = list(dict.fromkeys(["base", args.model]))
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
        for names in (FEATURES[::2] + NEGATIVES[:1], FEATURES[1::2] + NEGATIVES[1:])
    )
    print(
        f"data: {args.data}, {len(y_train)} training and {len(y_test)} test "
        f"samples, {sizes[0] - 1} items, {sizes[1] - 1} categories, "
        f"{len(np.unique(x_test['user']))} test users"
    )

    results, seconds = {}, {}
    model_paths, export_paths = {}, {}
    os.makedirs(args.output, exist_ok=True)
    for kind in args.models:
        keras.utils.set_random_seed(args.seed)
        print(f"training {kind}")
        began = time.time()
        model = build_model(kind, x_train, sizes, args)
        model.fit(
            features(x_train, kind),
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            shuffle=True,
        )
        seconds[kind] = round(time.time() - began, 1)
        results[kind] = evaluate(model, kind, x_test, y_test)
        model_paths[kind] = save(model, args.output, kind)
        if kind != "base" and not args.no_export:
            export_paths[kind] = export(model, args.output, kind)
    print_table(results, args)

    summary = {
        "backend": keras.backend.backend(),
        "data": args.data,
        "quick": args.quick,
        "seed": args.seed,
        "models": args.models,
        "auxiliary_loss_weight": args.auxiliary_loss_weight,
    }
    for kind, row in results.items():
        summary[f"{kind}_auc"] = row["auc"]
        summary[f"{kind}_gauc"] = row["gauc"]
        if kind != "base" and "base" in results:
            summary[f"{kind}_rela_impr_auc"] = rela_impr(results, kind, "auc")
            summary[f"{kind}_rela_impr_gauc"] = rela_impr(results, kind, "gauc")
        summary[f"{kind}_seconds"] = seconds[kind]
    summary["model_paths"] = model_paths
    summary["export_paths"] = export_paths
    summary["seconds"] = round(time.time() - start, 1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
