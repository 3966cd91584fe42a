"""Training speed of the main example's models: keras-din against DeepCTR.

    python benchmarks/bench_fit.py                    # every backend and peer
    python benchmarks/bench_fit.py --backends torch jax --models din --peers
    python benchmarks/bench_fit.py --threads 1        # one thread everywhere
    python benchmarks/bench_fit.py --python torch=.tox/torch/bin/python \\
        --python tensorflow=.tox/tensorflow/bin/python \\
        --python jax=.tox/jax/bin/python              # one environment each
    tox -e bench-fit                                  # one env with everything

Trains `examples/train_din.py`'s models with keras-din on each backend of
`--backends` (`--models`: base, DIN, DIEN, built by the example's
`build_model` with `keras_din.models`), and the same DIN and DIEN with the
peers of `--peers`: DeepCTR-Torch 0.3.0 (`deepctr_torch.models.DIN` and
`DIEN`) and DeepCTR 0.9.4 (`deepctr.models.DIN` and `DIEN`, under tf-keras:
its worker sets `TF_USE_LEGACY_KERAS=1`). Every implementation trains on the
same arrays: the example's `--quick` synthetic data (MovieLens-like: item and
category ids of the candidate, a right-padded history of 20 of each, and for
DIEN the negative histories), made once and tiled to `--steps` batches of
`--batch-size` per epoch. One worker process per implementation and model,
one at a time.

Each worker fits `--warmup` steps first (tracing, compilation, allocation),
then `--epochs` epochs in one `fit` call, and reports the median of their
wall times (from the start of an epoch to its end, as the trainers' own epoch
callbacks see them: data handling included). The table gives steps per second
and the seconds an epoch of `--epoch-samples` samples takes at that rate
(189,000 by default: the issue's MovieLens training set), keras-din's time on
each backend relative to JAX, and each peer's time relative to keras-din on
its backend (DeepCTR-Torch to keras-din torch, DeepCTR to keras-din
TensorFlow): a ratio above 1 means keras-din trains faster.

`--threads N` sets `OMP_NUM_THREADS` and `MKL_NUM_THREADS` for every worker,
`torch.set_num_threads(N)` (keras-din torch, DeepCTR-Torch), TensorFlow's
intra- and inter-op thread pools (keras-din TensorFlow, DeepCTR) and XLA's
CPU threads (JAX, through `XLA_FLAGS`). Without it, each library keeps its
default.

Every worker runs with the interpreter that `--python FAMILY=PATH` names for
its family (tensorflow: keras-din TensorFlow and DeepCTR; torch: keras-din
torch and DeepCTR-Torch; jax), by default this one (`sys.executable`), as in
`tox -e bench-fit`, whose environment holds everything. The tree's
`keras_din` comes first on every worker's `PYTHONPATH`.

What is matched, for DIN and DIEN: the features (candidate item and
category, each with its own table of embedding size 8 that the history
shares: query and keys of 16), the attention unit's hidden sizes (32, 16)
with Dice, the MLP (64, 32) with Dice, one sigmoid output, binary
cross-entropy, Adam at learning rate 0.01, the same arrays in the same batch
size, shuffled each epoch, and no metric computed during training
(DeepCTR-Torch computes its metrics only when verbose, so no implementation
is given one). DIN: raw attention scores (no softmax), as the DIN paper.
DIEN: AUGRU evolution with softmax attention (`weight_normalization=True`,
the peers' `att_weight_normalization=True`), the auxiliary loss on the
negative histories at weight 1 (the peers' `use_negsampling=True`,
`alpha=1.0`, `gru_type="AUGRU"`; the peers' own default is a plain GRU
without the auxiliary loss), an interest extractor GRU as wide as its input
(16), and an auxiliary MLP of (100, 50).

What differs:

- Embedding regularization: keras-din uses the example's mini-batch aware
  L2 (0.01, on the ids of the batch, scaled by their frequencies); the
  peers' `l2_reg_embedding=0.01` penalises every row of every table at every
  step. Initializers differ too (the peers' `init_std`, Keras's defaults).
- Padding: keras-din marks padding by id 0 (and its layers may skip
  padded blocks of positions); the peers need a `seq_length` input
  (counted here from the ids) for DIEN, and DeepCTR-Torch for DIN too.
  DeepCTR's DIN masks id 0 with Keras masking. DeepCTR-Torch packs the
  valid positions of each history (`pack_padded_sequence`) and loops its
  AUGRU over them in Python; its extractor is `torch.nn.GRU`.
  DeepCTR-Torch's DIN also sum-pools every history in its base
  `input_from_feature_columns` and discards the result.
- DeepCTR-Torch's MLP cannot take Dice as it ships (its `DNN` builds Dice
  for 3-D inputs and asserts on the MLP's 2-D input): the benchmark swaps in
  DeepCTR-Torch's own `Dice(width, dim=2)` after building the model.
- DeepCTR's DIEN builds only in TensorFlow's graph mode: its worker calls
  `tf.compat.v1.disable_eager_execution()` (as DeepCTR's own examples do),
  so it trains as a TF1 graph in a session, with tf-keras's legacy Adam
  (the only one graph mode takes); DeepCTR's DIN and keras-din on TensorFlow
  train eagerly with `tf.function`. On TensorFlow 2.21 DeepCTR's DIEN does
  not build at all: its recurrence calls private TensorFlow names that are
  gone (`array_ops.stack`, `control_flow_ops.while_loop`, ...); the worker
  puts their public equivalents back (`restore_tensorflow_internals`).
- The auxiliary MLP's activations and the auxiliary loss's reduction follow
  each implementation's own reading of the paper.
- keras-din's base model has no peer here: its rows have no peer ratio.

The table's last column is the training loss of the last timed epoch, a
check that every implementation trains; it includes each one's own
regularization and auxiliary loss, so it is not comparable across them.
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_din.py"
BACKENDS = ("tensorflow", "torch", "jax")
MODELS = ("base", "din", "dien")
# Each peer: its backend family and the models it has.
PEERS = {"deepctr-torch": "torch", "deepctr": "tensorflow"}
PEER_MODELS = ("din", "dien")
LABELS = {
    "keras-din": "keras-din",
    "deepctr-torch": "DeepCTR-Torch",
    "deepctr": "DeepCTR",
}
# The example's sizes, which the peers are given too (issue 28's table).
EMBEDDING_DIM = 8
DNN_HIDDEN_UNITS = (64, 32)
ATT_HIDDEN_UNITS = (32, 16)
LEARNING_RATE = 0.01
L2 = 0.01


def load_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_din", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_args(example, batch_size):
    return example.parse_args(
        [
            "--quick",
            "--batch-size",
            str(batch_size),
            "--embedding-dim",
            str(EMBEDDING_DIM),
            "--learning-rate",
            str(LEARNING_RATE),
            "--l2",
            str(L2),
        ]
    )


def make_data(path, batch_size):
    """Saves the example's `--quick` training arrays and vocabulary sizes."""
    import numpy as np

    example = load_example()
    args = example_args(example, batch_size)
    (x_train, y_train), (x_test, _), histories = example.load_data(args)
    items, categories = example.vocabulary_sizes(x_train, x_test, histories)
    names = [
        "candidate",
        "candidate_category",
        "history",
        "history_category",
        "negative_history",
        "negative_history_category",
    ]
    arrays = {name: np.asarray(x_train[name], np.int32) for name in names}
    np.savez(
        path,
        y=np.asarray(y_train, np.float32),
        sizes=np.array([items, categories]),
        **arrays,
    )


def load_arrays(path, rows):
    """The saved arrays, tiled to `rows` rows, with the vocabulary sizes."""
    import numpy as np

    data = dict(np.load(path))
    sizes = tuple(int(s) for s in data.pop("sizes"))
    repeats = -(-rows // len(data["y"]))
    data = {
        k: np.tile(v, (repeats,) + (1,) * (v.ndim - 1))[:rows] for k, v in data.items()
    }
    return data, sizes


class EpochTimes:
    """The wall time of each epoch, from its start to its end."""

    def __init__(self):
        self.seconds = []
        self.losses = []
        self._began = None

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._began)
        self.losses.append(float((logs or {}).get("loss", "nan")))


def callback(base):
    """An `EpochTimes` that is also a callback of the trainer `base`."""

    class Timer(EpochTimes, base):
        def __init__(self):
            base.__init__(self)
            EpochTimes.__init__(self)

    return Timer()


def set_tensorflow_threads(threads):
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def set_torch_threads(threads):
    import torch

    if threads:
        torch.set_num_threads(threads)


def warm_up_then_time(model, x, y, options, timer):
    """Fits `--warmup` batches, then `--epochs` epochs timed by `timer`: the
    same two `fit` calls for every implementation (Keras-style `fit`)."""
    warm = options.warmup * options.batch_size
    model.fit(
        {k: v[:warm] for k, v in x.items()},
        y[:warm],
        batch_size=options.batch_size,
        verbose=0,
    )
    model.fit(
        x,
        y,
        batch_size=options.batch_size,
        epochs=options.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer],
    )


def fit_keras_din(kind, data, sizes, options):
    """`(timer, backend)` for keras-din's `kind` on Keras's backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        set_tensorflow_threads(options.threads)
    elif backend == "torch":
        set_torch_threads(options.threads)
    example = load_example()
    args = example_args(example, options.batch_size)
    keras.utils.set_random_seed(0)
    length = data["history"].shape[1]
    frequencies = {k: v for k, v in data.items() if k != "y"}
    model = example.build_model(kind, frequencies, length, sizes, args)
    # The loss alone, as the peers train (see the module's docstring). An
    # empty `metrics`, as `compile` keeps the example's AUC when given none.
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=[],
    )
    x = example.features(data, model)
    timer = callback(keras.callbacks.Callback)
    warm_up_then_time(model, x, data["y"], options, timer)
    return timer, backend


def peer_inputs(data, kind):
    """The peers' inputs: their names, and the history lengths they need."""
    inputs = {
        "candidate": data["candidate"].reshape(-1),
        "candidate_category": data["candidate_category"].reshape(-1),
        "hist_candidate": data["history"],
        "hist_candidate_category": data["history_category"],
        "seq_length": (data["history"] != 0).sum(axis=1).astype("int32"),
    }
    if kind == "dien":
        inputs["neg_hist_candidate"] = data["negative_history"]
        inputs["neg_hist_candidate_category"] = data["negative_history_category"]
    return inputs


def peer_columns(module, kind, sizes, length, with_length):
    """The peers' feature columns (DeepCTR and DeepCTR-Torch share the API)."""
    names = ("candidate", "candidate_category")
    columns = [
        module.SparseFeat(name, size, embedding_dim=EMBEDDING_DIM)
        for name, size in zip(names, sizes, strict=True)
    ]
    prefixes = ["hist_"] + (["neg_hist_"] if kind == "dien" else [])
    for prefix in prefixes:
        for name, size in zip(names, sizes, strict=True):
            sparse = module.SparseFeat(
                prefix + name, size, embedding_dim=EMBEDDING_DIM, embedding_name=name
            )
            columns.append(
                module.VarLenSparseFeat(
                    sparse,
                    maxlen=length,
                    length_name="seq_length" if with_length else None,
                )
            )
    return columns, list(names)


def peer_options(kind):
    """The keyword arguments of the peers' `DIN` or `DIEN`."""
    options = dict(
        dnn_hidden_units=DNN_HIDDEN_UNITS,
        dnn_activation="dice",
        att_activation="dice",
        l2_reg_embedding=L2,
        seed=0,
    )
    if kind == "din":
        options.update(att_hidden_size=ATT_HIDDEN_UNITS, att_weight_normalization=False)
    else:
        options.update(
            att_hidden_units=ATT_HIDDEN_UNITS,
            att_weight_normalization=True,
            gru_type="AUGRU",
            use_negsampling=True,
            alpha=1.0,
        )
    return options


def fit_deepctr_torch(kind, data, sizes, options):
    import deepctr_torch.callbacks
    import deepctr_torch.inputs
    import deepctr_torch.models
    import torch
    from deepctr_torch.layers.activation import Dice

    set_torch_threads(options.threads)
    torch.manual_seed(0)
    length = data["history"].shape[1]
    columns, history = peer_columns(
        deepctr_torch.inputs, kind, sizes, length, with_length=True
    )
    builder = deepctr_torch.models.DIN if kind == "din" else deepctr_torch.models.DIEN
    model = builder(columns, history, device="cpu", **peer_options(kind))
    # Its MLP builds Dice for 3-D inputs (`DNN`'s `dice_dim=3`), which fails
    # on the MLP's 2-D input: its own Dice for 2-D inputs instead.
    model.dnn.activation_layers = torch.nn.ModuleList(
        Dice(width, dim=2) for width in DNN_HIDDEN_UNITS
    )
    model.compile(
        torch.optim.Adam(model.parameters(), lr=LEARNING_RATE), "binary_crossentropy"
    )
    x = peer_inputs(data, kind)
    timer = callback(deepctr_torch.callbacks.Callback)
    # Its fit prints the device and the sample counts.
    with contextlib.redirect_stdout(io.StringIO()):
        warm_up_then_time(model, x, data["y"], options, timer)
    return timer, "torch"


def restore_tensorflow_internals(tf):
    """Puts back the private TensorFlow names that DeepCTR's DIEN recurrence
    (`deepctr/contrib/rnn_v2.py`) calls and TensorFlow 2.21 no longer has,
    as their public equivalents; without them its `DIEN` fails to build."""
    from tensorflow.python.ops import array_ops
    from tensorflow.python.ops import control_flow_ops
    from tensorflow.python.ops import rnn_cell_impl
    from tensorflow.python.util import nest

    def like_rnn_cell(cell):
        return callable(cell) and all(
            hasattr(cell, name) for name in ("output_size", "state_size")
        )

    missing = {
        array_ops: {"stack": tf.stack, "unstack": tf.unstack},
        control_flow_ops: {
            "cond": tf.compat.v1.cond,
            "while_loop": tf.compat.v1.while_loop,
            "Assert": tf.debugging.Assert,
        },
        nest: {"is_sequence": nest.is_nested},
        rnn_cell_impl: {"_like_rnncell": like_rnn_cell},
    }
    for module, names in missing.items():
        for name, value in names.items():
            if not hasattr(module, name):
                setattr(module, name, value)


def fit_deepctr(kind, data, sizes, options):
    import tensorflow as tf

    if kind == "dien":
        # DeepCTR's DIEN initializes its variables in a TF1 session.
        tf.compat.v1.disable_eager_execution()
        restore_tensorflow_internals(tf)
        if options.threads:
            config = tf.compat.v1.ConfigProto(
                intra_op_parallelism_threads=options.threads,
                inter_op_parallelism_threads=options.threads,
            )
            tf.compat.v1.keras.backend.set_session(tf.compat.v1.Session(config=config))
    else:
        set_tensorflow_threads(options.threads)
    import deepctr.feature_column
    import deepctr.models

    tf.random.set_seed(0)
    length = data["history"].shape[1]
    columns, history = peer_columns(
        deepctr.feature_column, kind, sizes, length, with_length=kind == "dien"
    )
    builder = deepctr.models.DIN if kind == "din" else deepctr.models.DIEN
    model = builder(columns, history, **peer_options(kind))
    # In graph mode tf-keras takes only its legacy optimizers.
    optimizers = tf.keras.optimizers.legacy if kind == "dien" else tf.keras.optimizers
    model.compile(optimizers.Adam(LEARNING_RATE), "binary_crossentropy")
    x = peer_inputs(data, kind)
    if kind == "din":
        del x["seq_length"]
    x = {k: v.reshape(-1, 1) if v.ndim == 1 else v for k, v in x.items()}
    timer = callback(tf.keras.callbacks.Callback)
    warm_up_then_time(model, x, data["y"], options, timer)
    mode = "graph" if kind == "dien" else "eager"
    return timer, f"tensorflow ({mode})"


FIT = {
    "keras-din": fit_keras_din,
    "deepctr-torch": fit_deepctr_torch,
    "deepctr": fit_deepctr,
}


def worker(options):
    data, sizes = load_arrays(options.data, options.steps * options.batch_size)
    timer, backend = FIT[options.implementation](options.model, data, sizes, options)
    seconds = statistics.median(timer.seconds)
    return {
        "implementation": options.implementation,
        "backend": backend,
        "model": options.model,
        "seconds_per_epoch": seconds,
        "steps_per_second": options.steps / seconds,
        "epoch_seconds": timer.seconds,
        "losses": timer.losses,
    }


def python_map(values):
    """`{family: interpreter}` from `--python FAMILY=PATH` values."""
    pythons = {}
    for value in values:
        family, _, path = value.partition("=")
        if family not in BACKENDS or not path:
            raise SystemExit(
                f"--python takes FAMILY=PATH with FAMILY one of {', '.join(BACKENDS)}. "
                f"Received: {value!r}"
            )
        pythons[family] = path
    return pythons


def worker_env(family, implementation, threads):
    env = {
        **os.environ,
        "KERAS_BACKEND": family,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    }
    env.pop("TF_USE_LEGACY_KERAS", None)
    if implementation == "deepctr":
        env["TF_USE_LEGACY_KERAS"] = "1"
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        if family == "jax":
            multi = "true" if threads > 1 else "false"
            env["XLA_FLAGS"] = (
                f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen={multi} "
                f"intra_op_parallelism_threads={threads}"
            ).strip()
    return env


def runs(args):
    """`(implementation, family, model)` of every worker, in order."""
    found = []
    for model in args.models:
        found += [("keras-din", backend, model) for backend in args.backends]
        if model in PEER_MODELS:
            found += [(peer, PEERS[peer], model) for peer in args.peers]
    return found


def ratio(seconds, reference):
    return f"{seconds / reference:.2f}" if reference else "-"


def print_table(rows, args):
    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    print(
        f"\nfit, batch {args.batch_size}, {threads}: median of {args.epochs} "
        f"epochs of {args.steps} steps after {args.warmup} warm-up steps; "
        f"s/epoch for {args.epoch_samples:,} samples at that rate"
    )
    print(
        "x JAX: this keras-din time / keras-din JAX's; "
        "peer / keras-din: the peer's time / keras-din's on its backend "
        "(above 1: keras-din is faster)"
    )
    header = (
        f"{'implementation':<14} {'backend':<19} {'model':<5} {'steps/s':>8} "
        f"{'s/epoch':>8} {'x JAX':>6} {'peer / keras-din':>17} {'loss':>6}"
    )
    print(header)
    print("-" * len(header))
    ours = {
        (r["backend"], r["model"]): r["seconds_per_epoch"]
        for r in rows
        if r["implementation"] == "keras-din"
    }
    steps_per_epoch = args.epoch_samples / args.batch_size
    for row in rows:
        seconds = row["seconds_per_epoch"]
        family = row["backend"].split()[0]
        own = row["implementation"] == "keras-din"
        jax = ours.get(("jax", row["model"])) if own else None
        mine = None if own else ours.get((family, row["model"]))
        print(
            f"{LABELS[row['implementation']]:<14} {row['backend']:<19} "
            f"{row['model']:<5} {row['steps_per_second']:>8.1f} "
            f"{steps_per_epoch / row['steps_per_second']:>8.1f} "
            f"{ratio(seconds, jax):>6} {ratio(seconds, mine):>17} "
            f"{row['losses'][-1]:>6.3f}"
        )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backends", nargs="*", default=list(BACKENDS), choices=BACKENDS
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--peers",
        nargs="*",
        default=list(PEERS),
        choices=list(PEERS),
        help="the peers to train DIN and DIEN with (none: --peers alone)",
    )
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--epoch-samples",
        type=int,
        default=189_000,
        help="the epoch size that the s/epoch column is given for",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads of every worker (OMP_NUM_THREADS, torch, TensorFlow, XLA)",
    )
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="FAMILY=PATH",
        help="the interpreter of a backend family's workers (tensorflow, torch, "
        "jax); default: this one",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--make-data", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--implementation", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_data:
        make_data(args.data, args.batch_size)
        return
    if args.worker:
        Path(args.worker_out).write_text(json.dumps(worker(args)))
        return
    pythons = python_map(args.python)
    todo = runs(args)
    if not todo:
        parser.error("nothing to run: no --backends, and no --peers for the models")
    common = [
        "--steps",
        str(args.steps),
        "--epochs",
        str(args.epochs),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.threads:
        common += ["--threads", str(args.threads)]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "data.npz")
        family = todo[0][1]
        command = [pythons.get(family, sys.executable), __file__, "--make-data"]
        command += ["--data", data, "--batch-size", str(args.batch_size)]
        if subprocess.run(command, env=worker_env(family, "", None)).returncode:
            sys.exit("making the data failed")
        for implementation, family, model in todo:
            out = os.path.join(directory, f"{implementation}-{family}-{model}.json")
            command = [pythons.get(family, sys.executable), __file__, "--worker"]
            command += ["--implementation", implementation, "--model", model]
            command += ["--data", data, "--worker-out", out, *common]
            env = worker_env(family, implementation, args.threads)
            began = time.perf_counter()
            if subprocess.run(command, env=env).returncode != 0:
                sys.exit(f"the {implementation} {family} {model} worker failed")
            rows.append(json.loads(Path(out).read_text()))
            print(
                f"{implementation} {family} {model}: "
                f"{rows[-1]['seconds_per_epoch']:.3f} s per {args.steps} steps "
                f"({time.perf_counter() - began:.0f} s in all)",
                flush=True,
            )
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
