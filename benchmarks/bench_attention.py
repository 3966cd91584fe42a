"""DIN attention pooling, side by side: keras-din, the concatenation baseline,
DeepCTR-Torch, FuxiCTR and DeepCTR.

    python benchmarks/bench_attention.py                  # every backend
    python benchmarks/bench_attention.py --backends torch --quick
    tox -e bench                                          # installs the peers
    python benchmarks/bench_attention.py --baseline ../before  # a before/after
    python benchmarks/bench_attention.py --sweep --no-torch-compile --torch-threads 1

Sizes (`--sizes`): `paper` (B=1024, T=50), `long` (B=64, T=1000),
`candidates` (B=64, 100 candidates, T=50), and the history-length sweep
`t50`, `t200`, `t1000`, `t5000`, `t10000` (`--sweep` runs all five): one
candidate, E=32, lengths uniform in [1, T], and a batch that keeps a step's
work about constant, B*T from 51,200 to 80,000 positions (B = 1024, 256,
64, 16, 8), so that on a 2-core CPU each step takes tens to hundreds of
milliseconds at every T. With B*T about constant, a cost linear in T shows as
a flat row; the sweep's tables give time and peak memory per step, and per
history position (`--quick` quarters every batch).

One worker process per backend (KERAS_BACKEND is read once per process). In a
worker, every implementation runs the same sizes on the same inputs and
weights, interleaved repetition by repetition (each repetition in a new,
seeded order: what runs just before a call changes its time), and the
median is reported, so that load on a shared machine hits all of them
alike. Speed is reported as ratios of medians against keras-din's, measured
in the same run (each repetition's times are kept in the `--json` output).

On Linux, glibc serves every large tensor from a fresh mmap whose pages fault
in on first touch; under torch eager that can take most of a step.
`--tuned-malloc` times with a high `MALLOC_MMAP_THRESHOLD_`, which reuses
freed blocks instead (docs/performance.md, "Speed on the CPU with torch").

Implementations:
- keras-din: `AttentionSequencePoolingLayer(weight_normalization=True)`,
  which leaves padding positions out of the computation (not under JAX).
- keras-din dense: the same with `skip_padding=False`, every position
  computed as the other implementations do: the formulation alone. Lengths are
  uniform in [1, T], so about half of every history is padding.
- concat: the straightforward keras.ops port (repeat the query, concatenate
  `[q, k, q - k, q * k]`, dense layers, padding constant, softmax), the
  baseline this package is measured against.
- DeepCTR-Torch (torch worker) and DeepCTR under tf-keras (tensorflow worker),
  with the same weights, where installed.
- FuxiCTR (torch worker, where installed): `DIN_Attention` of FuxiCTR 2.3.10
  (`fuxictr.pytorch.layers`), with the same weights, configured as the
  others: sigmoid hidden activations (the layer's default is ReLU, FuxiCTR's
  DIN model's Dice) and `use_softmax=True` (the layer's default and the DIN
  model's, `din_use_softmax=False`, pool the raw scores, 0 at the padding).
  It takes the candidate as `(B, E)` and a `(B, T)` mask (made once, outside
  the timed step; its DIN model makes it from the item ids, `id != 0`),
  multiplies the scores by the mask, then adds -1e9 at the padding before
  the softmax, where DeepCTR and keras-din put -2^32 + 1: in float32 both
  weigh the padding exactly 0, so the outputs agree. (An empty history,
  which FuxiCTR pools as the mean of the whole padded history, does not
  occur here: lengths start at 1.) Like DeepCTR-Torch it scores every
  position. Its package `__init__`s import all of FuxiCTR, whose embeddings
  import the data pipeline (polars, ray, h5py, pyarrow); the attention
  module needs torch alone, so the benchmark loads it past those two
  `__init__`s (`load_fuxictr_din_attention`).
- keras-din baseline (and dense baseline), with `--baseline DIR`: the
  `keras_din` package of another checkout, imported as a renamed copy, so
  that a change is measured against the code before it in the same run.
For many candidates, the baselines and peers get the same work flattened to
one row per (user, candidate), since they take one candidate per row.
Before timing, every implementation's inference output is checked against
keras-din's (eager; float32 tolerance `1e-4`): a worker whose implementations
disagree stops.

Modes: eager, and compiled (`tf.function`, `tf.function(jit_compile=True)`,
`jax.jit`, `torch.compile` where it works). Phases: a training step (loss =
sum of the output; gradients to the weights, the query and the keys) and
inference. GFLOP/s use the nominal FLOPs of the concatenation formulation for
every implementation (`2 N (4E H1 + H1 H2 + H2)` forward, 3x for training,
`N = B C T`), against the machine's float32 matmul rate measured in the same
worker. Peak memory is the rise of the process's peak resident set during one
training step, after warm-up (Linux only), at the `long` and the sweep's
sizes. `--torch-threads N` sets torch's intra-op threads (`torch.set_num_threads`)
in the torch worker; `--busy-cores N` keeps N cores busy, a spinning process
each, while the workers time (a shared machine, the same in every run).

On a GPU host each backend computes on its first GPU where it sees one
(torch: CUDA; JAX and TensorFlow: their default device): the inputs and
weights live there, every timed call waits for the device to finish (never
by copying its results to the host, which no timed call does), the matmul
rate is measured on a larger matmul, and peak memory is the rise of the
device allocator's peak (torch and TensorFlow; JAX has no way to reset its
peak, so it is left out). Matmuls run in full float32 (no TF32) unless
NVIDIA_TF32_OVERRIDE or JAX_DEFAULT_MATMUL_PRECISION says otherwise.
`--require-gpu` stops a worker whose backend sees no GPU, so that a GPU
table never comes from the CPU; `tox -e bench-gpu-torch` (and `-jax`,
`-tensorflow`) installs that backend's CUDA build and its peer, and passes
it.
"""

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    "paper": {"batch": 1024, "candidates": 1, "history": 50, "dim": 32},
    "long": {"batch": 64, "candidates": 1, "history": 1000, "dim": 32},
    "candidates": {"batch": 64, "candidates": 100, "history": 50, "dim": 32},
}
# The history-length sweep: B*T between 51,200 and 80,000 positions a step.
SWEEP = {
    f"t{t}": {"batch": b, "candidates": 1, "history": t, "dim": 32}
    for t, b in ((50, 1024), (200, 256), (1000, 64), (5000, 16), (10000, 8))
}
SIZES.update(SWEEP)
DEFAULT_SIZES = ["paper", "long", "candidates"]
# Where peak memory is measured (in a process of its own, see `run_worker`).
MEMORY_SIZES = ("long", *SWEEP)
# With glibc's default, every large tensor is a fresh mmap whose pages fault
# in on first touch; above this threshold, large blocks are reused instead.
TUNED_MMAP_THRESHOLD = "1073741824"
QUICK_SIZES = {
    "paper": {"batch": 256, "candidates": 1, "history": 50, "dim": 32},
    "long": {"batch": 16, "candidates": 1, "history": 1000, "dim": 32},
    "candidates": {"batch": 16, "candidates": 100, "history": 50, "dim": 32},
    **{
        name: {**size, "batch": max(2, size["batch"] // 4)}
        for name, size in SWEEP.items()
    },
}
UNITS = (80, 40)
PADDING = -(2.0**32) + 1


# --------------------------------------------------------------------------
# The worker: one backend per process.


def make_case(size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    b, c, t, e = size["batch"], size["candidates"], size["history"], size["dim"]
    query = rng.normal(size=(b, c, e)).astype("float32")
    keys = rng.normal(size=(b, t, e)).astype("float32")
    lengths = rng.integers(1, t + 1, size=(b, 1)).astype("int32")
    shapes = [(4 * e, UNITS[0]), (UNITS[0],), (UNITS[0], UNITS[1]), (UNITS[1],)]
    shapes += [(UNITS[1], 1), (1,)]
    weights = [(rng.normal(size=s) * 0.1).astype("float32") for s in shapes]
    return query, keys, lengths, weights


def flatten_candidates(query, keys, lengths):
    """One row per (user, candidate), as a one-candidate layer needs."""
    import numpy as np

    c = query.shape[1]
    return (
        query.reshape(-1, 1, query.shape[-1]),
        np.repeat(keys, c, axis=0),
        np.repeat(lengths, c, axis=0),
    )


def concat_forward(weights, query, keys, lengths):
    """The straightforward keras.ops port of DeepCTR's pooling layer."""
    from keras import ops

    history = keys.shape[1]
    queries = ops.repeat(query, history, axis=1)
    x = ops.concatenate([queries, keys, queries - keys, queries * keys], axis=-1)
    x = ops.sigmoid(ops.matmul(x, weights[0]) + weights[1])
    x = ops.sigmoid(ops.matmul(x, weights[2]) + weights[3])
    scores = ops.transpose(ops.matmul(x, weights[4]) + weights[5], (0, 2, 1))
    positions = ops.arange(history, dtype="int32")[None, None, :]
    valid = positions < ops.reshape(lengths, (-1, 1, 1))
    scores = ops.where(valid, scores, ops.full_like(scores, PADDING))
    return ops.matmul(ops.softmax(scores, axis=-1), keys)


def accelerator(backend):
    """The name of the GPU that `backend` computes on, or `None` (the CPU)."""
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform == "gpu" else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")


class Runner:
    """Builds, per backend, the callables for each implementation and mode."""

    def __init__(self, backend, torch_compile=True):
        self.backend = backend
        self.torch_compile = torch_compile
        self.gpu = accelerator(backend)  # the GPU's name, or None
        # Keras' torch backend puts its variables on CUDA when it is there.
        self.torch_device = "cpu" if self.gpu is None else "cuda"

    def _lengths(self, lengths):
        """The lengths as the forward functions take them, made once."""
        if self.backend == "torch":
            import torch

            return torch.tensor(lengths, device=self.torch_device)
        return lengths

    # Each `make_*` returns {mode: (train_fn, infer_fn)}; both block until done.

    def keras_din(self, query, keys, lengths, weights, skip_padding=True, package=None):
        import keras_din

        layer = (package or keras_din).AttentionSequencePoolingLayer(
            att_hidden_units=UNITS,
            weight_normalization=True,
            skip_padding=skip_padding,
        )
        layer([query, keys, lengths])
        layer.set_weights(weights)
        lengths = self._lengths(lengths)

        def forward(variables, q, k):
            if self.backend == "jax":
                out, _ = layer.stateless_call(variables, [], [q, k, lengths])
                return out
            return layer([q, k, lengths])

        return self._modes(forward, layer.trainable_variables, query, keys)

    def concat(self, query, keys, lengths, weights):
        import keras

        variables = [keras.Variable(w) for w in weights]
        lengths = self._lengths(lengths)

        def forward(variables, q, k):
            return concat_forward(variables, q, k, lengths)

        return self._modes(forward, variables, query, keys)

    def _modes(self, forward, variables, query, keys):
        if self.backend == "torch":
            return self._torch_modes(forward, variables, query, keys)
        if self.backend == "tensorflow":
            return self._tf_modes(forward, variables, query, keys)
        return self._jax_modes(forward, variables, query, keys)

    def _torch_modes(self, forward, variables, query, keys):
        import torch

        params = [v.value for v in variables]
        q = torch.tensor(query, device=self.torch_device, requires_grad=True)
        k = torch.tensor(keys, device=self.torch_device, requires_grad=True)

        def train_step(q, k):
            loss = forward(variables, q, k).sum()
            return torch.autograd.grad(loss, [*params, q, k])

        def infer(q, k):
            with torch.no_grad():
                return forward(variables, q, k)

        return self._torch_compiled(train_step, infer, q, k)

    def _torch_compiled(self, train_step, infer, q, k):
        """Eager and, where it works, `torch.compile` versions of both."""
        import torch

        def waiting(fn):  # CUDA kernels run asynchronously
            if self.torch_device != "cuda":
                return lambda: fn(q, k)

            def call():
                result = fn(q, k)
                torch.cuda.synchronize()
                return result

            return call

        modes = {"eager": (waiting(train_step), waiting(infer))}
        if not self.torch_compile:
            return modes
        try:
            compiled_train = torch.compile(train_step)
            compiled_infer = torch.compile(infer)
            compiled_train(q, k)
            compiled_infer(q, k)
            modes["torch.compile"] = (waiting(compiled_train), waiting(compiled_infer))
        except Exception as error:  # torch.compile is best effort on CPU
            print(f"torch.compile failed: {type(error).__name__}", file=sys.stderr)
        return modes

    def _tf_modes(self, forward, variables, query, keys):
        import tensorflow as tf

        q, k = tf.constant(query), tf.constant(keys)
        tf_variables = list(variables)

        def train_step():
            with tf.GradientTape() as tape:
                tape.watch([q, k])
                loss = tf.reduce_sum(forward(variables, q, k))
            gradients = tape.gradient(loss, [*tf_variables, q, k])
            # Dense, as every implementation's: a gradient that arrives as
            # IndexedSlices (from a gather) pays for its densifying here.
            return [tf.convert_to_tensor(g) for g in gradients]

        def infer():
            return forward(variables, q, k)

        return self._tf_compiled(train_step, infer)

    def _tf_compiled(self, train_step, infer):
        """Eager, `tf.function` and XLA versions of both."""
        import tensorflow as tf

        def wait(result):
            # On the CPU, TensorFlow returns once the work is done. Fetching
            # the results (`.numpy()`) would time a copy of every gradient,
            # the keys' too, which is larger for the flattened candidates.
            if self.gpu is not None:
                tf.test.experimental.sync_devices()
            return result

        modes = {}
        for mode, compile_fn in (
            ("eager", lambda f: f),
            ("tf.function", tf.function),
            ("tf.function+XLA", lambda f: tf.function(f, jit_compile=True)),
        ):
            train, inference = compile_fn(train_step), compile_fn(infer)
            modes[mode] = (
                lambda train=train: wait(train()),
                lambda inference=inference: wait(inference()),
            )
        return modes

    def _jax_modes(self, forward, variables, query, keys):
        import jax

        values = [v.value for v in variables]
        q, k = jax.numpy.asarray(query), jax.numpy.asarray(keys)

        def loss(values, q, k):
            return forward(values, q, k).sum()

        grad = jax.grad(loss, argnums=(0, 1, 2))
        modes = {}
        for mode, compile_fn in (("eager", lambda f: f), ("jax.jit", jax.jit)):
            train, inference = compile_fn(grad), compile_fn(forward)
            modes[mode] = (
                lambda train=train: jax.block_until_ready(train(values, q, k)),
                lambda inference=inference: jax.block_until_ready(
                    inference(values, q, k)
                ),
            )
        return modes

    def peers(self, query, keys, lengths, weights):
        """{name: modes} of the peers installed for this backend."""
        if self.backend == "torch":
            found = {
                "DeepCTR-Torch": self._deepctr_torch(query, keys, lengths, weights),
                "FuxiCTR": self._fuxictr(query, keys, lengths, weights),
            }
        elif self.backend == "tensorflow":
            found = {"DeepCTR": self._deepctr_tf(query, keys, lengths, weights)}
        else:
            found = {}
        return {name: modes for name, modes in found.items() if modes is not None}

    def _deepctr_torch(self, query, keys, lengths, weights):
        try:
            import torch
            from deepctr_torch.layers import AttentionSequencePoolingLayer
        except ImportError:
            return None
        layer = AttentionSequencePoolingLayer(
            att_hidden_units=UNITS,
            embedding_dim=query.shape[-1],
            weight_normalization=True,
        ).eval()
        att = layer.local_att
        with torch.no_grad():
            for i, linear in enumerate([*att.dnn.linears, att.dense]):
                linear.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
        device = self.torch_device
        layer.to(device)
        params = list(layer.parameters())
        q = torch.tensor(query, device=device, requires_grad=True)
        k = torch.tensor(keys, device=device, requires_grad=True)
        n = torch.tensor(lengths.astype("int64"), device=device)

        def train_step(q, k):
            loss = layer(q, k, n).sum()
            return torch.autograd.grad(loss, [*params, q, k])

        def infer(q, k):
            with torch.no_grad():
                return layer(q, k, n)

        return self._torch_compiled(train_step, infer, q, k)

    def _fuxictr(self, query, keys, lengths, weights):
        din_attention = load_fuxictr_din_attention()
        if din_attention is None:
            return None
        import torch

        layer = din_attention(
            embedding_dim=query.shape[-1],
            attention_units=list(UNITS),
            hidden_activations="Sigmoid",
            use_softmax=True,
        ).eval()
        linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, linear in enumerate(linears):
                linear.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
        device = self.torch_device
        layer.to(device)
        params = list(layer.parameters())
        # FuxiCTR takes the candidate as (B, E) and the mask of the valid
        # positions, which its DIN model makes from the item ids.
        q = torch.tensor(query[:, 0], device=device, requires_grad=True)
        k = torch.tensor(keys, device=device, requires_grad=True)
        mask = torch.arange(keys.shape[1])[None, :] < torch.from_numpy(lengths)
        mask = mask.to(device)

        def train_step(q, k):
            loss = layer(q, k, mask).sum()
            return torch.autograd.grad(loss, [*params, q, k])

        def infer(q, k):
            with torch.no_grad():
                return layer(q, k, mask)

        return self._torch_compiled(train_step, infer, q, k)

    def _deepctr_tf(self, query, keys, lengths, weights):
        try:
            import tensorflow as tf
            from deepctr.layers.sequence import AttentionSequencePoolingLayer
        except ImportError:
            return None
        layer = AttentionSequencePoolingLayer(
            att_hidden_units=UNITS, weight_normalization=True
        )
        q, k, n = tf.constant(query), tf.constant(keys), tf.constant(lengths)
        layer([q, k, n])
        n_hidden = len(UNITS)
        kernels, biases = weights[0 : 2 * n_hidden : 2], weights[1 : 2 * n_hidden : 2]
        layer.set_weights([weights[-2], weights[-1], *kernels, *biases])

        def train_step():
            with tf.GradientTape() as tape:
                tape.watch([q, k])
                loss = tf.reduce_sum(layer([q, k, n], training=True))
            return tape.gradient(loss, [*layer.trainable_weights, q, k])

        def infer():
            return layer([q, k, n], training=False)

        return self._tf_compiled(train_step, infer)


def load_fuxictr_din_attention():
    """FuxiCTR's `DIN_Attention` class, or `None` where FuxiCTR is missing.

    `fuxictr.pytorch.layers` and `fuxictr.pytorch.layers.blocks` import
    every FuxiCTR layer in their `__init__`, and the embeddings import the
    data pipeline (polars, ray, h5py, pyarrow). The attention module itself
    imports torch and FuxiCTR's MLP block only, so those two packages are
    entered as bare package modules (their folders, without running their
    `__init__`) before it is imported.
    """
    import importlib.util
    import types

    try:
        spec = importlib.util.find_spec("fuxictr")
    except ImportError:
        return None
    if spec is None:
        return None
    root = Path(spec.submodule_search_locations[0])
    for package in ("pytorch.layers", "pytorch.layers.blocks"):
        name = f"fuxictr.{package}"
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(root.joinpath(*package.split(".")))]
            sys.modules[name] = module
    try:
        from fuxictr.pytorch.layers.attentions.target_attention import DIN_Attention
    except ImportError as error:
        print(f"FuxiCTR left out: {error}", file=sys.stderr)
        return None
    return DIN_Attention


def to_numpy(x):
    """A backend's tensor (torch, TensorFlow, JAX) as a NumPy array."""
    import numpy as np

    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):  # TensorFlow
        return x.numpy()
    return np.asarray(x)


def check_outputs(impls, dim, tolerance=1e-4):
    """Checks that every implementation's eager inference output is
    keras-din's; returns {implementation: largest absolute difference}.

    The outputs are compared as `(B * C, E)`: the peers take the flattened
    candidates, and FuxiCTR returns `(B, E)`.
    """
    import numpy as np

    def output(modes):
        return to_numpy(modes["eager"][1]()).reshape(-1, dim)

    reference = output(impls["keras-din"])
    differences = {}
    for impl, modes in impls.items():
        result = output(modes)
        if result.shape != reference.shape:
            raise SystemExit(
                f"{impl}'s output has {result.shape[0]} rows, keras-din's "
                f"{reference.shape[0]}."
            )
        differences[impl] = float(np.abs(result - reference).max())
        scale = 1.0 + np.abs(reference)
        if not np.all(np.abs(result - reference) <= tolerance * scale):
            raise SystemExit(
                f"{impl}'s output differs from keras-din's by up to "
                f"{differences[impl]:.3g} (tolerance {tolerance} relative)."
            )
    return differences


def peak_rss_rise(fn):
    """Rise of the peak resident set (bytes) while `fn` runs, or None."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return None

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        return None

    before = status("VmRSS:")
    fn()
    return status("VmHWM:") - before


def peak_rows(size_name, calls, measure):
    """One result row per `(impl, mode)` of `calls`: the peak memory in MB
    that `measure(fn)` gives in bytes (None where it cannot tell)."""
    rows = []
    for (impl, mode), fn in calls.items():
        peak = measure(fn)
        rows.append(
            {
                "size": size_name,
                "impl": impl,
                "mode": mode,
                "peak_mb": None if peak is None else peak / 2**20,
            }
        )
    return rows


def peak_memory(backend, fn, on_gpu):
    """Rise of the peak memory (bytes) while `fn` runs, or None.

    On the CPU, of the process's resident set; on a GPU, of the device
    allocator's (torch and TensorFlow; JAX cannot reset its peak).
    """
    if not on_gpu:
        return peak_rss_rise(fn)
    if backend == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        return torch.cuda.max_memory_allocated() - before
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["current"]
        fn()
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] - before
    return None


def matmul_rate(backend, repeats, n):
    """float32 GFLOP/s of an n x n matmul in this backend."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).random((n, n), "float32"))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        # Fetching one element waits for the device without copying it all.
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a)[0, 0])
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def nominal_gflop(size, phase):
    n = size["batch"] * size["candidates"] * size["history"]
    e, (h1, h2) = size["dim"], UNITS
    forward = 2 * n * (4 * e * h1 + h1 * h2 + h2)
    return forward * (3 if phase == "train" else 1) / 1e9


def import_baseline(folder):
    """The `keras_din` package of another checkout, as `keras_din_baseline`.

    A copy whose imports and serialization package are renamed, so that both
    versions live in one process and are timed interleaved.
    """
    source = Path(folder) / "keras_din"
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"--baseline: no keras_din package in {folder}")
    target = Path(tempfile.mkdtemp()) / "keras_din_baseline"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bkeras_din\b", "keras_din_baseline", text)
        path.write_text(text)
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("keras_din_baseline")


def worker(
    backend,
    sizes,
    repeats,
    skip_eager_jax,
    torch_compile,
    memory=False,
    require_gpu=False,
    baseline=None,
    torch_threads=None,
):
    """Times every call; with `memory`, measures peak memory instead.

    Memory is measured in its own process, under a malloc setting that would
    slow the timed runs down (see `run_worker`).
    """
    import keras

    threads = None
    if backend == "torch":
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        threads = torch.get_num_threads()
    baseline = import_baseline(baseline) if baseline else None
    runner = Runner(backend, torch_compile)
    gpu = runner.gpu
    if require_gpu and gpu is None:
        raise SystemExit(f"--require-gpu: the {backend} backend sees no GPU.")
    results = {
        "backend": backend,
        "keras": keras.__version__,
        "accelerator": gpu,
        "torch_threads": threads,
        "sizes": sizes,
        "matmul_gflops": matmul_rate(backend, repeats, 2048 if gpu is None else 8192),
        "rows": [],
    }
    for size_name, size in sizes.items():
        query, keys, lengths, weights = make_case(size)
        valid = int(lengths.sum()) * size["candidates"]
        results.setdefault("valid_positions", {})[size_name] = valid
        flat = flatten_candidates(query, keys, lengths)
        impls = {"keras-din": runner.keras_din(query, keys, lengths, weights)}
        if backend != "jax":  # JAX computes every position anyway
            impls["keras-din dense"] = runner.keras_din(
                query, keys, lengths, weights, skip_padding=False
            )
        if baseline is not None:
            impls["keras-din baseline"] = runner.keras_din(
                query, keys, lengths, weights, package=baseline
            )
            if backend != "jax":
                impls["keras-din dense baseline"] = runner.keras_din(
                    query, keys, lengths, weights, False, baseline
                )
        impls["concat"] = runner.concat(*flat, weights)
        impls.update(runner.peers(*flat, weights))
        if not memory:
            differences = check_outputs(impls, size["dim"])
            results.setdefault("max_abs_difference", {})[size_name] = differences
            print(
                f"[{backend}] {size_name} outputs agree with keras-din: "
                + ", ".join(f"{k} {v:.1e}" for k, v in differences.items()),
                file=sys.stderr,
            )
        for phase_index, phase in enumerate(("train", "infer")):
            calls = {}
            for impl, modes in impls.items():
                for mode, fns in modes.items():
                    if mode == "eager" and backend == "jax" and skip_eager_jax:
                        continue
                    calls[(impl, mode)] = fns[phase_index]
            for fn in calls.values():  # warm up, compile
                fn()
                fn()
            if memory:
                if phase == "train":
                    measure = functools.partial(
                        peak_memory, backend, on_gpu=gpu is not None
                    )
                    results["rows"] += peak_rows(size_name, calls, measure)
                continue
            times = {key: [] for key in calls}
            order, shuffler = list(calls), random.Random(0)
            for _ in range(repeats):
                # In a new order each time: what runs just before a call (a
                # large one evicts the caches) changes its time.
                shuffler.shuffle(order)
                for key in order:
                    start = time.perf_counter()
                    calls[key]()
                    times[key].append(time.perf_counter() - start)
            for (impl, mode), ts in times.items():
                row = {
                    "size": size_name,
                    "phase": phase,
                    "impl": impl,
                    "mode": mode,
                    "median_ms": 1e3 * statistics.median(ts),
                    "times_ms": [1e3 * t for t in ts],
                    "gflops": nominal_gflop(size, phase) / statistics.median(ts),
                }
                results["rows"].append(row)
            print(f"[{backend}] {size_name} {phase} done", file=sys.stderr)
    return results


# --------------------------------------------------------------------------
# The driver: one worker per backend, then the tables.


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}"


def print_tables(all_results, tuned_malloc=False):
    print(f"\nMachine: {machine_description()}")
    if tuned_malloc:
        print(f"Timed with MALLOC_MMAP_THRESHOLD_={TUNED_MMAP_THRESHOLD}.")
    print()
    for results in all_results:
        backend = results["backend"]
        rate = results["matmul_gflops"]
        device = results.get("accelerator") or "CPU"
        threads = results.get("torch_threads")
        device += f", {threads} intra-op threads" if threads else ""
        print(
            f"### {backend} (keras {results['keras']}; {device}; float32 matmul "
            f"{rate:.1f} GFLOP/s)\n"
        )
        print(
            "| size | phase | implementation | mode | median ms | "
            "x vs keras-din | GFLOP/s | % of matmul | peak MB |"
        )
        print("|---|---|---|---|---:|---:|---:|---:|---:|")
        ours = {
            (r["size"], r["phase"], r["mode"]): r
            for r in results["rows"]
            if r["impl"] == "keras-din"
        }
        for r in results["rows"]:
            reference = ours.get((r["size"], r["phase"], r["mode"]))
            ratio = (
                f"{r['median_ms'] / reference['median_ms']:.2f}" if reference else "-"
            )
            peak = f"{r['peak_mb']:.0f}" if r.get("peak_mb") is not None else ""
            print(
                f"| {r['size']} | {r['phase']} | {r['impl']} | {r['mode']} | "
                f"{r['median_ms']:.1f} | {ratio} | {r['gflops']:.1f} | "
                f"{100 * r['gflops'] / rate:.0f}% | {peak} |"
            )
        print()
    print(
        "x vs keras-din: the row's median time over keras-din's in the same "
        "size, phase and mode (above 1: keras-din is faster)."
    )


def print_sweep_tables(all_results):
    """The history-length sweep, one column per T: time per step (and its
    ratio to keras-din's), time and peak memory per valid position."""
    for results in all_results:
        print_sweep(results)
    print(
        "\nValid positions: the sum of the history lengths in the batch (about "
        "half of B*T). A cost linear in the valid positions keeps its per-position "
        "row flat across T."
    )


def print_sweep(results):
    """`print_sweep_tables` for one backend."""
    names = [name for name in results["sizes"] if name in SWEEP]
    if not names:
        return
    sizes, valid = results["sizes"], results["valid_positions"]
    rows = [r for r in results["rows"] if r["size"] in names]
    ours = {
        (r["size"], r["phase"], r["mode"]): r for r in rows if r["impl"] == "keras-din"
    }
    keys = list(dict.fromkeys((r["phase"], r["impl"], r["mode"]) for r in rows))
    cell = {(r["size"], r["phase"], r["impl"], r["mode"]): r for r in rows}
    columns = " | ".join(
        f"T={sizes[n]['history']} (B={sizes[n]['batch']})" for n in names
    )

    def table(title, value, train_only=False):
        print(f"\n#### {results['backend']}: {title}\n")
        print(f"| phase | implementation | mode | {columns} |")
        print("|---|---|---|" + "---:|" * len(names))
        for phase, impl, mode in keys:
            values = [value(cell.get((n, phase, impl, mode)), n) for n in names]
            if train_only and (phase != "train" or not any(values)):
                continue
            print(f"| {phase} | {impl} | {mode} | " + " | ".join(values) + " |")

    def time(row, name):
        if row is None:
            return ""
        text = f"{row['median_ms']:.1f}"
        reference = ours.get((name, row["phase"], row["mode"]))
        if reference is None or row["impl"] == "keras-din":
            return text
        return f"{text} ({row['median_ms'] / reference['median_ms']:.2f})"

    def per_position(row, name):
        return "" if row is None else f"{1e6 * row['median_ms'] / valid[name]:.0f}"

    def peak(row, name):
        if row is None or row.get("peak_mb") is None:
            return ""
        per_position = row["peak_mb"] * 2**20 / valid[name]
        return f"{row['peak_mb']:.1f} ({per_position:.0f})"

    table("ms per step (x vs keras-din)", time)
    table("ns per valid position", per_position)
    table("peak MB of a training step (bytes per valid position)", peak, True)


@contextlib.contextmanager
def busy_cores(count):
    """`count` processes that spin on a core each while the block runs: the
    shared machine of `--busy-cores`, made the same from run to run."""
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_worker(backend, args, repeats, memory=False):
    """Runs `worker` for one backend in a fresh process; returns its results."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    command = [sys.executable, __file__, "--worker", backend, "--worker-out", path]
    sizes = [s for s in args.sizes if s in MEMORY_SIZES] if memory else args.sizes
    command += ["--sizes", *sizes, "--repeats", str(repeats)]
    command += ["--quick"] * args.quick + ["--jax-eager"] * args.jax_eager
    command += ["--no-torch-compile"] * args.no_torch_compile
    command += ["--require-gpu"] * args.require_gpu
    command += ["--memory"] * memory
    command += ["--baseline", args.baseline] * bool(args.baseline)
    if args.torch_threads:
        command += ["--torch-threads", str(args.torch_threads)]
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        # DeepCTR is written for tf.keras 2; keras-din uses Keras 3.
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    # Full float32 matmuls on a GPU (no TF32), as torch does by default, so
    # that every backend's table and matmul rate are of the same precision.
    env.setdefault("NVIDIA_TF32_OVERRIDE", "0")
    env.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
    if memory:
        # Large blocks straight from mmap and back on free, so that the
        # resident set follows the live tensors (glibc otherwise keeps freed
        # blocks and a step's peak would not show). Every large allocation
        # then faults its pages in afresh, which is why timings run without.
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    elif args.tuned_malloc:
        env["MALLOC_MMAP_THRESHOLD_"] = TUNED_MMAP_THRESHOLD
    if subprocess.run(command, env=env).returncode != 0:
        os.unlink(path)
        raise SystemExit(f"The {backend} worker failed (its error is above).")
    with open(path) as f:
        results = json.load(f)
    os.unlink(path)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow", "jax"])
    parser.add_argument(
        "--sizes", nargs="+", choices=list(SIZES), default=DEFAULT_SIZES
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="the history-length sweep: --sizes " + " ".join(SWEEP),
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        metavar="N",
        help="torch's intra-op threads in the torch worker",
    )
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        metavar="N",
        help="keep N cores busy (a spinning process each) while timing",
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats")
    parser.add_argument("--jax-eager", action="store_true", help="also time JAX eager")
    parser.add_argument(
        "--no-torch-compile", action="store_true", help="skip torch.compile"
    )
    parser.add_argument(
        "--tuned-malloc",
        action="store_true",
        help=f"time with MALLOC_MMAP_THRESHOLD_={TUNED_MMAP_THRESHOLD} (glibc)",
    )
    parser.add_argument(
        "--require-gpu",
        action="store_true",
        help="stop where a backend sees no GPU (for GPU tables)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also time the keras_din package of this checkout (as 'keras-din "
        "baseline'), interleaved with this one: a before/after in one run",
    )
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sweep:
        args.sizes = list(SWEEP)
    sizes = {k: (QUICK_SIZES if args.quick else SIZES)[k] for k in args.sizes}
    repeats = 3 if args.quick else args.repeats

    if args.worker:
        results = worker(
            args.worker,
            sizes,
            repeats,
            not args.jax_eager,
            not args.no_torch_compile,
            memory=args.memory,
            require_gpu=args.require_gpu,
            baseline=args.baseline,
            torch_threads=args.torch_threads,
        )
        with open(args.worker_out, "w") as f:
            json.dump(results, f)
        return

    all_results = []
    for backend in args.backends:
        with busy_cores(args.busy_cores):
            results = run_worker(backend, args, repeats)
        if any(size in MEMORY_SIZES for size in args.sizes):
            peaks = run_worker(backend, args, repeats, memory=True)["rows"]
            peaks = {(r["size"], r["impl"], r["mode"]): r["peak_mb"] for r in peaks}
            for row in results["rows"]:
                key = (row["size"], row["impl"], row["mode"])
                if row["phase"] == "train" and key in peaks:
                    row["peak_mb"] = peaks[key]
        all_results.append(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_results, f, indent=1)
    print_tables(all_results, args.tuned_malloc)
    if any(size in SWEEP for size in args.sizes):
        print_sweep_tables(all_results)


if __name__ == "__main__":
    main()
