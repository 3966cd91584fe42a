"""Makes the golden `.keras` files that every backend's test run loads.

For each backend and each model of `tests/din_models.py` (`KINDS` and
`BUILDER_KINDS`), this trains the model briefly on that backend, saves it as
`<backend>_<kind>.keras` here, and stores inputs it never saw (new batch size
and history length, an empty history; for the builders' models new rows)
with its predictions as `<backend>_<kind>.npz`.
`tests/test_saving.py` loads every file on the backend under test and
compares its predictions with the stored ones.

Regenerate all of them (needs TensorFlow, PyTorch and JAX installed):

    python tests/golden/make_golden.py

`--backends jax` remakes one backend's files only, `--kinds builder_din`
one model's. Run with a Python that has only one backend installed:

    KERAS_BACKEND=jax python tests/golden/make_golden.py --in-process
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BACKENDS = ("tensorflow", "torch", "jax")
KINDS = ("lengths", "mask_zero", "explicit_mask")  # din_models.KINDS
BUILDER_KINDS = ("builder_din", "builder_dien")  # din_models.BUILDER_KINDS


def make_files(backend, kinds):
    sys.path[:0] = [str(ROOT), str(HERE.parent)]
    import keras
    import numpy as np
    from din_models import BUILDER_KINDS
    from din_models import KINDS
    from din_models import builder_model
    from din_models import din_inputs
    from din_models import din_model
    from din_models import feature_data
    from din_models import train_briefly
    from din_models import train_builder_briefly

    assert keras.backend.backend() == backend
    for index, kind in enumerate(BUILDER_KINDS):
        if kind not in kinds:
            continue
        keras.utils.set_random_seed(index)
        model = train_builder_briefly(builder_model(kind), seed=index)
        model.save(HERE / f"{backend}_{kind}.keras")
        x = feature_data(np.random.default_rng(100 + index), rows=7, candidates=2)
        x = {name: x[name] for name in model.input}
        expected = model.predict(x, verbose=0)
        np.savez(HERE / f"{backend}_{kind}.npz", expected=expected, **x)
        print(f"wrote {backend}_{kind}.keras and .npz")
    for index, kind in enumerate(KINDS):
        if kind not in kinds:
            continue
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
    parser.add_argument("--kinds", nargs="+", default=KINDS + BUILDER_KINDS)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="make the files of the backend KERAS_BACKEND names, in this process",
    )
    args = parser.parse_args()
    if args.in_process:
        make_files(os.environ["KERAS_BACKEND"], args.kinds)
        return
    for backend in args.backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, __file__, "--in-process", "--kinds", *args.kinds]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
