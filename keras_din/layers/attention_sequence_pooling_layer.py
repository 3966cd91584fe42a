import inspect

import keras
from keras import ops

from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import dims_disagree
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._padding import take_blocks
from keras_din.layers._padding import to_every_position
from keras_din.layers.local_activation_unit import LocalActivationUnit

# Keras 3.14 added `reduction` to `scatter_update`; with it, one candidate is
# pooled over the valid history rows alone.
_SCATTER_ADDS = "reduction" in inspect.signature(ops.scatter_update).parameters


@keras.saving.register_keras_serializable(package="keras_din")
class AttentionSequencePoolingLayer(keras.layers.Layer):
    """DIN attention pooling of a behaviour sequence against candidates.

    A `LocalActivationUnit` scores every valid history item against each
    candidate; the scores, softmax-normalised over the valid positions or
    used as they are, weight a sum of the history embeddings. Padded
    positions always get weight exactly 0, and a row with no valid position
    (an empty history) gives all-zero weights and an all-zero output.

    The arguments, defaults and call conventions are DeepCTR's, and on every
    non-empty history the outputs equal DeepCTR's for the same weights.

    Args:
        att_hidden_units: sequence of positive ints. Hidden widths of the
            activation unit. Defaults to `(80, 40)`.
        att_activation: Activation of the unit's hidden layers: a Keras
            activation name or function, `"dice"`, `"prelu"` or a layer (see
            `LocalActivationUnit`). Defaults to `"sigmoid"`.
        weight_normalization: bool. Whether to softmax the scores over the
            valid positions; if `False` the raw scores are used.
            Defaults to `False`.
        return_score: bool. Whether to return the attention weights instead
            of the pooled embedding. Defaults to `False`.
        dice_ignores_padding: bool. With `att_activation="dice"`, whether
            Dice takes its training statistics over the valid history
            positions only. `False` includes the padding, as DeepCTR does
            (and the unit then computes the padding positions too).
            Inference, from the moving statistics, is the same either way
            for the same weights. Defaults to `True`.
        skip_padding: bool. Whether the activation unit runs on the valid
            history positions only, which saves work in proportion to the
            padding; the results are the same. See `LocalActivationUnit`
            for where it applies. Defaults to `True`.
        supports_masking: Accepted for compatibility with DeepCTR and
            ignored: the layer takes a Keras mask whenever `keys` carries one.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list or tuple `[query, keys]` or `[query, keys,
            keys_length]`. `query` of shape `(B, C, E)` holds `C` candidate
            embeddings (`C = 1` in classic DIN); `keys` of shape `(B, T, E)`
            the behaviour history; `keys_length`, an integer tensor of shape
            `(B,)` or `(B, 1)`, the number of valid items of each history
            (values above `T` mean all valid, values at or below 0 none).
        mask: Optional boolean tensor of shape `(B, T)`, true at valid
            positions, or a list of masks with one entry per input. If
            omitted, the Keras mask of `keys` is used, if any. All given
            sources (`keys_length`, the mask) are combined: a position is
            valid only if every source says so.
        training: Python boolean. Passed to the activation unit.

    Output:
        The pooled history, shape `(B, C, E)`, or with `return_score=True`
        the attention weights, shape `(B, C, T)`. The output carries no mask.

    Example:

    >>> import numpy as np
    >>> layer = AttentionSequencePoolingLayer(weight_normalization=True)
    >>> query = np.random.rand(2, 1, 4).astype("float32")
    >>> keys = np.random.rand(2, 5, 4).astype("float32")
    >>> keys_length = np.array([[3], [0]])
    >>> layer([query, keys, keys_length]).shape
    (2, 1, 4)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), Deep Interest
          Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        att_hidden_units=(80, 40),
        att_activation="sigmoid",
        weight_normalization=False,
        return_score=False,
        dice_ignores_padding=True,
        skip_padding=True,
        supports_masking=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.att_hidden_units = check_positive_units(
            "att_hidden_units", att_hidden_units
        )
        self.att_activation = att_activation
        self.weight_normalization = bool(weight_normalization)
        self.return_score = bool(return_score)
        self.dice_ignores_padding = bool(dice_ignores_padding)
        self.skip_padding = bool(skip_padding)
        self.local_att = LocalActivationUnit(
            hidden_units=self.att_hidden_units,
            activation=att_activation,
            skip_padding=self.skip_padding,
            dtype=self.dtype_policy,
            name="local_activation_unit",
        )

    def __call__(self, inputs, *args, mask=None, **kwargs):
        # An explicit `mask=` is passed on under its own name, so that Keras
        # still hands `call` the Keras masks of the inputs and both sources
        # can be combined.
        if mask is not None:
            kwargs["explicit_mask"] = mask
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        shapes = split_inputs(input_shape, self.__class__.__name__, (2, 3))
        self._check_shapes(*shapes)
        self.local_att.build(shapes[:2])

    def _check_shapes(self, query_shape, keys_shape, length_shape=None):
        check_query_and_keys(query_shape, keys_shape)
        if length_shape is None:
            return
        length_shape = static_shape(length_shape)
        if len(length_shape) not in (1, 2) or (
            len(length_shape) == 2 and dims_disagree(length_shape[1], 1)
        ):
            raise ValueError(
                "`keys_length` must have shape (batch,) or (batch, 1). "
                f"Received: keys_length.shape={length_shape}"
            )
        if dims_disagree(length_shape[0], static_shape(keys_shape)[0]):
            raise ValueError(
                "`keys_length` and `keys` must have the same batch size. "
                f"Received: keys_length.shape={length_shape}, "
                f"keys.shape={static_shape(keys_shape)}"
            )

    def call(
        self, inputs, mask=None, training=None, explicit_mask=None, inputs_mask=None
    ):
        inputs = split_inputs(inputs, self.__class__.__name__, (2, 3))
        self._check_shapes(*inputs)
        query, keys = inputs[0], inputs[1]
        # Keras passes the inputs' own masks as `mask` when `inputs` is the
        # only tensor argument, and as `inputs_mask` when `explicit_mask` is
        # given too.
        keras_mask = mask if inputs_mask is None else inputs_mask
        valid = self._valid_positions(inputs, keras_mask, explicit_mask)
        if self._pools_valid_rows(query, valid):
            return self._pool_valid_rows(query, keys, valid, training)

        scores = self.local_att(
            [query, keys],
            training=training,
            keys_mask=valid if self._unit_may_ignore_padding() else None,
        )  # (B, T, C)
        if valid is not None:
            valid = ops.expand_dims(valid, -1)
        if self.weight_normalization:
            weights = _masked_softmax(scores, valid)
        elif valid is not None:
            weights = ops.where(valid, scores, ops.zeros_like(scores))
        else:
            weights = scores
        if self.return_score:
            return ops.transpose(weights, (0, 2, 1))  # (B, C, T)
        if static_shape(query)[1] == 1:
            # One candidate: a weighted sum, cheaper than a batch of (1, T)
            # by (T, E) matmuls (torch loops over the batch for those).
            return ops.sum(weights * keys, axis=1, keepdims=True)
        return ops.matmul(ops.transpose(weights, (0, 2, 1)), keys)

    def _pools_valid_rows(self, query, valid):
        """Whether to pool one candidate over the valid history rows alone.

        The unit's scores, the weights and the weighted rows then stay on
        the valid rows: no `(B, T, E)` tensor is kept for the backward
        pass, and the only one made there is the gradient of the keys
        (torch sums the rows through a transient one). Many candidates are
        pooled by a matmul over every position instead, which is cheaper
        than their `(N, C, E)` products.
        """
        return (
            _SCATTER_ADDS
            and valid is not None
            and not self.return_score
            and static_shape(query)[1] == 1
            and self._unit_may_ignore_padding()
            and self.local_att._skips_padding()
        )

    def _pool_valid_rows(self, query, keys, valid, training):
        batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
        dim = static_shape(keys)[-1]
        blocks, keys_rows, scores = self.local_att._score_valid_rows(
            query, keys, valid, training
        )
        size = blocks.size
        per_history = history // size
        if self.weight_normalization:
            scores = to_every_position(scores, blocks, batch, history)
            weights = _masked_softmax(scores, ops.expand_dims(valid, -1))
            weights = take_blocks(ops.reshape(weights, (-1, size)), blocks)
        elif blocks.valid is not None:
            scores = ops.reshape(scores, (-1, size))
            weights = ops.where(blocks.valid, scores, ops.zeros_like(scores))
        else:
            weights = scores
        # Summed in float32: a float16 running sum over a long history
        # would lose the digits that the dense path's reductions keep.
        weighted = ops.reshape(weights, (-1, size, 1, 1)) * keys_rows
        weighted = ops.sum(ops.cast(weighted, "float32"), axis=1)  # (N, 1, E)
        if keras.backend.backend() == "torch":
            # Keras' torch scatter-add is index_put_(accumulate=True), serial
            # on the CPU. Placing the blocks' sums at their positions and
            # summing over the blocks is faster. scatter_update copies its
            # input: given a broadcast zero row, that copy is the only
            # (B * T / P, E) buffer.
            every = ops.scatter_update(
                ops.broadcast_to(
                    ops.zeros((1, dim), "float32"), (batch * per_history, dim)
                ),
                ops.expand_dims(blocks.positions, -1),
                ops.reshape(weighted, (-1, dim)),
            )
            pooled = ops.sum(ops.reshape(every, (batch, per_history, 1, dim)), axis=1)
        else:
            pooled = ops.scatter_update(
                ops.zeros((batch, 1, dim), "float32"),
                ops.expand_dims(blocks.owners, -1),
                weighted,
                reduction="add",
            )
        return ops.cast(pooled, keys.dtype)

    def _unit_may_ignore_padding(self):
        # Only Dice statistics with `dice_ignores_padding=False` need the
        # unit to run on the padding too.
        return self.dice_ignores_padding or not self.local_att._uses_dice()

    def _valid_positions(self, inputs, keras_mask, explicit_mask):
        """The `(B, T)` boolean mask of valid positions, or `None`."""
        keys = inputs[1]
        sources = []
        if len(inputs) == 3:
            keys_length = inputs[2]
            if not _is_integer(keys_length.dtype):
                raise TypeError(
                    "`keys_length` must have an integer dtype. "
                    f"Received: keys_length.dtype={keys_length.dtype}"
                )
            history = ops.shape(keys)[1]
            dtype = keras.backend.standardize_dtype(keys_length.dtype)
            if dtype in ("int64", "uint32", "uint64"):
                # Clipped to [0, T] in their own dtype, so that lengths
                # beyond the int32 range do not wrap around in the cast.
                keys_length = ops.clip(keys_length, 0, ops.cast(history, dtype))
            lengths = ops.reshape(ops.cast(keys_length, "int32"), (-1, 1))
            positions = ops.arange(history, dtype="int32")
            sources.append(ops.expand_dims(positions, 0) < lengths)
        for mask in (keras_mask, explicit_mask):
            keys_mask = self._keys_mask(mask, len(inputs), keys)
            if keys_mask is not None:
                sources.append(ops.cast(keys_mask, "bool"))
        if not sources:
            return None
        valid = sources[0]
        for source in sources[1:]:
            valid = ops.logical_and(valid, source)
        return valid

    @staticmethod
    def _keys_mask(mask, num_inputs, keys):
        if isinstance(mask, (list, tuple)):
            if len(mask) != num_inputs:
                raise ValueError(
                    f"A list `mask` must have one entry per input ({num_inputs}). "
                    f"Received: a list of {len(mask)} masks"
                )
            mask = mask[1]
        if mask is None:
            return None
        check_keys_mask(mask, keys)
        return mask

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        activation = self.local_att.get_config()["activation"]
        config.update(
            {
                "att_hidden_units": list(self.att_hidden_units),
                "att_activation": activation,
                "weight_normalization": self.weight_normalization,
                "return_score": self.return_score,
                "dice_ignores_padding": self.dice_ignores_padding,
                "skip_padding": self.skip_padding,
            }
        )
        return config


def _is_integer(dtype):
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")


def _masked_softmax(scores, valid):
    """Softmax over axis 1 restricted to `valid`; all-invalid rows give 0.

    Computed in float32 so that float16 scores neither overflow nor lose the
    normalisation, and written so that no inf or NaN can reach the gradient.
    """
    scores32 = ops.cast(scores, "float32")
    if valid is None:
        return ops.cast(ops.softmax(scores32, axis=1), scores.dtype)
    lowest = ops.full_like(scores32, -3.0e38)
    row_max = ops.max(ops.where(valid, scores32, lowest), axis=1, keepdims=True)
    row_max = ops.stop_gradient(row_max)
    shifted = ops.where(valid, scores32 - row_max, ops.zeros_like(scores32))
    exps = ops.exp(shifted) * ops.cast(valid, "float32")
    total = ops.sum(exps, axis=1, keepdims=True)
    total = ops.where(total > 0, total, ops.ones_like(total))
    return ops.cast(exps / total, scores.dtype)
