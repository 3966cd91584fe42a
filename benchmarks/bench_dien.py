"""DIEN's interest layers, side by side: keras-din, DeepCTR-Torch and a
`keras.layers.GRU` formulation.

    python benchmarks/bench_dien.py                # torch and JAX workers
    python benchmarks/bench_dien.py --quick        # batch 256, 3 repeats
    python benchmarks/bench_dien.py --sweep --repeats 3 --torch-threads 1
    python benchmarks/bench_dien.py --backends tensorflow --sizes t50 t200 t1000

The work is DIEN's interest part at the paper's sizes (batch 1024, history
50, embeddings 32, GRU width 32; history lengths uniform in [1, 50]): the
interest extractor (a GRU over the history) with the auxiliary loss (an MLP
100-50 on `[h_t, e_{t+1}]` and on the negatives), then the AUGRU interest
evolution, whose attention (64-16, softmax over the valid positions) scores
the states against one candidate. A training step computes the gradients of
`sum(output) + auxiliary loss` to every weight; inference computes the
output (no auxiliary loss).

Sizes (`--sizes`): `paper` (the default) and the history-length sweep of
`bench_attention.py`, `t50`, `t200`, `t1000`, `t5000`, `t10000` (`--sweep`
runs all five): B = 1024, 256, 64, 16, 8, so B*T stays between 51,200 and
80,000 positions. The recurrences take T steps one after the other whatever
B is, so at small B their time per step grows with T.

- torch worker, eager: keras-din's `InterestExtractor` and
  `InterestEvolution`, against DeepCTR-Torch 0.3.0's `InterestExtractor`
  (`use_neg=True`) and `InterestEvolving("AUGRU")`, which pack the sequences
  (`pack_padded_sequence`) and run `nn.GRU` and their `AUGRUCell`.
- JAX worker, `jax.jit`: keras-din against the straightforward Keras
  formulation: `keras.layers.GRU(return_sequences=True)` over the masked
  history, the same auxiliary MLP from `Dense` layers, and
  `keras.layers.RNN` over an AUGRU cell written with `keras.ops`; both use
  keras-din's attention layer, so what differs is the recurrences and the
  auxiliary loss.
- tensorflow worker (not run by default), `tf.function` and, with
  `--tf-xla`, `tf.function(jit_compile=True)`: keras-din alone (its
  recurrence is a `tf.while_loop` bounded by T, so its first call, the
  "first call" column, takes seconds at every T).

One process per backend; in a worker every implementation runs on the same
inputs, interleaved repetition by repetition, and the median is reported,
with its ratio to keras-din's median in the same run (above 1: keras-din is
faster). Each call is warmed up once (its time is the "first call" column:
compilation under `jax.jit` and `tf.function`). Peak memory of a training
step is measured as in `bench_attention.py` (the rise of the peak resident
set, in a second process per backend with `MALLOC_MMAP_THRESHOLD_=65536`;
TensorFlow's allocator keeps its pool, so its figure means little).
`--torch-threads N` sets torch's intra-op threads.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_attention import SWEEP
from bench_attention import peak_rows
from bench_attention import peak_rss_rise
from bench_attention import print_sweep_tables

DIM = 32
SIZES = {
    "paper": {"batch": 1024, "history": 50, "dim": DIM},
    **{
        name: {"batch": size["batch"], "history": size["history"], "dim": DIM}
        for name, size in SWEEP.items()
    },
}
QUICK_SIZES = {
    name: {**size, "batch": max(2, size["batch"] // 4)} for name, size in SIZES.items()
}
AUXILIARY_UNITS = (100, 50)
ATTENTION_UNITS = (64, 16)


def make_case(size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    b, t, e = size["batch"], size["history"], size["dim"]
    query = rng.normal(size=(b, e)).astype("float32")
    keys = rng.normal(size=(b, t, e)).astype("float32")
    negatives = rng.normal(size=(b, t, e)).astype("float32")
    lengths = rng.integers(1, t + 1, size=(b,)).astype("int32")
    return query, keys, negatives, lengths


# --------------------------------------------------------------------------
# keras-din and the keras.layers.GRU formulation, as stateless functions.


def fixed(layer):
    """The layer's non-trainable values (a GRU's seed state), held fixed."""
    return [v.value for v in layer.non_trainable_variables]


def keras_din_model():
    import keras_din

    extractor = keras_din.InterestExtractor(
        auxiliary_loss_weight=1.0, auxiliary_hidden_units=AUXILIARY_UNITS, seed=0
    )
    evolution = keras_din.InterestEvolution(
        gru_type="AUGRU", att_hidden_units=ATTENTION_UNITS, seed=1
    )

    def forward(values, query, keys, negatives, lengths, training):
        split = len(extractor.trainable_variables)
        states, _, losses = extractor.stateless_call(
            values[:split],
            fixed(extractor),
            [keys, lengths],
            negative_keys=negatives,
            training=training,
            return_losses=True,
        )
        output, _ = evolution.stateless_call(
            values[split:],
            fixed(evolution),
            [query, states, lengths],
            training=training,
        )
        return output, sum(losses) if losses else 0.0

    def build(query, keys, negatives, lengths):
        states = extractor([keys, lengths], negative_keys=negatives)
        evolution([query, states, lengths])
        return extractor.trainable_variables + evolution.trainable_variables

    return build, forward


def keras_gru_model():
    import keras
    from keras import ops

    import keras_din

    class AUGRUCell(keras.layers.Layer):
        """A GRU cell whose update gate is scaled by the step's attention,
        the last feature of its input."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            dim = input_shape[-1] - 1
            self.kernel = self.add_weight(shape=(dim, 3 * self.units))
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, 3 * self.units), initializer="orthogonal"
            )
            self.bias = self.add_weight(shape=(2, 3 * self.units), initializer="zeros")

        def call(self, inputs, states):
            previous = states[0] if isinstance(states, (list, tuple)) else states
            x, score = inputs[:, :-1], inputs[:, -1:]
            x = ops.matmul(x, self.kernel) + self.bias[0]
            h = ops.matmul(previous, self.recurrent_kernel) + self.bias[1]
            x_r, x_u, x_n = ops.split(x, 3, axis=-1)
            h_r, h_u, h_n = ops.split(h, 3, axis=-1)
            reset = ops.sigmoid(x_r + h_r)
            update = score * ops.sigmoid(x_u + h_u)
            candidate = ops.tanh(x_n + reset * h_n)
            state = (1.0 - update) * previous + update * candidate
            return state, [state]

    dim = DIM
    gru = keras.layers.GRU(dim, return_sequences=True)
    auxiliary = [keras.layers.Dense(u, activation="sigmoid") for u in AUXILIARY_UNITS]
    auxiliary.append(keras.layers.Dense(1))
    attention = keras_din.AttentionSequencePoolingLayer(
        att_hidden_units=ATTENTION_UNITS, return_score=True
    )
    evolution = keras.layers.RNN(AUGRUCell(dim))
    layers = [gru, *auxiliary, attention, evolution]

    def auxiliary_loss(values, states, keys, negatives, valid):
        pair = ops.logical_and(valid[:, :-1], valid[:, 1:])
        total = 0.0
        for following, label in ((keys, 1.0), (negatives, 0.0)):
            x = ops.concatenate([states[:, :-1], following[:, 1:]], axis=-1)
            for layer, (kernel, bias) in zip(auxiliary, values, strict=True):
                x = ops.matmul(x, kernel) + bias
                if layer is not auxiliary[-1]:
                    x = ops.sigmoid(x)
            loss = ops.binary_crossentropy(
                ops.full_like(x[..., 0], label), x[..., 0], from_logits=True
            )
            total = total + ops.sum(ops.where(pair, loss, 0.0))
        count = 2.0 * ops.sum(ops.cast(pair, "float32"))
        return total / ops.maximum(count, 1.0)

    def forward(values, query, keys, negatives, lengths, training):
        values = list(values)
        taken = {}
        for layer in layers:
            count = len(layer.trainable_variables)
            taken[layer], values = values[:count], values[count:]
        valid = ops.arange(keys.shape[1])[None, :] < lengths[:, None]
        states, _ = gru.stateless_call(taken[gru], fixed(gru), keys, mask=valid)
        loss = 0.0
        if training:
            pairs = [taken[layer] for layer in auxiliary]
            loss = auxiliary_loss(pairs, states, keys, negatives, valid)
        scores, _ = attention.stateless_call(
            taken[attention], fixed(attention), [query[:, None], states], mask=valid
        )
        steps = ops.concatenate([states, ops.transpose(scores, (0, 2, 1))], axis=-1)
        output, _ = evolution.stateless_call(
            taken[evolution], fixed(evolution), steps, mask=valid
        )
        return output, loss

    def build(query, keys, negatives, lengths):
        valid = (
            ops.arange(keys.shape[1])[None, :] < ops.convert_to_tensor(lengths)[:, None]
        )
        states = gru(keys, mask=valid)
        x = ops.concatenate([states[:, :-1], keys[:, 1:]], axis=-1)
        for layer in auxiliary:
            x = layer(x)
        scores = attention([ops.expand_dims(query, 1), states], mask=valid)
        evolution(
            ops.concatenate([states, ops.transpose(scores, (0, 2, 1))], -1), mask=valid
        )
        return [v for layer in layers for v in layer.trainable_variables]

    return build, forward


# --------------------------------------------------------------------------
# The workers.


def jax_functions(model, case):
    import jax

    build, forward = model
    variables = build(*case)
    values = [v.value for v in variables]
    arrays = [jax.numpy.asarray(x) for x in case]

    def loss(values, *arrays):
        output, auxiliary = forward(values, *arrays, training=True)
        return output.sum() + auxiliary

    train = jax.jit(jax.grad(loss))
    infer = jax.jit(lambda values, *a: forward(values, *a, training=False)[0])
    return (
        lambda: jax.block_until_ready(train(values, *arrays)),
        lambda: jax.block_until_ready(infer(values, *arrays)),
    )


def torch_functions(model, case):
    import torch

    build, forward = model
    variables = build(*case)
    params = [v.value for v in variables]
    tensors = [torch.as_tensor(x) for x in case]

    def train():
        output, auxiliary = forward(params, *tensors, training=True)
        return torch.autograd.grad(output.sum() + auxiliary, params)

    def infer():
        with torch.no_grad():
            return forward(params, *tensors, training=False)[0]

    return train, infer


def deepctr_torch_functions(case):
    try:
        import torch
        from deepctr_torch.models.dien import InterestEvolving
        from deepctr_torch.models.dien import InterestExtractor
    except ImportError:
        return None
    query, keys, negatives, lengths = (torch.as_tensor(x) for x in case)
    lengths = lengths.long()
    dim = keys.shape[-1]
    torch.manual_seed(0)
    extractor = InterestExtractor(input_size=dim, use_neg=True)
    evolution = InterestEvolving(
        input_size=dim,
        gru_type="AUGRU",
        att_hidden_size=ATTENTION_UNITS,
        att_weight_normalization=True,
    )
    params = [*extractor.parameters(), *evolution.parameters()]

    def forward(training):
        extractor.train(training)
        evolution.train(training)
        states, auxiliary = extractor(keys, lengths, negatives if training else None)
        return evolution(query, states, lengths), auxiliary

    def train():
        output, auxiliary = forward(True)
        return torch.autograd.grad(output.sum() + auxiliary, params)

    def infer():
        with torch.no_grad():
            return forward(False)[0]

    return train, infer


def tf_functions(model, case, jit_compile):
    import tensorflow as tf

    build, forward = model
    variables = build(*case)
    values = [v.value for v in variables]
    tensors = [tf.constant(x) for x in case]

    @tf.function(jit_compile=jit_compile)
    def train():
        with tf.GradientTape() as tape:
            output, auxiliary = forward(values, *tensors, training=True)
            loss = tf.reduce_sum(output) + auxiliary
        return tape.gradient(loss, values)

    @tf.function(jit_compile=jit_compile)
    def infer():
        return forward(values, *tensors, training=False)[0]

    # On the CPU a TensorFlow call returns once its work is done.
    return train, infer


def implementations(backend, case, tf_xla=False):
    """{(implementation, mode): (train, infer)} for one backend."""
    if backend == "torch":
        impls = {("keras-din", "eager"): torch_functions(keras_din_model(), case)}
        peer = deepctr_torch_functions(case)
        if peer is not None:
            impls[("DeepCTR-Torch", "eager")] = peer
        return impls
    if backend == "jax":
        return {
            ("keras-din", "jax.jit"): jax_functions(keras_din_model(), case),
            ("keras GRU", "jax.jit"): jax_functions(keras_gru_model(), case),
        }
    impls = {("keras-din", "tf.function"): tf_functions(keras_din_model(), case, False)}
    if tf_xla:
        impls[("keras-din", "tf.function+XLA")] = tf_functions(
            keras_din_model(), case, True
        )
    return impls


def worker(backend, sizes, repeats, memory=False, torch_threads=None, tf_xla=False):
    """Times every call; with `memory`, measures the peak memory of one
    training step instead (in a process of its own, see `run_worker`)."""
    import keras

    threads = None
    if backend == "torch":
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        threads = torch.get_num_threads()
    results = {
        "backend": backend,
        "keras": keras.__version__,
        "torch_threads": threads,
        "sizes": sizes,
        "valid_positions": {},
        "rows": [],
    }
    for size_name, size in sizes.items():
        case = make_case(size)
        results["valid_positions"][size_name] = int(case[-1].sum())
        impls = implementations(backend, case, tf_xla)
        for phase, index in (("train", 0), ("infer", 1)):
            if memory and phase == "infer":
                continue
            calls = {key: fns[index] for key, fns in impls.items()}
            first = {}
            for key, fn in calls.items():  # warm-up (and compilation)
                start = time.perf_counter()
                fn()
                first[key] = time.perf_counter() - start
            if memory:
                results["rows"] += peak_rows(size_name, calls, peak_rss_rise)
                continue
            times = {key: [] for key in calls}
            for _ in range(repeats):
                for key, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    times[key].append(1000 * (time.perf_counter() - start))
            for (impl, mode), ms in times.items():
                results["rows"].append(
                    {
                        "size": size_name,
                        "phase": phase,
                        "impl": impl,
                        "mode": mode,
                        "first_s": first[(impl, mode)],
                        "median_ms": statistics.median(ms),
                        "times_ms": ms,
                    }
                )
            print(f"[{backend}] {size_name} {phase} done", file=sys.stderr)
    return results


def print_table(all_results):
    for results in all_results:
        threads = results.get("torch_threads")
        threads = f"; {threads} intra-op threads" if threads else ""
        print(f"\n### {results['backend']} (keras {results['keras']}{threads})\n")
        print(
            "| size | B | T | phase | implementation | mode | first call s | "
            "median ms | x vs keras-din | peak MB |"
        )
        print("|---|---:|---:|---|---|---|---:|---:|---:|---:|")
        ours = {
            (r["size"], r["phase"], r["mode"]): r
            for r in results["rows"]
            if r["impl"] == "keras-din"
        }
        for r in results["rows"]:
            size = results["sizes"][r["size"]]
            reference = ours.get((r["size"], r["phase"], r["mode"]))
            ratio = (
                f"{r['median_ms'] / reference['median_ms']:.2f}" if reference else "-"
            )
            peak = f"{r['peak_mb']:.1f}" if r.get("peak_mb") is not None else ""
            print(
                f"| {r['size']} | {size['batch']} | {size['history']} | "
                f"{r['phase']} | {r['impl']} | {r['mode']} | {r['first_s']:.1f} | "
                f"{r['median_ms']:.1f} | {ratio} | {peak} |"
            )
    print(
        "\nx vs keras-din: the row's median over keras-din's in the same size, "
        "phase and mode (above 1: keras-din is faster). First call: the "
        "warm-up call, tracing and compilation included."
    )


def run_worker(backend, args, sizes, repeats, memory=False):
    """Runs `worker` for one backend in a fresh process; returns its results."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    command = [sys.executable, __file__, "--worker", backend, "--worker-out", path]
    command += ["--sizes", *sizes, "--repeats", str(repeats)]
    command += ["--quick"] * args.quick + ["--memory"] * memory
    command += ["--tf-xla"] * args.tf_xla
    if args.torch_threads:
        command += ["--torch-threads", str(args.torch_threads)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if memory:  # the resident set follows the live tensors (bench_attention.py)
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    if subprocess.run(command, env=env).returncode != 0:
        os.unlink(path)
        raise SystemExit(f"The {backend} worker failed (its error is above).")
    with open(path) as f:
        results = json.load(f)
    os.unlink(path)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["paper"])
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="the history-length sweep: --sizes " + " ".join(SWEEP),
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="batch / 4, 3 repeats")
    parser.add_argument(
        "--torch-threads",
        type=int,
        metavar="N",
        help="torch's intra-op threads in the torch worker",
    )
    parser.add_argument(
        "--tf-xla", action="store_true", help="also time tf.function(jit_compile=True)"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak-memory processes"
    )
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sweep:
        args.sizes = list(SWEEP)
    table = QUICK_SIZES if args.quick else SIZES
    repeats = 3 if args.quick else args.repeats
    if args.worker:
        results = worker(
            args.worker,
            {name: table[name] for name in args.sizes},
            repeats,
            memory=args.memory,
            torch_threads=args.torch_threads,
            tf_xla=args.tf_xla,
        )
        with open(args.worker_out, "w") as f:
            json.dump(results, f)
        return
    all_results = []
    for backend in args.backends:
        if backend not in ("torch", "jax", "tensorflow"):
            raise SystemExit(
                f"--backends: expected torch, jax or tensorflow. Received: {backend}"
            )
        sizes = args.sizes
        results = run_worker(backend, args, sizes, repeats)
        if not args.no_memory:
            peaks = run_worker(backend, args, sizes, repeats, memory=True)["rows"]
            peaks = {(r["size"], r["impl"], r["mode"]): r["peak_mb"] for r in peaks}
            for row in results["rows"]:
                if row["phase"] == "train":
                    row["peak_mb"] = peaks.get((row["size"], row["impl"], row["mode"]))
        all_results.append(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_results, f, indent=1)
    print_table(all_results)
    if any(size in SWEEP for size in args.sizes):
        print_sweep_tables(all_results)


if __name__ == "__main__":
    main()
