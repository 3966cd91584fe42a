"""Where a torch training step of the main example's models goes.

    KERAS_BACKEND=torch python benchmarks/profile_step.py            # DIN
    KERAS_BACKEND=torch python benchmarks/profile_step.py --model dien --threads 0

Builds the model as `bench_fit.py` does (the example's `build_model`, its
`--quick` arrays, batch `--batch-size`, Adam at 0.01, no metric) and runs
the steps of Keras's torch trainer one by one, timing each part of every
step: the forward pass, split by the functional model's layers and ops (each
node's own wall time; a keras-din layer's sublayers are inside its time),
the loss (Keras's `compute_loss`: binary cross-entropy plus the losses the
layers added, such as the mini-batch aware penalties), the backward pass and
the optimizer. It prints the median of `--steps` steps for each part, then
the Python function calls and the torch operator (`aten::`) calls of one
step: counts that, unlike times, do not move with a busy machine, and a
measure of the per-step overhead that dominates an eager step at these
sizes. `--threads` sets torch's intra-op threads (1 by default; 0 keeps
torch's default).
"""

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This tree's keras_din and benchmarks first.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]
import bench_fit  # noqa: E402

LEARNING_RATE = 0.01


@contextlib.contextmanager
def node_timer(model, seconds):
    """Adds each functional node's wall time, while inside, to
    `seconds[name]` (its class and name)."""
    nodes = set(map(id, model.operations))
    classes = {type(op) for op in model.operations}
    originals = {cls: cls.__call__ for cls in classes}

    def timed(original):
        def __call__(self, *args, **kwargs):
            began = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                if id(self) in nodes:
                    key = f"{type(self).__name__} {self.name}"
                    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - began

        return __call__

    for cls, original in originals.items():
        cls.__call__ = timed(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.__call__ = original


def train_step(model, x, y, parts, torch):
    """Keras's torch `train_step` (no metric), with each part timed into
    `parts` (a dict of lists of seconds)."""
    variables = model.trainable_weights
    began = time.perf_counter()
    model.zero_grad()
    seconds = {}
    with node_timer(model, seconds):
        y_pred = model(x, training=True)
    forward = time.perf_counter()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    computed = time.perf_counter()
    loss.backward()
    backward = time.perf_counter()
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    done = time.perf_counter()
    for key, value in seconds.items():
        parts.setdefault(f"  {key}", []).append(value)
    parts.setdefault("forward (all)", []).append(forward - began)
    parts.setdefault("loss", []).append(computed - forward)
    parts.setdefault("backward", []).append(backward - computed)
    parts.setdefault("optimizer", []).append(done - backward)
    parts.setdefault("step", []).append(done - began)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="din", choices=bench_fit.MODELS)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import torch

    if keras.backend.backend() != "torch":
        parser.error("profiles the torch backend: set KERAS_BACKEND=torch")
    bench_fit.set_torch_threads(args.threads)
    steps = args.steps
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "data.npz")
        bench_fit.make_data(path, args.batch_size)
        data, sizes = bench_fit.load_arrays(path, args.batch_size * (steps + 10))
    example = bench_fit.load_example()
    options = bench_fit.example_args(example, args.batch_size)
    keras.utils.set_random_seed(0)
    frequencies = {k: v for k, v in data.items() if k != "y"}
    length = data["history"].shape[1]
    model = example.build_model(args.model, frequencies, length, sizes, options)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=[],  # `compile` keeps the example's AUC when given none
    )
    x = example.features(data, model)
    batches = [
        (
            {k: torch.as_tensor(v[i : i + args.batch_size]) for k, v in x.items()},
            torch.as_tensor(data["y"][i : i + args.batch_size]),
        )
        for i in range(0, args.batch_size * (steps + 10), args.batch_size)
    ]
    for batch in batches[:10]:
        model.train_on_batch(*batch)  # builds the optimizer, warms up
    parts = {}
    for batch in batches[10:]:
        train_step(model, *batch, parts, torch)
    print(
        f"{args.model}, torch, batch {args.batch_size}, "
        f"{torch.get_num_threads()} thread(s): median ms of {steps} steps"
    )
    for key, values in parts.items():
        print(f"{1000 * statistics.median(values):8.3f}  {key}")
    # Counted on Keras's own step (no timers).
    profile = cProfile.Profile()
    profile.enable()
    model.train_on_batch(*batches[-1])
    profile.disable()
    with torch.profiler.profile() as operators:
        model.train_on_batch(*batches[-1])
    aten = sum(e.count for e in operators.key_averages() if e.key.startswith("aten::"))
    calls = pstats.Stats(profile).total_calls
    print(f"per step: {calls} Python function calls, {aten} aten operator calls")


if __name__ == "__main__":
    main()
