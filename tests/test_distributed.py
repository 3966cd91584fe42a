"""Data-parallel training gives the single-device weights, on every backend.

Each test runs `distributed_worker.py` in a subprocess (the devices must be
set up before the backend starts), which trains the same DIN model from the
same weights on the same batches twice: with plain `fit` on one device, and
data-parallel over two CPU devices or processes. The test compares the two.
Each backend's test runs in that backend's tox environment only.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
BACKEND = keras.backend.backend()


def only_on(backend):
    return pytest.mark.skipif(
        BACKEND != backend,
        reason=f"{backend} data-parallel test; runs in the `{backend}` tox "
        f"environment (KERAS_BACKEND={backend})",
    )


def run_worker(command, tmp_path, **env):
    """Run the worker on the CPU only, also on GPU hosts; load its weights."""
    out = tmp_path / "weights.npz"
    environ = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **env}
    result = subprocess.run(
        [*command, str(WORKER), str(out)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return dict(np.load(out))


def assert_same_training(weights):
    """Both trainings moved the weights, and to the same place."""
    assert int(weights["replicas"]) == 2
    count = sum(name.startswith("init_") for name in weights)
    assert count > 0
    moved = max(
        np.abs(weights[f"single_{i}"] - weights[f"init_{i}"]).max()
        for i in range(count)
    )
    assert moved > 1e-2, "the reference training did not change the weights"
    for i in range(count):
        np.testing.assert_allclose(
            weights[f"parallel_{i}"],
            weights[f"single_{i}"],
            rtol=0,
            atol=1e-4,
            err_msg=f"weight {i}",
        )


@only_on("jax")
def test_jax_data_parallel_matches_single_device(tmp_path):
    """`keras.distribution.DataParallel` over two virtual CPU devices."""
    flags = os.environ.get("XLA_FLAGS", "")
    weights = run_worker(
        [sys.executable],
        tmp_path,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=2".strip(),
    )
    assert_same_training(weights)


@only_on("tensorflow")
def test_tensorflow_mirrored_strategy_matches_single_device(tmp_path):
    """`tf.distribute.MirroredStrategy` over two logical CPU devices."""
    weights = run_worker([sys.executable], tmp_path)
    assert_same_training(weights)


@only_on("torch")
def test_torch_ddp_matches_single_device(tmp_path):
    """`DistributedDataParallel`, two processes started by torchrun (gloo)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    weights = run_worker(
        [*torchrun, "--standalone", "--nproc-per-node", "2"],
        tmp_path,
        OMP_NUM_THREADS="1",
    )
    assert_same_training(weights)


def test_distributed_example_runs():
    """examples/train_distributed.py on two CPU devices (torch: processes)."""
    example = [str(ROOT / "examples" / "train_distributed.py")]
    example += ["--epochs", "1", "--samples", "1024", "--batch-size", "256"]
    if BACKEND == "torch":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", "2", *example]
        expected = "DistributedDataParallel over 2 processes"
    else:
        command = [sys.executable, *example, "--cpu-devices", "2"]
        expected = {
            "jax": "DataParallel over 2 devices",
            "tensorflow": "MirroredStrategy, 2",
        }[BACKEND]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert expected in result.stdout
    assert "test " in result.stdout and "auc" in result.stdout
