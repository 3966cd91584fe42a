import keras
from keras import ops

from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_optional_units
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import check_rate
from keras_din.layers._checks import heads_key_dim
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._masking import count_at_or_after
from keras_din.layers._masking import zero_padding
from keras_din.layers._transformer import layer_norm
from keras_din.layers._transformer import multi_head_attention

POOLINGS = ("concat", "mean", "target")


@keras.saving.register_keras_serializable(package="keras_din")
class BehaviorSequenceTransformer(keras.layers.Layer):
    """BST's Transformer block over a behaviour sequence and its candidate.

    For each candidate, the sequence is the valid behaviours of the history
    followed by the candidate, each embedding `(E)` plus a learned embedding
    of its recency: 0 for the candidate, 1 for the latest valid behaviour, 2
    for the one before it, and so on (the paper embeds the time gap
    `t(candidate) - t(behaviour)`; the recency rank is what a history
    without timestamps tells). One Transformer block (paper, eq. 4-6):

        S' = LayerNorm(S + Dropout(MultiHead(S)))
        F = LayerNorm(S' + Dropout(LeakyReLU(S' W1 + b1) W2 + b2))

    Every position attends to the valid behaviours and to the candidate,
    never to the padding. The output is the block's output at every
    position, concatenated (the paper's, 0 at the padding), their mean over
    the valid positions and the candidate, or the candidate's alone.

    Args:
        num_heads: int. Attention heads. Defaults to `8`, the paper's best.
        key_dim: int or `None`. Width of each head; `None` takes
            `E // num_heads` (then `E` must be a multiple of `num_heads`).
            Defaults to `None`.
        feed_forward_units: int or `None`. Width of the feed-forward layer;
            `None` takes `4 * E`. Defaults to `None`.
        dropout_rate: float in `[0, 1)`. The dropout of eq. 5 and 6.
            Defaults to `0.0`.
        pooling: `"concat"` (the paper's), `"mean"` or `"target"`. Defaults
            to `"concat"`.
        seed: int or `None`. Seed of the initialisers and the dropout.
            Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a list `[query, keys]`: the candidates `(B, C, E)` and the
            history `(B, T, E)`, `T` known.
        mask: Optional boolean `(B, T)` mask of the valid positions of
            `keys` (or a list of one mask per input, as Keras passes them);
            `None`: every position is valid.
        training: Python boolean. Dropout is applied in training only.

    Output:
        `(B, C, (T + 1) * E)` with `pooling="concat"`, else `(B, C, E)`.

    Weights:
        `recency_embeddings (T + 1, E)`; the attention's `query_kernel`,
        `query_bias`, `key_kernel` (no key bias: the softmax ignores it),
        `value_kernel`, `value_bias` (`(E, H * K)` kernels, the heads side by
        side), `output_kernel (H * K, E)`, `output_bias`; the feed-forward
        layers' kernels and biases; the two norms' `gamma` and `beta`.

    Examples:

        >>> import numpy as np
        >>> layer = BehaviorSequenceTransformer(num_heads=2)
        >>> query = np.random.rand(3, 1, 4).astype("float32")
        >>> keys = np.random.rand(3, 5, 4).astype("float32")
        >>> mask = np.arange(5) < np.array([[2], [0], [5]])  # lengths 2, 0, 5
        >>> tuple(layer([query, keys], mask=mask).shape)
        (3, 1, 24)

    References:
        - [Chen et al., 2019](https://arxiv.org/abs/1905.06874), Behavior
          Sequence Transformer for E-commerce Recommendation in Alibaba.
    """

    def __init__(
        self,
        num_heads=8,
        key_dim=None,
        feed_forward_units=None,
        dropout_rate=0.0,
        pooling="concat",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_units("num_heads", num_heads)[0]
        self.key_dim = check_optional_units("key_dim", key_dim)
        units = check_optional_units("feed_forward_units", feed_forward_units)
        self.feed_forward_units = units
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        if pooling not in POOLINGS:
            raise ValueError(
                f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}"
            )
        self.pooling = pooling
        self.seed = seed
        self.supports_masking = True

    def _seed(self, index):
        return None if self.seed is None else self.seed + index

    def _validate_inputs(self, inputs, mask=None):
        query, keys = split_inputs(inputs, type(self).__name__, (2,))
        check_query_and_keys(query, keys)
        if isinstance(mask, (list, tuple)):
            mask = mask[1]
        if mask is not None:
            check_keys_mask(mask, keys)
        return query, keys, mask

    def build(self, input_shape):
        query_shape, keys_shape = split_inputs(input_shape, type(self).__name__, (2,))
        check_query_and_keys(query_shape, keys_shape)
        history, dim = static_shape(keys_shape)[1:]
        if history is None:
            raise ValueError(
                "The history length of `keys` must be known (it sizes the "
                "recency embeddings). Received: keys.shape="
                f"{static_shape(keys_shape)}"
            )
        key_dim = heads_key_dim(self.num_heads, self.key_dim, keys_shape)
        width = self.num_heads * key_dim
        units = self.feed_forward_units or 4 * dim
        self.recency = self.add_weight(
            shape=(history + 1, dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05, self._seed(0)),
            name="recency_embeddings",
        )
        self.query_kernel, self.query_bias = self._dense(dim, width, 1, "query")
        self.key_kernel, _ = self._dense(dim, width, 2, "key", bias=False)
        self.value_kernel, self.value_bias = self._dense(dim, width, 3, "value")
        self.output_kernel, self.output_bias = self._dense(width, dim, 4, "output")
        self.feed_forward = [
            self._dense(dim, units, 5, "feed_forward_1"),
            self._dense(units, dim, 6, "feed_forward_2"),
        ]
        self.norms = [
            (
                self.add_weight(shape=(dim,), initializer="ones", name=f"{n}_gamma"),
                self.add_weight(shape=(dim,), initializer="zeros", name=f"{n}_beta"),
            )
            for n in ("norm_1", "norm_2")
        ]
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, seed=self._seed(7), dtype=self.dtype_policy
        )

    def _dense(self, inputs, units, index, name, bias=True):
        kernel = self.add_weight(
            shape=(inputs, units),
            initializer=keras.initializers.GlorotUniform(self._seed(index)),
            name=f"{name}_kernel",
        )
        if not bias:
            return kernel, None
        return kernel, self.add_weight(
            shape=(units,), initializer="zeros", name=f"{name}_bias"
        )

    def call(self, inputs, mask=None, training=None):
        query, keys, mask = self._validate_inputs(inputs, mask)
        batch, candidates = ops.shape(query)[:2]
        # Static, from the weights: export tracers may give no int sizes.
        history, dim = self.recency.shape[0] - 1, self.recency.shape[1]
        if mask is None:
            mask = ops.ones(ops.shape(keys)[:2], "bool")
        mask = ops.cast(mask, "bool")
        # 0 at the padding: a weight of 0 times whatever it holds (NaN too)
        # must stay 0.
        keys = zero_padding(keys, mask)
        # Recency: how many valid behaviours lie at or after each position.
        after = count_at_or_after(mask, 1)
        positions = ops.concatenate([after, ops.zeros((batch, 1), "int32")], 1)
        recency = ops.take(self.recency, positions, 0)
        # (B * C, T + 1, .): the history, then the candidate, per candidate.
        keys = ops.broadcast_to(keys[:, None], (batch, candidates, history, dim))
        sequence = ops.concatenate([keys, query[:, :, None]], 2) + recency[:, None]
        sequence = ops.reshape(sequence, (-1, history + 1, dim))
        valid = ops.concatenate([mask, ops.ones((batch, 1), "bool")], 1)
        valid = ops.broadcast_to(valid[:, None], (batch, candidates, history + 1))
        valid = ops.reshape(valid, (-1, history + 1))
        attended = multi_head_attention(
            sequence,
            valid,
            [self.query_kernel, self.query_bias],
            [self.key_kernel],
            [self.value_kernel, self.value_bias],
            [self.output_kernel, self.output_bias],
            self.num_heads,
        )
        hidden = layer_norm(
            sequence + self.dropout(attended, training=training), *self.norms[0]
        )
        (kernel_1, bias_1), (kernel_2, bias_2) = self.feed_forward
        fed = ops.leaky_relu(ops.matmul(hidden, kernel_1) + bias_1, 0.2)
        fed = ops.matmul(fed, kernel_2) + bias_2
        output = layer_norm(
            hidden + self.dropout(fed, training=training), *self.norms[1]
        )
        output = zero_padding(output, valid)
        if self.pooling == "target":
            output = output[:, -1]
        elif self.pooling == "mean":
            count = ops.sum(ops.cast(valid, output.dtype), 1, keepdims=True)
            output = ops.sum(output, 1) / count
        else:
            output = ops.reshape(output, (-1, (history + 1) * dim))
        return ops.reshape(output, (batch, candidates, output.shape[-1]))

    def compute_output_shape(self, input_shape):
        query_shape, keys_shape = input_shape
        history, dim = keys_shape[1], keys_shape[2]
        width = (history + 1) * dim if self.pooling == "concat" else dim
        return (query_shape[0], query_shape[1], width)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "feed_forward_units": self.feed_forward_units,
                "dropout_rate": self.dropout_rate,
                "pooling": self.pooling,
                "seed": self.seed,
            }
        )
        return config
