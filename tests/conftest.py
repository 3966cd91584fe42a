import os

import keras
import numpy as np
import pytest

keras.config.disable_traceback_filtering()

BACKEND = keras.backend.backend()


def gpu_visible():
    """Whether the active backend sees a GPU."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if BACKEND == "torch":
        import torch

        return torch.cuda.is_available()
    if BACKEND == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    return False


def pytest_configure(config):
    """With KERAS_DIN_REQUIRE_GPU=1 (the gpu-* tox environments), refuse to
    run where the backend sees no GPU, so a GPU run never passes on the CPU."""
    if os.environ.get("KERAS_DIN_REQUIRE_GPU", "") not in ("", "0") and (
        not gpu_visible()
    ):
        raise pytest.UsageError(
            f"KERAS_DIN_REQUIRE_GPU is set, but no GPU is visible to the "
            f"{BACKEND} backend; refusing to run the GPU tests on the CPU."
        )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


def pytest_collection_modifyitems(config, items):
    if gpu_visible():
        return
    skip = pytest.mark.skip(reason=f"no GPU visible to the {BACKEND} backend")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """A fixed seed per test, and the float32 policy restored after it.

    `clear_session` resets Keras's global state (layer names, the
    TensorFlow graph and kernel caches, torch's dynamo caches) but skips its
    `gc.collect()`: a full collection walks every live object of the
    process, millions by the end of a run with TensorFlow or JAX imported,
    and took seconds per test, more than half of a run. Python's own
    collector still frees what the tests leave in cycles."""
    keras.utils.set_random_seed(1337)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def force_block_size(monkeypatch):
    """`force_block_size(P)` makes the padding-skipping layers gather blocks
    of `P` positions, whatever the history length (`None`: their own
    choice). The tests' histories are too short for their own choice to be
    above 1."""

    def force(size):
        if size is not None:
            monkeypatch.setattr(
                "keras_din.layers.attention_sequence_pooling_layer.block_size",
                lambda history: size,
            )

    return force
