"""Train one tiny DIN model on one device and data-parallel; save both results.

Run by `tests/test_distributed.py` in a subprocess, because each backend's
devices must be set up before the backend starts:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \
        python tests/distributed_worker.py OUT.npz
    KERAS_BACKEND=tensorflow python tests/distributed_worker.py OUT.npz
    KERAS_BACKEND=torch torchrun --standalone --nproc-per-node 2 \
        tests/distributed_worker.py OUT.npz

Both trainings start from the same weights and see the same batches in the
same order: plain SGD, no dropout, no batch statistics, so data-parallel
training must give the single-device weights up to float rounding. The file
OUT.npz holds `init_*`, `single_*` and `parallel_*` weight arrays and
`replicas`, the number of devices (or processes) the parallel run used.
"""

import faulthandler
import os
import sys

import numpy as np

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
REPLICAS = 2
STEPS = 4
GLOBAL_BATCH = 16
LEARNING_RATE = 0.5
ITEMS = 30
HISTORY = 6

if BACKEND == "tensorflow":
    # Two logical CPU devices; this must happen before TensorFlow starts.
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
    )

import keras  # noqa: E402

from keras_din import AttentionSequencePoolingLayer  # noqa: E402


def din_model():
    candidate = keras.Input((1,), dtype="int32", name="candidate")
    history = keras.Input((HISTORY,), dtype="int32", name="history")
    items = keras.layers.Embedding(ITEMS, 4, mask_zero=True)
    query = items(candidate)
    interest = AttentionSequencePoolingLayer(
        att_hidden_units=(8, 4), weight_normalization=True
    )([query, items(history)])
    features = keras.layers.Flatten()(keras.layers.Concatenate()([query, interest]))
    hidden = keras.layers.Dense(8, activation="tanh")(features)
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model([candidate, history], output)


def data():
    """Histories padded with 0 (some empty) and labels that depend on them."""
    rng = np.random.default_rng(7)
    samples = STEPS * GLOBAL_BATCH
    lengths = rng.integers(0, HISTORY + 1, size=samples)
    histories = rng.integers(1, ITEMS, size=(samples, HISTORY))
    histories[np.arange(HISTORY)[None, :] >= lengths[:, None]] = 0
    candidates = rng.integers(1, ITEMS, size=(samples, 1))
    labels = np.any(histories % 3 == candidates % 3, axis=1)
    return [candidates.astype("int32"), histories.astype("int32")], labels.astype(
        "float32"
    )[:, None]


def compiled(model):
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="binary_crossentropy"
    )
    return model


def single_device(init, inputs, labels):
    """The reference: plain `fit` on one device, global batches in order."""
    model = compiled(din_model())
    model.set_weights(init)
    model.fit(inputs, labels, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    return model.get_weights()


def save(path, init, single, parallel, replicas):
    arrays = {"replicas": np.array(replicas)}
    for name, weights in (("init", init), ("single", single), ("parallel", parallel)):
        arrays.update({f"{name}_{i}": w for i, w in enumerate(weights)})
    np.savez(path, **arrays)


def run_jax(path):
    keras.utils.set_random_seed(0)
    init = din_model().get_weights()
    inputs, labels = data()
    single = single_device(init, inputs, labels)

    devices = keras.distribution.list_devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        model = compiled(din_model())
        model.set_weights(init)
        model.fit(inputs, labels, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    # Every variable is replicated on all devices of the mesh.
    replicas = min(len(v.value.sharding.device_set) for v in model.weights)
    save(path, init, single, model.get_weights(), replicas)


def run_tensorflow(path):
    keras.utils.set_random_seed(0)
    init = din_model().get_weights()
    inputs, labels = data()
    single = single_device(init, inputs, labels)

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = compiled(din_model())
        model.set_weights(init)
    model.fit(inputs, labels, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    save(path, init, single, model.get_weights(), strategy.num_replicas_in_sync)


def run_torch(path):
    """DistributedDataParallel over torchrun processes, gloo on the CPU.

    Keras 3.15 has no torch support in `keras.distribution`; a Keras model is
    a `torch.nn.Module` on this backend, so DDP wraps it and a short torch
    loop trains it. Each process takes its own slice of every global batch.
    """
    import torch
    import torch.distributed as dist

    # A stuck process prints every thread's stack and fails, well before the
    # test's own time limit.
    faulthandler.dump_traceback_later(600, exit=True)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    keras.utils.set_random_seed(0)
    model = din_model()
    init = model.get_weights()
    inputs, labels = data()

    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = keras.losses.BinaryCrossentropy()
    local = GLOBAL_BATCH // world
    for step in range(STEPS):
        start = step * GLOBAL_BATCH + rank * local
        part = slice(start, start + local)
        outputs = ddp([keras.ops.convert_to_tensor(x[part]) for x in inputs])
        loss = loss_fn(keras.ops.convert_to_tensor(labels[part]), outputs)
        optimizer.zero_grad()
        loss.backward()  # DDP averages the gradients over the processes
        optimizer.step()
    parallel = model.get_weights()

    # Rank 0 writes the result; every other rank checks it holds the same.
    gathered = [None] * world
    dist.all_gather_object(gathered, parallel)
    if rank == 0:
        for other in gathered[1:]:
            for mine, theirs in zip(parallel, other, strict=True):
                np.testing.assert_array_equal(mine, theirs)
        single = single_device(init, inputs, labels)
        save(path, init, single, parallel, world)
    dist.barrier()
    # Once, on a loaded machine, rank 0 hung after all of this, with its
    # result saved and rank 1 gone: in gloo's teardown or at exit. Nothing is
    # left to do, so leave without them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    runners = {"jax": run_jax, "tensorflow": run_tensorflow, "torch": run_torch}
    runners[BACKEND](sys.argv[1])
