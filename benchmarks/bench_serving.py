"""Serving latency: one user's history against C candidates, exported.

For each history length T, builds the builders' DIN at the DIN paper's
sizes (`keras_din.models.DIN(..., candidates=None)`, item and category
embeddings of 16 each, attention units (80, 40), MLP (200, 80)) or, with
`--models`, SIM (`sim`, `sim_hard`: soft or hard search) or ETA (`eta`),
each keeping 50 behaviours per candidate, with two heads and the same MLP;
exports it once with plain `model.export`, and times the exported model the way a server
runs it, one request (one user, batch 1, C candidates) at a time:
a TensorFlow SavedModel (`tf.saved_model.load`) from the TensorFlow backend
(`saved_model`: a TensorFlow graph, op by op) or from JAX (`saved_model_jax`:
the model as one XLA program, its elementwise operations fused), and ONNX
(onnxruntime, from the torch backend). Prints p50 and p99 per request, and
the request's arithmetic (GFLOP) with the bound it sets at this machine's
measured float32 matmul rate. The worker of each format runs in this
interpreter: it needs TensorFlow for `saved_model`, JAX and TensorFlow for
`saved_model_jax`, and torch with `keras-din[onnx]` for `onnx` (`--formats`
picks).

    python benchmarks/bench_serving.py  # both formats, issue 26's C and T
    python benchmarks/bench_serving.py --formats onnx --candidates 200 --lengths 1000
    python benchmarks/bench_serving.py --threads 1  # one intra-op thread
    python benchmarks/bench_serving.py --att-activation sigmoid
    python benchmarks/bench_serving.py --formats saved_model_jax  # jax, tensorflow
    python benchmarks/bench_serving.py --models din sim sim_hard eta --candidates 200 \\
        --lengths 1000 10000

The GFLOP and bound columns count DIN's arithmetic; they are left empty for
SIM and ETA.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

EMBEDDING = 16  # per feature: the keys are item and category, 2 * 16 wide
ATTENTION = (80, 40)
MLP = (200, 80)
ITEMS, CATEGORIES = 100_000, 1_000
TOP_K = 50
MODELS = ("din", "sim", "sim_hard", "eta")
BACKEND_OF = {"saved_model": "tensorflow", "saved_model_jax": "jax", "onnx": "torch"}


def request_flops(candidates, length):
    """Multiply-adds x 2 of one request: the attention unit's first layer
    (factorised: the history side once per position, the candidate side once
    per candidate, the product term per pair), its other layers per pair, the
    weighted sum, and the MLP per candidate."""
    e = 2 * EMBEDDING
    h1, h2 = ATTENTION
    pairs = candidates * length
    first = length * e * h1 + candidates * e * h1 + pairs * e * h1
    rest = pairs * (h1 * h2 + h2) + pairs * e
    mlp_in = 2 * e  # the candidate's embeddings and the interest
    mlp = candidates * (mlp_in * MLP[0] + MLP[0] * MLP[1] + MLP[1])
    return 2 * (first + rest + mlp)


def matmul_gflops():
    """This process's float32 matmul rate on square 1024 matrices."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    began = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 1024**3 / (time.perf_counter() - began) / 1e9


def build(kind, length, att_activation):
    from keras_din.models import DIN
    from keras_din.models import ETA
    from keras_din.models import SIM
    from keras_din.models import BehaviorSequence
    from keras_din.models import Feature

    features = [
        Feature("item", ITEMS, EMBEDDING),
        Feature("category", CATEGORIES, EMBEDDING),
    ]
    history = BehaviorSequence(
        "clicks",
        {"clicked_items": "item", "clicked_categories": "category"},
        max_length=length,
    )
    if kind == "eta":
        return ETA(
            features, [history], candidates=None, top_k=TOP_K, dnn_hidden_units=MLP
        )
    if kind != "din":
        hard = kind == "sim_hard"
        return SIM(
            features,
            [history],
            candidates=None,
            search="hard" if hard else "soft",
            search_feature="category" if hard else None,
            top_k=TOP_K,
            dnn_hidden_units=MLP,
        )
    return DIN(
        features,
        [history],
        candidates=None,
        att_hidden_units=ATTENTION,
        att_activation=att_activation,
        dnn_hidden_units=MLP,
    )


def request(candidates, length, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "item": rng.integers(1, ITEMS, size=(1, candidates)).astype("int32"),
        "category": rng.integers(1, CATEGORIES, size=(1, candidates)).astype("int32"),
        "clicked_items": rng.integers(1, ITEMS, size=(1, length)).astype("int32"),
        "clicked_categories": rng.integers(1, CATEGORIES, size=(1, length)).astype(
            "int32"
        ),
    }


def serving_function(model, export_format, folder, threads):
    """A function of the request dict that runs the exported model."""
    if export_format.startswith("saved_model"):
        import tensorflow as tf

        path = os.path.join(folder, "din_saved_model")
        model.export(path, verbose=False)
        served = tf.saved_model.load(path)
        return lambda x: served.serve(x).numpy()
    import onnxruntime

    path = os.path.join(folder, "din.onnx")
    model.export(path, format="onnx", verbose=False)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        path, options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    # ONNX keeps the model's input names where it can; else their order.
    keys = names if set(names) == set(model.input) else list(model.input)
    feed = lambda x: {n: x[k] for n, k in zip(names, keys, strict=True)}  # noqa: E731
    return lambda x: session.run(None, feed(x))[0]


def worker(export_format, kinds, candidates, lengths, repeats, threads, activation):
    if threads and export_format.startswith("saved_model"):
        import tensorflow as tf

        # Once, before TensorFlow runs anything (it refuses afterwards).
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    rows = []
    for kind, length in [(kind, length) for kind in kinds for length in lengths]:
        model = build(kind, length, activation)
        model.predict(request(1, length), verbose=0)  # ONNX export needs a call
        with tempfile.TemporaryDirectory() as folder:
            serve = serving_function(model, export_format, folder, threads)
            for count in candidates:
                x = request(count, length)
                expected = model.predict(x, verbose=0)
                np.testing.assert_allclose(serve(x), expected, rtol=1e-4, atol=1e-5)
                for _ in range(5):
                    serve(x)
                times = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    serve(x)
                    times.append(time.perf_counter() - began)
                times = np.array(times) * 1e3
                rows.append(
                    {
                        "model": kind,
                        "format": export_format,
                        "candidates": count,
                        "length": length,
                        "p50_ms": float(np.percentile(times, 50)),
                        "p99_ms": float(np.percentile(times, 99)),
                        "gflop": request_flops(count, length) / 1e9
                        if kind == "din"
                        else None,
                    }
                )
    return {"rows": rows, "matmul_gflops": matmul_gflops()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=list(BACKEND_OF),
        default=["onnx", "saved_model"],
    )
    parser.add_argument(
        "--candidates", nargs="+", type=int, default=[1, 100, 200, 1000]
    )
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 1000])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["din"])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all)")
    parser.add_argument(
        "--att-activation", default="dice", help="the attention unit's (default: dice)"
    )
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(
            args.worker,
            args.models,
            args.candidates,
            args.lengths,
            args.repeats,
            args.threads,
            args.att_activation,
        )
        print(json.dumps(result))
        return
    results = []
    print(
        f"{'model':>8} {'format':>11} {'T':>5} {'C':>5} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'GFLOP':>7} {'bound ms':>9} {'p50/bound':>10}"
    )
    for export_format in args.formats:
        command = [sys.executable, __file__, "--worker", export_format]
        command += ["--models", *args.models]
        command += ["--candidates", *map(str, args.candidates)]
        command += ["--lengths", *map(str, args.lengths)]
        command += ["--repeats", str(args.repeats)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        command += ["--att-activation", args.att_activation]
        env = dict(
            os.environ,
            KERAS_BACKEND=BACKEND_OF[export_format],
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            print(f"{export_format}: failed\n{done.stderr[-2000:]}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rate = result["matmul_gflops"]
        for row in result["rows"]:
            arithmetic = f"{'-':>7} {'-':>9} {'-':>10}"
            if row["gflop"] is not None:
                bound = row["gflop"] / rate * 1e3
                arithmetic = (
                    f"{row['gflop']:>7.3f} {bound:>9.2f} {row['p50_ms'] / bound:>10.1f}"
                )
            print(
                f"{row['model']:>8} {row['format']:>11} {row['length']:>5} "
                f"{row['candidates']:>5} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{arithmetic}"
            )
        print(f"{export_format}: float32 matmul {rate:.0f} GFLOP/s")
        results.append(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
