"""Makes the golden `.keras` files that every backend's test run loads.

For each backend and each model of `tests/din_models.py`, this trains the
model briefly on that backend, saves it as `<backend>_<kind>.keras` here, and
stores inputs it never saw (new batch size and history length, an empty
history) with its predictions as `<backend>_<kind>.npz`.
`tests/test_saving.py` loads every file on the backend under test and
compares its predictions with the stored ones.

Regenerate all of them (needs TensorFlow, PyTorch and JAX installed):

    python tests/golden/make_golden.py

`--backends jax` remakes one backend's files only.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BACKENDS = ("tensorflow", "torch", "jax")


def make_files(backend):
    sys.path[:0] = [str(ROOT), str(HERE.parent)]
    import keras
    import numpy as np
    from din_models import KINDS
    from din_models import din_inputs
    from din_models import din_model
    from din_models import train_briefly

    assert keras.backend.backend() == backend
    for index, kind in enumerate(KINDS):
        keras.utils.set_random_seed(index)
        model = train_briefly(din_model(kind), kind, seed=index)
        model.save(HERE / f"{backend}_{kind}.keras")
        inputs = din_inputs(kind, batch=7, history=9, seed=100 + index)
        expected = model.predict(inputs, verbose=0)
        arrays = {f"input_{i}": x for i, x in enumerate(inputs)}
        np.savez(HERE / f"{backend}_{kind}.npz", expected=expected, **arrays)
        print(f"wrote {backend}_{kind}.keras and .npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        make_files(os.environ["KERAS_BACKEND"])
        return
    for backend in args.backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([sys.executable, __file__, "--in-process"], env=env, check=True)


if __name__ == "__main__":
    main()
