"""DIEN's interest layers, side by side: keras-din, DeepCTR-Torch and a
`keras.layers.GRU` formulation.

    python benchmarks/bench_dien.py                # torch and JAX workers
    python benchmarks/bench_dien.py --quick        # batch 256, 3 repeats

The work is DIEN's interest part at the paper's sizes (batch 1024, history
50, embeddings 32, GRU width 32; history lengths uniform in [1, 50]): the
interest extractor (a GRU over the history) with the auxiliary loss (an MLP
100-50 on `[h_t, e_{t+1}]` and on the negatives), then the AUGRU interest
evolution, whose attention (64-16, softmax over the valid positions) scores
the states against one candidate. A training step computes the gradients of
`sum(output) + auxiliary loss` to every weight; inference computes the
output (no auxiliary loss).

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

One process per backend; in a worker every implementation runs on the same
inputs, interleaved repetition by repetition, and the median is reported,
with its ratio to keras-din's median in the same run (above 1: keras-din is
faster).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = {"batch": 1024, "history": 50, "dim": 32}
QUICK_SIZES = {"batch": 256, "history": 50, "dim": 32}
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

    dim = SIZES["dim"]
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


def worker(backend, size, repeats):
    import keras

    case = make_case(size)
    if backend == "torch":
        impls = {"keras-din": torch_functions(keras_din_model(), case)}
        peer = deepctr_torch_functions(case)
        if peer is not None:
            impls["DeepCTR-Torch"] = peer
        mode = "eager"
    else:
        impls = {
            "keras-din": jax_functions(keras_din_model(), case),
            "keras GRU": jax_functions(keras_gru_model(), case),
        }
        mode = "jax.jit"
    rows = []
    for phase, index in (("train", 0), ("infer", 1)):
        times = {name: [] for name in impls}
        for fns in impls.values():
            fns[index]()  # warm-up (and compilation)
            fns[index]()
        for _ in range(repeats):
            for name, fns in impls.items():
                start = time.perf_counter()
                fns[index]()
                times[name].append(1000 * (time.perf_counter() - start))
        for name, ms in times.items():
            rows.append(
                {
                    "phase": phase,
                    "impl": name,
                    "mode": mode,
                    "median_ms": statistics.median(ms),
                    "times_ms": ms,
                }
            )
    return {"backend": backend, "keras": keras.__version__, "size": size, "rows": rows}


def print_table(all_results):
    for results in all_results:
        size = results["size"]
        print(
            f"\n### {results['backend']} (keras {results['keras']}; B={size['batch']}, "
            f"T={size['history']}, E=H={size['dim']})\n"
        )
        print("| phase | implementation | mode | median ms | x vs keras-din |")
        print("|---|---|---|---:|---:|")
        ours = {r["phase"]: r for r in results["rows"] if r["impl"] == "keras-din"}
        for r in results["rows"]:
            ratio = r["median_ms"] / ours[r["phase"]]["median_ms"]
            print(
                f"| {r['phase']} | {r['impl']} | {r['mode']} | "
                f"{r['median_ms']:.1f} | {ratio:.2f} |"
            )
    print("\nx vs keras-din: the row's median over keras-din's (above 1: faster).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="batch 256, 3 repeats")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = QUICK_SIZES if args.quick else SIZES
    repeats = 3 if args.quick else args.repeats
    if args.worker:
        with open(args.worker_out, "w") as f:
            json.dump(worker(args.worker, size, repeats), f)
        return
    all_results = []
    for backend in args.backends:
        if backend not in ("torch", "jax"):
            raise SystemExit(f"--backends: expected torch or jax. Received: {backend}")
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
            path = out.name
        command = [sys.executable, __file__, "--worker", backend, "--worker-out", path]
        command += ["--repeats", str(repeats)] + ["--quick"] * args.quick
        env = {**os.environ, "KERAS_BACKEND": backend}
        if subprocess.run(command, env=env).returncode != 0:
            raise SystemExit(f"The {backend} worker failed (its error is above).")
        with open(path) as f:
            all_results.append(json.load(f))
        os.unlink(path)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_results, f, indent=1)
    print_table(all_results)


if __name__ == "__main__":
    main()
