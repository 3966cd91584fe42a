import keras
from keras import ops

from keras_din.layers._checks import static_shape
from keras_din.layers._dtypes import cast_to


@keras.saving.register_keras_serializable(package="keras_din")
class Dice(keras.layers.Layer):
    """Dice, the data-adaptive activation of the DIN paper.

    Dice generalises PReLU: instead of switching between the two slopes at
    zero, it switches smoothly around the mean of the data,

        p = sigmoid((x - mean) / sqrt(var + epsilon))
        out = p * x + alpha * (1 - p) * x

    where `mean` and `var` are the per-channel batch moments while training
    and their moving averages at inference (a batch normalisation without
    learned scale or offset), and `alpha` is a learned per-channel slope that
    starts at 0. These are the semantics of DeepCTR's TensorFlow `Dice`.

    Args:
        axis: int. The channel axis; moments are taken over all other axes.
            Defaults to `-1`.
        epsilon: float. Added to the variance before the square root.
            Defaults to `1e-9`.
        momentum: float. Momentum of the moving mean and variance, as in
            `keras.layers.BatchNormalization`. Defaults to `0.99`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A floating tensor of rank 2 or more.
        training: Python boolean. Whether to use (and update) the batch
            statistics instead of the moving ones.
        mask: Optional boolean tensor of the shape of `inputs` without the
            channel axis, such as the Keras mask of a sequence. In training,
            the batch statistics are taken over the valid (true) entries
            only, so that padding does not bias them; a batch without any
            valid entry uses, and keeps, the moving statistics.

    Output:
        A tensor of the same shape and dtype as `inputs`.

    Weights:
        `[alpha, moving_mean, moving_variance]`, each of shape `(channels,)`.

    Examples:

        >>> import numpy as np
        >>> dice = Dice()
        >>> tuple(dice(np.ones((4, 8), "float32")).shape)
        (4, 8)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), section 4.3.
    """

    def __init__(self, axis=-1, epsilon=1e-9, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"`axis` must be an int. Received: axis={axis!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1). Received: momentum={momentum!r}"
            )
        self.axis = axis
        self.epsilon = epsilon
        self.momentum = momentum
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis` must index a dimension of an input of rank >= 2. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        self._channel_axis = self.axis % rank
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"The channel axis {self.axis} of the input must be known. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self._reduction_axes = [i for i in range(rank) if i != self._channel_axis]
        self._broadcast_shape = [1] * rank
        self._broadcast_shape[self._channel_axis] = channels
        self.alpha = self.add_weight(
            shape=(channels,), initializer="zeros", name="alpha"
        )
        # The statistics stay in float32 under mixed precision, as in
        # keras.layers.BatchNormalization.
        self.moving_mean = self.add_weight(
            shape=(channels,),
            initializer="zeros",
            trainable=False,
            autocast=False,
            name="moving_mean",
        )
        self.moving_variance = self.add_weight(
            shape=(channels,),
            initializer="ones",
            trainable=False,
            autocast=False,
            name="moving_variance",
        )

    def call(self, inputs, training=None, mask=None):
        x = cast_to(inputs, self.variable_dtype)
        if training and self.trainable:
            mean, variance = self._batch_moments(x, mask)
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean, variance = self.moving_mean.value, self.moving_variance.value
        # p + alpha (1 - p) = alpha + (1 - alpha) p: six passes over the
        # input, whose (B * T * C, H) activations in the attention unit make
        # Dice memory-bound.
        scale = ops.rsqrt(variance + self.epsilon)
        alpha = cast_to(self.alpha, inputs.dtype)
        mean, scale, alpha = (self._per_channel(v) for v in (mean, scale, alpha))
        p = cast_to(ops.sigmoid((x - mean) * scale), inputs.dtype)
        return inputs * (alpha + (1.0 - alpha) * p)

    def _per_channel(self, vector):
        """A `(channels,)` vector, broadcastable against the input."""
        if self._channel_axis == len(self._broadcast_shape) - 1:
            return vector
        return ops.reshape(vector, self._broadcast_shape)

    def _batch_moments(self, x, mask):
        """Per-channel mean and (biased) variance, over valid entries only.

        Where the mask leaves no valid entry, the moving moments are returned
        so that neither the output nor the moving averages change.
        """
        if mask is None:
            mean, variance = ops.moments(x, axes=self._reduction_axes)
            if all(size for size in static_shape(x)):
                return mean, variance  # not empty, as any eager batch shows
            # An empty batch (every position skipped as padding) keeps the
            # moving moments, as a batch with no valid entry does.
            has_valid = ops.size(x) > 0
        else:
            if len(mask.shape) != len(x.shape) - 1:
                raise ValueError(
                    "The mask of `Dice` must have the shape of its input without "
                    f"the channel axis. Received: mask.shape={tuple(mask.shape)}, "
                    f"inputs.shape={tuple(x.shape)}"
                )
            # The mask has no channel axis: one count for every channel.
            weights = ops.expand_dims(ops.cast(mask, x.dtype), self._channel_axis)
            count = ops.sum(weights)
            has_valid = count > 0
            count = ops.maximum(count, 1.0)
            mean = ops.sum(x * weights, axis=self._reduction_axes) / count
            centred = x - self._per_channel(mean)
            variance = ops.sum(weights * centred * centred, self._reduction_axes)
            variance = variance / count
        mean = ops.where(has_valid, mean, self.moving_mean.value)
        variance = ops.where(has_valid, variance, self.moving_variance.value)
        return mean, variance

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"axis": self.axis, "epsilon": self.epsilon, "momentum": self.momentum}
        )
        return config
