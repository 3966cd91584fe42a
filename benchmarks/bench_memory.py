"""Memory of long histories: the loaders' two layouts, side by side.

Writes a MovieLens-1M-style `ratings.dat` whose users have long histories,
then, in a fresh process per layout, loads it with `max_history=T` and
walks one epoch of batches as `fit` would receive them (the materialised
arrays sliced per batch, or `keras_din.datasets.HistoryBatches`), and reports
the bytes of the loaded arrays and the peak resident memory (ru_maxrss) after
loading and after the epoch.

    python benchmarks/bench_memory.py  # 100 users x 1,000 ratings, T = 1,000
    python benchmarks/bench_memory.py --users 50 --ratings 2000 --max-length 2000
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_ratings(folder, users, ratings, movies, seed=0):
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, "ratings.dat")
    with open(path, "w") as handle:
        for user in range(1, users + 1):
            chosen = rng.choice(np.arange(1, movies + 1), ratings, replace=False)
            for time_, movie in enumerate(chosen):
                handle.write(f"{user}::{movie}::4::{time_}\n")
    return path


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(path, layout, max_length, batch_size):
    from keras_din import datasets

    baseline = peak_mb()
    began = time.perf_counter()
    loaded = datasets.load_movielens(path, max_history=max_length, layout=layout)
    load_seconds = time.perf_counter() - began
    (x, y), (x_test, _) = loaded[:2]
    data_bytes = sum(a.nbytes for a in (*x.values(), *x_test.values(), y))
    if layout == "users":
        data_bytes += loaded[2].nbytes
    after_load = peak_mb()
    began = time.perf_counter()
    if layout == "users":
        batches = datasets.HistoryBatches(x, y, loaded[2], batch_size=batch_size)
        for index in range(len(batches)):
            batches[index]
    else:
        for start in range(0, len(y), batch_size):
            {key: value[start : start + batch_size] for key, value in x.items()}
    epoch_seconds = time.perf_counter() - began
    return {
        "layout": layout,
        "samples": int(len(y)),
        "data_mb": data_bytes / 2**20,
        "baseline_peak_mb": baseline,
        "peak_after_load_mb": after_load,
        "peak_after_epoch_mb": peak_mb(),
        "load_s": load_seconds,
        "epoch_s": epoch_seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--ratings", type=int, default=1000, help="per user")
    parser.add_argument("--movies", type=int, default=3706)
    parser.add_argument("--max-length", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--layouts", nargs="+", default=["users", "samples"])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        path, layout = args.worker
        print(json.dumps(worker(path, layout, args.max_length, args.batch_size)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = write_ratings(folder, args.users, args.ratings, args.movies)
        print(
            f"{args.users} users x {args.ratings} ratings, max_length "
            f"{args.max_length}, batch {args.batch_size}"
        )
        print(
            f"{'layout':>8} {'samples':>8} {'arrays MB':>10} {'at start':>8} "
            f"{'peak MB':>8} "
            f"{'after epoch':>11} {'load s':>7} {'epoch s':>8}"
        )
        for layout in args.layouts:
            command = [sys.executable, __file__, "--worker", path, layout]
            command += ["--max-length", str(args.max_length)]
            command += ["--batch-size", str(args.batch_size)]
            env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
            result = subprocess.run(
                command, capture_output=True, text=True, env=env, check=True
            )
            row = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{row['layout']:>8} {row['samples']:>8} {row['data_mb']:>10.1f} "
                f"{row['baseline_peak_mb']:>8.0f} {row['peak_after_load_mb']:>8.0f} "
                f"{row['peak_after_epoch_mb']:>11.0f} "
                f"{row['load_s']:>7.1f} {row['epoch_s']:>8.1f}"
            )


if __name__ == "__main__":
    main()
