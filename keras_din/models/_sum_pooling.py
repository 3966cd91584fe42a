"""The base model's pooling: the sum of the valid history embeddings."""

import keras
from keras import ops

from keras_din.layers._masking import valid_positions
from keras_din.layers._masking import zero_padding


@keras.saving.register_keras_serializable(package="keras_din")
class SumPooling(keras.layers.Layer):
    """`(B, T, E)` keys, or `[keys, keys_length]`, to their `(B, 1, E)` sum
    over the valid positions (those of the Keras mask and the lengths)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        keys, *keys_length = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        valid = valid_positions(keys, keys_length[0] if keys_length else None, mask)
        if valid is not None:
            keys = zero_padding(keys, valid)
        return ops.sum(keys, axis=1, keepdims=True)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        return (input_shape[0], 1, input_shape[2])
