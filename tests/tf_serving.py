"""Serves exported SavedModels the way a TensorFlow server would.

    python tests/tf_serving.py DIR

For every SavedModel directory `DIR/<name>` and every input file
`DIR/<name>.<case>.npz` (arrays `input_0`, `input_1`, ... for a model that
takes a list, else arrays named by input for one that takes a dict), writes the
outputs of the `serve` endpoint to `DIR/<name>.<case>.out.npy`. keras,
keras_din, jax and torch are made unimportable first (TensorFlow looks for
keras and jax when present, and does without them), so the artifacts are
shown to need TensorFlow alone.
"""

import sys
from pathlib import Path

BLOCKED = ("keras", "keras_din", "jax", "torch")
# A `None` entry makes `import name` fail and `find_spec(name)` say "absent".
for _name in BLOCKED:
    sys.modules[_name] = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(directory):
    directory = Path(directory)
    for model_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        served = tf.saved_model.load(str(model_dir))
        for case in sorted(directory.glob(f"{model_dir.name}.*.npz")):
            data = np.load(case)
            if all(name.startswith("input_") for name in data.files):
                inputs = [
                    tf.constant(data[f"input_{i}"]) for i in range(len(data.files))
                ]
            else:
                inputs = {name: tf.constant(data[name]) for name in data.files}
            outputs = served.serve(inputs)
            np.save(case.with_suffix(".out.npy"), outputs.numpy())
    loaded = [m for m in BLOCKED if sys.modules.get(m) is not None]
    if loaded:
        sys.exit(f"the serving process imported {loaded}")


if __name__ == "__main__":
    main(sys.argv[1])
