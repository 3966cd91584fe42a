"""Train the DIN model data-parallel on every visible device of the backend.

The model and the synthetic data are those of `din_functional.py`. Each
backend uses its own engine; `--batch-size` is the global batch, split evenly
over the devices (or processes):

    # JAX: keras.distribution.DataParallel over all devices (GPUs, else CPU)
    KERAS_BACKEND=jax python examples/train_distributed.py
    # TensorFlow: tf.distribute.MirroredStrategy over all GPUs (else the CPU)
    KERAS_BACKEND=tensorflow python examples/train_distributed.py
    # torch: DistributedDataParallel, one process per GPU, started by torchrun
    KERAS_BACKEND=torch torchrun --nproc-per-node=gpu examples/train_distributed.py

Without GPUs, `--cpu-devices 2` splits the CPU into two devices (JAX and
TensorFlow), and `torchrun --nproc-per-node=2` starts two CPU processes that
talk over gloo. Several hosts: see docs/guides/scaling.md (JAX reads
KERAS_DISTRIBUTION_* variables, TensorFlow TF_CONFIG, torch torchrun's).
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--samples", type=int, default=20000)
parser.add_argument("--batch-size", type=int, default=512, help="global batch")
parser.add_argument(
    "--cpu-devices",
    type=int,
    default=0,
    help="split the CPU into this many devices (JAX, TensorFlow; 0: don't)",
)
ARGS = parser.parse_args()
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

# Devices are fixed when the backend starts: set them up before `import keras`.
if ARGS.cpu_devices and BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={ARGS.cpu_devices}"
    )
if BACKEND == "tensorflow":
    import tensorflow as tf

    if ARGS.cpu_devices:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * ARGS.cpu_devices,
        )

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from din_functional import din_model  # noqa: E402
from din_functional import synthetic_data  # noqa: E402


def compile_din(model):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), "accuracy"],
    )
    return model


def report(model, test_x, test_y):
    metrics = model.evaluate(
        test_x, test_y, batch_size=1024, verbose=0, return_dict=True
    )
    print("test " + ", ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))


def train_jax(train, test):
    # Several hosts: each process calls initialize() first (it reads
    # KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and _PROCESS_ID).
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes > 1:
        keras.distribution.initialize()
    import jax

    devices = keras.distribution.list_devices()  # every device of every host
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    print(f"jax: DataParallel over {len(devices)} devices, {processes} process(es)")
    # Each process feeds its own share of every global batch.
    index, count = jax.process_index(), jax.process_count()
    (x, y), batch = train, ARGS.batch_size // count
    x = {name: value[index::count] for name, value in x.items()}
    model = compile_din(din_model())
    model.fit(x, y[index::count], batch_size=batch, epochs=ARGS.epochs, verbose=2)
    report(model, *test)


def train_tensorflow(train, test):
    if "TF_CONFIG" in os.environ:  # several hosts, one worker process each
        return train_tensorflow_multi_worker(train, test)
    if ARGS.cpu_devices:
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(cpus)
    else:
        strategy = tf.distribute.MirroredStrategy()  # all GPUs, else the CPU
    print(f"tensorflow: MirroredStrategy, {strategy.num_replicas_in_sync} replicas")
    with strategy.scope():
        model = compile_din(din_model())
    model.fit(*train, batch_size=ARGS.batch_size, epochs=ARGS.epochs, verbose=2)
    report(model, *test)


def train_tensorflow_multi_worker(train, test):
    """MultiWorkerMirroredStrategy. Keras 3's `fit` fails under it
    (keras-team/keras#20585), so a short custom loop trains instead."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    print(f"tensorflow: MultiWorkerMirroredStrategy, {replicas} replicas")
    with strategy.scope():
        model = compile_din(din_model())
        optimizer = model.optimizer
    loss_fn = keras.losses.BinaryCrossentropy(reduction="sum")
    options = tf.data.Options()  # each worker reads its share of every batch
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            ((train[0]["candidate"], train[0]["history"]), train[1])
        )
        .shuffle(len(train[1]), seed=0)
        .batch(ARGS.batch_size, drop_remainder=True)
        .with_options(options)
    )

    @tf.function
    def step(inputs, labels):
        def replica_step(inputs, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(inputs, training=True))
                loss = loss / ARGS.batch_size  # mean over the global batch
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )
            return loss

        losses = strategy.run(replica_step, args=(inputs, labels))
        return strategy.reduce("SUM", losses, axis=None)

    for epoch in range(ARGS.epochs):
        losses = [
            float(step(x, y))
            for x, y in strategy.experimental_distribute_dataset(dataset)
        ]
        print(f"epoch {epoch + 1}/{ARGS.epochs} - loss: {np.mean(losses):.4f}")
    # Keras 3's evaluate() fails under this strategy too: score by hand.
    (test_x, test_y), probabilities = test, []
    for start in range(0, len(test_y), 1024):
        batch = [
            test_x[name][start : start + 1024] for name in ("candidate", "history")
        ]
        probabilities.append(keras.ops.convert_to_numpy(model(batch)))
    auc = keras.metrics.AUC()
    auc.update_state(test_y, np.concatenate(probabilities))
    accuracy = np.mean((np.concatenate(probabilities) > 0.5) == test_y)
    print(f"test auc: {float(auc.result()):.4f}, accuracy: {accuracy:.4f}")


def train_torch(train, test):
    """Keras 3 has no torch backend for `keras.distribution`; a Keras model is
    a `torch.nn.Module` on this backend, so DistributedDataParallel wraps it."""
    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:  # not started by torchrun: one device
        print("torch: one device; start with torchrun for several (see --help)")
        model = compile_din(din_model())
        model.fit(*train, batch_size=ARGS.batch_size, epochs=ARGS.epochs, verbose=2)
        report(model, *test)
        return

    if torch.cuda.is_available():  # one GPU per process; Keras then uses it
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    keras.utils.set_random_seed(0)  # DDP also copies rank 0's weights to all
    model = compile_din(din_model())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = keras.losses.BinaryCrossentropy()
    if rank == 0:
        print(f"torch: DistributedDataParallel over {world} processes")

    (x, y), local = train, ARGS.batch_size // world
    inputs = [x["candidate"], x["history"]]
    steps = len(y) // ARGS.batch_size
    for epoch in range(ARGS.epochs):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for step in range(steps):
            # This process's share of the global batch.
            start = step * ARGS.batch_size + rank * local
            part = order[start : start + local].numpy()
            outputs = ddp([keras.ops.convert_to_tensor(v[part]) for v in inputs])
            loss = loss_fn(keras.ops.convert_to_tensor(y[part]), outputs)
            optimizer.zero_grad()
            loss.backward()  # gradients are averaged over the processes
            optimizer.step()
            total += float(loss.detach())
        if rank == 0:
            print(f"epoch {epoch + 1}/{ARGS.epochs} - loss: {total / steps:.4f}")
    if rank == 0:
        report(model, *test)
    dist.barrier()  # the other processes wait for rank 0's evaluation
    dist.destroy_process_group()


def main():
    keras.utils.set_random_seed(0)
    train = synthetic_data(ARGS.samples, seed=0)
    test = synthetic_data(ARGS.samples // 4, seed=1)
    print(f"backend: {BACKEND}, keras {keras.__version__}")
    trainers = {"jax": train_jax, "tensorflow": train_tensorflow, "torch": train_torch}
    trainers[BACKEND](train, test)


if __name__ == "__main__":
    main()
