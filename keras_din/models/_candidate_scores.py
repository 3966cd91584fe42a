"""The builders' output: the MLP's scores, one row per candidate, as `(B, C)`."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_din")
class CandidateScores(keras.layers.Layer):
    """`[scores, ids]`: `(B * C, 1)` scores, ordered by row then candidate,
    to `(B, C)`, the shape of `ids`, a candidate input, read when called (a
    model built with `candidates=None` knows `C` only then)."""

    def call(self, inputs):
        scores, ids = inputs
        return ops.reshape(scores, ops.shape(ids))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])
