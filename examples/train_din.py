"""Train DIN, DIEN, BST, SIM, ETA and the DIN paper's base model; compare them.

The models are built with `keras_din.models` from the same feature specs.
Every model embeds the candidate item and every history item (item id plus
category id, concatenated), turns the history into one interest vector, and
feeds `[candidate, interest]` to an MLP that predicts the click:

- base: sum pooling of the history, PReLU MLP (the paper's Embedding&MLP);
- DIN: `AttentionSequencePoolingLayer` with a Dice activation unit, Dice MLP;
- DIEN: `InterestExtractor` (a GRU, with the auxiliary loss on the data's
  negative histories) and `InterestEvolution` (AUGRU driven by the attention
  to the candidate), Dice MLP;
- BST: `BehaviorSequenceTransformer` (one Transformer block over the history
  and the candidate, with recency embeddings), leaky ReLU MLP;
- SIM: `SearchBasedInterest` (the `--top-k` behaviours of the history most
  relevant to the candidate, by soft search, trained through the paper's
  auxiliary click model, or, `sim_hard`, the latest of the candidate's
  category; then multi-head target attention over them), Dice MLP;
- ETA: the same layer searching by SimHash (the `--top-k` behaviours whose
  signatures are nearest the candidate's), Dice MLP.

All use `MiniBatchAwareEmbedding` (the paper's mini-batch aware
regularization) on the same data. The script prints a table of AUC, GAUC
(user-weighted AUC) and RelaImpr over base, saves each trained model as
`<model>.keras` in `--output`, exports the attention models for serving with
`--export`, draws the ROC curves and DIN's attention weights with
`--plot FILE.png`, and prints one JSON object with the results as its last
line.

`--max-length N` trains on histories of up to N behaviours the way long
histories are meant to be handled (the guide "Long histories"): each user's
sequence is stored once (the loaders' `layout="users"`), and
`keras_din.datasets.HistoryBatches` builds every batch's histories as it is
needed, the mini-batch aware frequencies included; only the test samples are
expanded. Without it, every sample holds its own padded history, at the
loader's `max_history`.

    KERAS_BACKEND=jax python examples/train_din.py --quick
    KERAS_BACKEND=jax python examples/train_din.py --quick --models din,bst,sim,sim_hard
    KERAS_BACKEND=jax python examples/train_din.py --quick --max-length 500
    KERAS_BACKEND=torch python examples/train_din.py --data movielens \\
        --data-path ml-1m/ratings.dat
    KERAS_BACKEND=tensorflow python examples/train_din.py --data amazon \\
        --data-path reviews_Electronics_5.json
"""

import argparse
import importlib.util
import json
import math
import os
import sys
import time

import keras
import numpy as np

import keras_din
import keras_din.export
from keras_din import datasets
from keras_din import metrics
from keras_din import models

# The inputs of each table: items and categories.
ITEMS = ("candidate", "history", "negative_history")
CATEGORIES = ("candidate_category", "history_category", "negative_history_category")
MODELS = ("base", "din", "dien", "bst", "sim", "sim_hard", "eta")


def load_data(args):
    """`(x_train, y_train), (x_test, y_test), histories` of the chosen data
    set: `histories` is the `UserHistories` of `--max-length` (the samples
    refer to it), else `None` (the samples hold their histories)."""
    options = dict(seed=args.seed)
    if args.max_length:
        options.update(max_history=args.max_length, layout="users")
    if args.data == "synthetic":
        data = datasets.load_synthetic(
            num_users=1500 if args.quick else 10000, **options
        )
    else:
        options.update(
            max_samples_per_user=5 if args.quick else None,
            test_targets_per_user=args.test_targets,
        )
        if args.data == "movielens":
            data = datasets.load_movielens(args.data_path, **options)
        else:
            data = datasets.load_amazon(
                args.data_path, meta_path=args.meta_path, **options
            )
    return data if args.max_length else (*data, None)


def vocabulary_sizes(x_train, x_test, histories):
    """`(items, categories)`: the largest id anywhere, plus one for the
    padding 0."""
    items = [x[name] for x in (x_train, x_test) for name in ITEMS if name in x]
    categories = [x[n] for x in (x_train, x_test) for n in CATEGORIES if n in x]
    if histories is not None:
        items += [histories.items, histories.negative_items]
        categories.append(histories.item_categories)
    return tuple(
        1 + max(int(np.max(ids)) for ids in arrays if np.size(ids))
        for arrays in (items, categories)
    )


def build_model(kind, frequencies, max_length, sizes, args):
    """The model `kind` (one of `MODELS`), compiled, its mini-batch aware
    frequencies counted over `frequencies` (the training data)."""
    num_items, num_categories = sizes
    features = [
        models.Feature("candidate", num_items, args.embedding_dim),
        models.Feature("candidate_category", num_categories, args.embedding_dim),
    ]
    history = models.BehaviorSequence(
        "history",
        {"history": "candidate", "history_category": "candidate_category"},
        max_length=max_length,
        negatives={
            "history": "negative_history",
            "history_category": "negative_history_category",
        },
    )
    shared = dict(
        dnn_hidden_units=(64, 32),
        embedding_l2=args.l2,
        frequencies=frequencies,
        name=kind,
    )
    if kind == "base":
        # PReLU slopes starting at 0 (Keras's), not the builder's 0.25: the
        # stronger base here (torch --quick GAUC 0.783 against 0.767).
        prelu = keras.layers.PReLU()
        model = models.BaseModel(features, [history], dnn_activation=prelu, **shared)
    elif kind == "din":
        model = models.DIN(features, [history], att_hidden_units=(32, 16), **shared)
    elif kind == "bst":
        # The paper's eight heads where the embedding size allows them.
        heads = math.gcd(8, 2 * args.embedding_dim)
        model = models.BST(features, [history], num_heads=heads, **shared)
    elif kind == "eta":
        model = models.ETA(features, [history], top_k=args.top_k, **shared)
    elif kind in ("sim", "sim_hard"):
        hard = kind == "sim_hard"
        model = models.SIM(
            features,
            [history],
            search="hard" if hard else "soft",
            search_feature="candidate_category" if hard else None,
            top_k=args.top_k,
            **shared,
        )
    else:  # dien
        # The builder's softmax attention (the DIEN paper's): with raw
        # scores the AUGRU's states are unbounded, and training diverged on
        # MovieLens.
        model = models.DIEN(
            features,
            [history],
            att_hidden_units=(32, 16),
            auxiliary_loss_weight=args.auxiliary_loss_weight,
            **shared,
        )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def evaluate(model, x_test, y_test):
    """`({"auc": ..., "gauc": ...}, scores)` on the test data."""
    scores = model.predict(features(x_test, model), batch_size=4096, verbose=0)
    scores = scores.reshape(-1)
    return {
        "auc": metrics.auc(y_test, scores),
        "gauc": metrics.gauc(x_test["user"], y_test, scores),
    }, scores


def features(x, model):
    """The arrays of `x` that `model` takes (the data hold others too)."""
    return {name: x[name] for name in model.input}


def rela_impr(results, kind, metric):
    """RelaImpr of `kind` over base, or None when base was not trained."""
    if "base" not in results:
        return None
    return metrics.rela_impr(results[kind][metric], results["base"][metric])


def print_table(results, args):
    width = max(6, *(len(kind) for kind in results))
    print()
    print(
        f"{'model':<{width}} {'AUC':>7} {'GAUC':>7} {'RelaImpr(AUC)':>14} "
        f"{'RelaImpr(GAUC)':>15} {'aux. loss weight':>17}"
    )
    for kind, row in results.items():
        impr = [rela_impr(results, kind, metric) for metric in ("auc", "gauc")]
        impr = [f"{value:.2%}" if value is not None else "-" for value in impr]
        weight = f"{args.auxiliary_loss_weight:g}" if kind == "dien" else "-"
        print(
            f"{kind if kind == 'base' else kind.upper():<{width}} {row['auc']:>7.4f} "
            f"{row['gauc']:>7.4f} {impr[0]:>14} {impr[1]:>15} {weight:>17}"
        )
    print()


def roc_curve(labels, scores):
    """False and true positive rates at every threshold, from (0, 0)."""
    order = np.argsort(-scores, kind="stable")
    positives = np.cumsum(labels[order])
    negatives = np.cumsum(1 - labels[order])
    return (
        np.concatenate([[0.0], negatives / negatives[-1]]),
        np.concatenate([[0.0], positives / positives[-1]]),
    )


def attention_weights(model, x):
    """The DIN model's attention weights `(N, T)` over the histories of `x`:
    its pooling layer's scores, from a copy of it with `return_score=True`."""
    layer = model.get_layer("history_attention")
    # The layer's input tensors: the query, the keys, then the mask.
    query, keys = keras.Model(model.input, layer.input[:2]).predict(x, verbose=0)
    scorer = keras_din.AttentionSequencePoolingLayer.from_config(
        {**layer.get_config(), "return_score": True}
    )
    scorer.build([query.shape, keys.shape])
    scorer.set_weights(layer.get_weights())
    valid = (x["history"] != 0) & (x["history_category"] != 0)
    return keras.ops.convert_to_numpy(scorer([query, keys], mask=valid))[:, 0]


def plot(path, scores, y_test, din, x_test):
    """ROC curves of every model and, with DIN, the attention weights of one
    test user's history for their clicked candidate (DIN paper, figure 5)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(
        1, 2 if din else 1, figsize=(13 if din else 6, 5), squeeze=False
    )
    roc = axes[0, 0]
    for kind, kind_scores in scores.items():
        fpr, tpr = roc_curve(y_test, kind_scores)
        auc = metrics.auc(y_test, kind_scores)
        label = kind if kind == "base" else kind.upper()
        roc.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate")
    roc.set_title("ROC on the test samples")
    roc.legend(loc="lower right")
    if din:
        # The first clicked test candidate whose history is 8 or more long.
        lengths = (x_test["history"] != 0).sum(axis=1)
        row = int(np.flatnonzero((y_test == 1) & (lengths >= 8))[0])
        sample = {name: x[row : row + 1] for name, x in features(x_test, din).items()}
        weights = attention_weights(din, sample)[0, : lengths[row]]
        categories = x_test["history_category"][row, : lengths[row]]
        target = x_test["candidate_category"][row, 0]
        bars = axes[0, 1]
        bars.bar(
            np.arange(lengths[row]),
            weights,
            color=np.where(categories == target, "tab:red", "tab:blue"),
        )
        bars.set_xticks(
            np.arange(lengths[row]),
            [
                f"{item}\n{cat}"
                for item, cat in zip(x_test["history"][row], categories, strict=False)
            ],
            fontsize=7,
        )
        bars.set(xlabel="the user's history, oldest first: item id, category")
        bars.set(ylabel="attention weight (the unit's score, no softmax)")
        bars.set_title(
            f"DIN's attention to candidate {x_test['candidate'][row, 0]} "
            f"(category {target}) of test user {x_test['user'][row]}\n"
            "red: items of the candidate's category"
        )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    print(f"plotted {path}")


def save(model, output, kind):
    path = os.path.join(output, f"{kind}.keras")
    model.save(path)
    print(f"saved {path}")
    return path


# What each backend's export (the first of keras_din.export.FORMATS) imports,
# and the extra that installs it.
EXPORT_NEEDS = {
    "tensorflow": (("tensorflow",), "tensorflow-cpu"),
    "jax": (("tensorflow",), "tensorflow-cpu"),
    "torch": (("onnx", "onnxscript"), "onnx"),
}


def export_needs():
    """What `--export` lacks on this backend, as `"onnx: pip install
    ..."`, or `None` where it has all it needs."""
    modules, extra = EXPORT_NEEDS[keras.backend.backend()]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f'{" and ".join(missing)}: pip install "keras-din[{extra}]"'


def export(model, output, kind):
    """Exports for serving in the backend's first format (SavedModel on
    TensorFlow and JAX, ONNX on torch)."""
    export_format = keras_din.export.FORMATS[keras.backend.backend()][0]
    suffix = {"tf_saved_model": "_export", "onnx": ".onnx"}[export_format]
    path = os.path.join(output, kind + suffix)
    model.export(path, format=export_format, verbose=False)
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
        help="movielens: the ratings file (u.data, ratings.dat or ratings.csv) or "
        "its folder; amazon: the reviews file or its folder; omitted: download "
        "with keras.utils.get_file",
    )
    parser.add_argument(
        "--meta-path", help="amazon: the metadata file (default: beside the reviews)"
    )
    parser.add_argument(
        "--test-targets",
        type=int,
        default=1,
        help="real data: how many of each user's last targets are test targets",
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
    parser.add_argument(
        "--max-length",
        type=int,
        help="histories of up to this many behaviours, each user's stored once "
        "and batches built as needed (default: every sample holds its history, "
        "at the loader's length)",
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
    parser.add_argument(
        "--top-k",
        type=int,
        default=50,
        help="SIM and ETA: the behaviours kept per candidate (all of a shorter "
        "history)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="output", help="folder for the models")
    parser.add_argument(
        "--export",
        action="store_true",
        help="also export the models but base for serving: a SavedModel on TensorFlow "
        "and JAX (needs TensorFlow), ONNX on torch (needs the onnx extra)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the ROC curves and DIN's attention weights for one test user "
        "(needs matplotlib: pip install 'keras-din[plot]')",
    )
    args = parser.parse_args(argv)
    if args.model is not None:
        args.models = list(dict.fromkeys(["base", args.model]))
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max-length must be at least 1. Received: {args.max_length}")
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1. Received: {args.top_k}")
    if args.epochs is None:
        args.epochs = 3 if args.quick else 5
    if args.batch_size is None:
        args.batch_size = 512 if args.quick else 256
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'keras-din[plot]'")
    if args.export and export_needs():
        parser.error(
            f"--export on the {keras.backend.backend()} backend needs {export_needs()}"
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}")
    try:
        (x_train, y_train), (x_test, y_test), histories = load_data(args)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    sizes = vocabulary_sizes(x_train, x_test, histories)
    if histories is None:
        max_length = x_train["history"].shape[1]
        frequencies = x_train
    else:
        max_length = histories.max_length
        frequencies = datasets.HistoryBatches(x_train, y_train, histories, 4096)
        x_test = histories.expand(x_test)  # the test samples, materialised
    print(
        f"data: {args.data}, {len(y_train)} training and {len(y_test)} test "
        f"samples, {sizes[0] - 1} items, {sizes[1] - 1} categories, "
        f"{len(np.unique(x_test['user']))} test users"
    )

    results, seconds, scores, trained = {}, {}, {}, {}
    model_paths, export_paths = {}, {}
    os.makedirs(args.output, exist_ok=True)
    for kind in args.models:
        keras.utils.set_random_seed(args.seed)
        print(f"training {kind}")
        began = time.time()
        model = build_model(kind, frequencies, max_length, sizes, args)
        if histories is None:
            model.fit(
                features(x_train, model),
                y_train,
                batch_size=args.batch_size,
                epochs=args.epochs,
                shuffle=True,
            )
        else:
            batches = datasets.HistoryBatches(
                x_train,
                y_train,
                histories,
                batch_size=args.batch_size,
                keys=list(model.input),
                shuffle=True,
                seed=args.seed,
            )
            model.fit(batches, epochs=args.epochs)
        seconds[kind] = round(time.time() - began, 1)
        results[kind], scores[kind] = evaluate(model, x_test, y_test)
        trained[kind] = model
        model_paths[kind] = save(model, args.output, kind)
        if kind != "base" and args.export:
            export_paths[kind] = export(model, args.output, kind)
    exportable = [kind.upper() for kind in args.models if kind != "base"]
    if exportable and not args.export:
        needs = export_needs()
        print(
            f"to export {', '.join(exportable)} for serving too, add --export"
            + (f" (which needs {needs})" if needs else "")
        )
    print_table(results, args)
    if args.plot:
        plot(args.plot, scores, y_test, trained.get("din"), x_test)

    summary = {
        "backend": keras.backend.backend(),
        "data": args.data,
        "quick": args.quick,
        "max_length": int(max_length),
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
    summary["plot_path"] = args.plot
    summary["seconds"] = round(time.time() - start, 1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
