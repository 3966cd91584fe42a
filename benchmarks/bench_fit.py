"""Training steps per second of the main example's models, per backend.

    python benchmarks/bench_fit.py                    # tensorflow, torch, jax
    python benchmarks/bench_fit.py --backends torch jax --steps 60
    python benchmarks/bench_fit.py --threads 1      # OMP_NUM_THREADS=1 (torch)
    tox -e bench-fit                                 # every backend, one env

Times `model.fit` of `examples/train_din.py`'s base and DIN models (built
with `keras_din.models`, compiled as the example compiles them) at batch 256
on the example's `--quick` synthetic data: one worker process per backend,
each fitting every model for `--steps` steps. A step's time is the wall time
between the ends of two consecutive batches (so it includes Keras's data
handling), the first `--warmup` steps left out (tracing, compilation); the
median is reported as steps per second, with each backend's ratio to JAX
(issue 16's goal: torch within 3x of JAX for both models).
"""

import argparse
import importlib.util
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
MODELS = ("base", "din")


def load_example():
    spec = importlib.util.spec_from_file_location("train_din", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(steps, warmup, batch_size):
    import keras
    import numpy as np

    example = load_example()
    args = example.parse_args(["--quick", "--batch-size", str(batch_size)])
    (x_train, y_train), _ = example.load_data(args)
    sizes = tuple(
        1 + max(int(x_train[name].max()) for name in names)
        for names in (example.ITEMS, example.CATEGORIES)
    )
    rows = (steps + warmup) * batch_size
    repeats = -(-rows // len(y_train))
    results = {}
    for kind in MODELS:
        keras.utils.set_random_seed(0)
        model = example.build_model(kind, x_train, sizes, args)
        x = {
            k: np.tile(v, (repeats,) + (1,) * (v.ndim - 1))[:rows]
            for k, v in example.features(x_train, model).items()
        }
        y = np.tile(y_train, repeats)[:rows]
        ends = []
        timer = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs, ends=ends: ends.append(
                time.perf_counter()
            )
        )
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[timer])
        seconds = np.diff(ends)[warmup:]
        results[kind] = 1.0 / statistics.median(seconds)
    return {"backend": keras.backend.backend(), "steps_per_second": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "torch", "jax"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--threads",
        type=int,
        help="OMP_NUM_THREADS for the workers (torch's intra-op threads)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.steps, args.warmup, args.batch_size)
        Path(args.worker_out).write_text(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for backend in args.backends:
            out = os.path.join(directory, f"{backend}.json")
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--worker-out",
                out,
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--batch-size",
                str(args.batch_size),
            ]
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            if args.threads:
                env["OMP_NUM_THREADS"] = str(args.threads)
            if subprocess.run(command, env=env).returncode != 0:
                sys.exit(f"the {backend} worker failed")
            rows.append(json.loads(Path(out).read_text()))
    jax = next((r for r in rows if r["backend"] == "jax"), None)
    threads = f", OMP_NUM_THREADS={args.threads}" if args.threads else ""
    print(
        f"\nfit steps per second, batch {args.batch_size} (median of "
        f"{args.steps}{threads})"
    )
    print(f"{'backend':<11} {'model':<5} {'steps/s':>8} {'JAX / this':>11}")
    for row in rows:
        for kind, rate in row["steps_per_second"].items():
            ratio = jax["steps_per_second"][kind] / rate if jax else float("nan")
            print(f"{row['backend']:<11} {kind:<5} {rate:>8.1f} {ratio:>11.2f}")


if __name__ == "__main__":
    main()
