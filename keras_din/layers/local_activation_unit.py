import keras
from keras import ops

from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._padding import block_size
from keras_din.layers._padding import computing_every_position
from keras_din.layers._padding import take_blocks
from keras_din.layers._padding import to_every_position
from keras_din.layers._padding import valid_blocks
from keras_din.layers.dice import Dice


def _activation_factory(activation):
    """Returns `(make_layer, function)` for the hidden layers' activation.

    `make_layer(name)` makes one fresh activation layer per hidden layer.
    `function` is the activation as a plain function when it has no state
    (else `None`): the unit applies it directly, as the overhead of a layer
    call is comparable to a sigmoid over a small batch.
    """
    if isinstance(activation, keras.layers.Layer):
        config = activation.get_config()
        config.pop("name", None)
        return (
            lambda name: activation.__class__.from_config({**config, "name": name}),
            None,
        )
    if isinstance(activation, str) and activation.lower() == "dice":
        return (lambda name: Dice(name=name)), None
    if isinstance(activation, str) and activation.lower() == "prelu":
        # One slope per channel, starting at 0.25 as in the PReLU paper and
        # in torch.nn.PReLU (keras.layers.PReLU alone would start at 0).
        return (
            lambda name: keras.layers.PReLU(
                alpha_initializer=keras.initializers.Constant(0.25), name=name
            ),
            None,
        )
    if isinstance(activation, str) or callable(activation):
        try:
            function = keras.activations.get(activation)
        except (ValueError, TypeError):
            function = None
        if function is keras.activations.sigmoid:
            # keras.activations.sigmoid hangs its input on the output (for
            # losses): autograd, which keeps the output, would keep the
            # pre-activation alive too, a hidden layer's worth of memory.
            function = ops.sigmoid
        if function is not None:
            return (lambda name: keras.layers.Activation(function, name=name)), function
    raise ValueError(
        "`activation` must be a Keras activation name, 'dice', 'prelu', an "
        f"activation function or a keras.layers.Layer. Received: "
        f"activation={activation!r}"
    )


def _serialize_activation(activation):
    if isinstance(activation, str):
        return activation
    if isinstance(activation, keras.layers.Layer):
        return keras.saving.serialize_keras_object(activation)
    return keras.activations.serialize(activation)


def _deserialize_activation(config):
    if isinstance(config, dict):
        return keras.saving.deserialize_keras_object(config)
    return config


@keras.saving.register_keras_serializable(package="keras_din")
class LocalActivationUnit(keras.layers.Layer):
    """The DIN activation unit: scores each history item against a candidate.

    For every history position `t` the unit runs a small MLP over the
    concatenation `[q, k_t, q - k_t, q * k_t]` of the candidate embedding `q`
    and the history embedding `k_t`:

        h_0 = [q, k_t, q - k_t, q * k_t]
        h_i = dropout(activation(batch_norm?(h_{i-1} @ W_i + b_i)))
        score_t = h_L @ w_o + b_o

    The weights are laid out as in DeepCTR, so its trained weights load with
    `set_weights` (see the README). The unit never builds the concatenation:
    the first layer is linear in it, so it is computed as
    `q @ (W_q + W_d) + k_t @ (W_k - W_d + diag(q) W_p)` with `W_1` split by
    rows into `[W_q; W_k; W_d; W_p]`; the result is the same.

    Args:
        hidden_units: sequence of positive ints. Widths of the hidden layers.
            Defaults to `(64, 32)`.
        activation: Activation of every hidden layer: a Keras activation
            name or function, `"dice"` (`keras_din.layers.Dice`), `"prelu"`
            (a per-channel `keras.layers.PReLU` starting at 0.25), or a
            `keras.layers.Layer`, of which each hidden layer gets its own copy.
            Defaults to `"sigmoid"`.
        l2_reg: float. L2 regularisation factor of the hidden kernels.
            Defaults to `0.0`.
        dropout_rate: float in `[0, 1)`. Dropout after each hidden layer.
            Defaults to `0.0`.
        use_bn: bool. Whether to batch-normalise each hidden layer before its
            activation. Defaults to `False`.
        seed: int or `None`. Seed of the kernel initialisers and of dropout.
            Defaults to `None`.
        skip_padding: bool. Whether, given a `keys_mask`, to run the MLP on
            the valid positions only (gathered in blocks of a few consecutive
            positions, so that a history's last block may hold some
            padding). The results are the same; the work shrinks with the
            share of padding. This needs tensors of
            data-dependent size, so it is not done under JAX (whose `jit`
            needs static shapes), with `use_bn` (whose statistics include
            the padding), or in an export from the torch backend through
            `keras_din.export.export_model`.
            Defaults to `True`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list `[query, keys]`: `query` of shape `(B, C, E)` holds
            `C` candidate embeddings (`C = 1` in classic DIN), `keys` of shape
            `(B, T, E)` the behaviour history.
        mask: Ignored: every position is scored, masking is the job of the
            pooling. Accepted so that inputs carrying a Keras mask are taken
            without a warning.
        keys_mask: Optional boolean tensor of shape `(B, T)`, true at valid
            history positions. If given, padding positions score 0 (with
            `skip_padding` most are not computed at all) and Dice activations
            take their training statistics over the valid positions only.
        training: Python boolean. Whether dropout, batch normalisation and
            Dice run in training mode.

    Output:
        Scores of shape `(B, T, C)`: `(B, T, 1)` for one candidate, as in
        DeepCTR. The output carries no mask.

    Weights:
        `[W_1, b_1, ..., W_L, b_L, w_o, b_o]`, kernels of shape `(in, out)`
        and `W_1` of shape `(4E, H_1)` with rows in the order
        `[q; k; q - k; q * k]`; then, with `use_bn`, each hidden layer's
        batch normalisation weights; then each hidden layer's activation
        weights, if it has any (`alpha`, moving mean and variance for Dice;
        `alpha` for PReLU).

    Example:

    >>> import numpy as np
    >>> unit = LocalActivationUnit(hidden_units=(16, 8))
    >>> query = np.random.rand(2, 1, 4).astype("float32")
    >>> keys = np.random.rand(2, 5, 4).astype("float32")
    >>> unit([query, keys]).shape
    (2, 5, 1)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), Deep Interest
          Network for Click-Through Rate Prediction.
    """

    def __init__(
        self,
        hidden_units=(64, 32),
        activation="sigmoid",
        l2_reg=0.0,
        dropout_rate=0.0,
        use_bn=False,
        seed=None,
        skip_padding=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = check_positive_units("hidden_units", hidden_units)
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(
                f"`dropout_rate` must be in [0, 1). "
                f"Received: dropout_rate={dropout_rate!r}"
            )
        if not l2_reg >= 0.0:
            raise ValueError(f"`l2_reg` must be >= 0. Received: l2_reg={l2_reg!r}")
        self.activation = _deserialize_activation(activation)
        self.l2_reg = l2_reg
        self.dropout_rate = dropout_rate
        self.use_bn = use_bn
        self.seed = seed
        self.skip_padding = bool(skip_padding)

        self.batch_norms = [
            keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name=f"batch_norm_{i}"
            )
            for i in range(len(self.hidden_units))
            if use_bn
        ]
        make_activation, self._activation_function = _activation_factory(
            self.activation
        )
        self.activation_layers = [
            make_activation(f"activation_{i}") for i in range(len(self.hidden_units))
        ]
        for layer in self.activation_layers:
            layer.dtype_policy = self.dtype_policy
        # Distinct seeds, so that the layers' dropout masks are not alike.
        self.dropouts = [
            keras.layers.Dropout(
                dropout_rate,
                seed=None if seed is None else seed + i,
                dtype=self.dtype_policy,
            )
            for i in range(len(self.hidden_units))
            if dropout_rate > 0
        ]

    def _initializer(self, index):
        seed = None if self.seed is None else self.seed + index
        return keras.initializers.GlorotNormal(seed=seed)

    def build(self, input_shape):
        query_shape, keys_shape = split_inputs(
            input_shape, self.__class__.__name__, (2,)
        )
        check_query_and_keys(query_shape, keys_shape)
        self._embedding_dim = static_shape(keys_shape)[-1]
        self.kernels, self.biases = [], []
        input_dim = 4 * self._embedding_dim
        regularizer = keras.regularizers.L2(self.l2_reg) if self.l2_reg else None
        for i, units in enumerate(self.hidden_units):
            self.kernels.append(
                self.add_weight(
                    shape=(input_dim, units),
                    initializer=self._initializer(i),
                    regularizer=regularizer,
                    name=f"kernel_{i}",
                )
            )
            self.biases.append(
                self.add_weight(shape=(units,), initializer="zeros", name=f"bias_{i}")
            )
            input_dim = units
        self.output_kernel = self.add_weight(
            shape=(input_dim, 1),
            initializer=self._initializer(len(self.hidden_units)),
            name="output_kernel",
        )
        self.output_bias = self.add_weight(
            shape=(1,), initializer="zeros", name="output_bias"
        )
        for i, units in enumerate(self.hidden_units):
            for layers in (self.batch_norms, self.activation_layers):
                if layers:
                    layers[i].build((None, units))

    def call(self, inputs, mask=None, training=None, keys_mask=None):
        query, keys = split_inputs(inputs, self.__class__.__name__, (2,))
        check_query_and_keys(query, keys)
        batch = ops.shape(keys)[0]
        history = ops.shape(keys)[1]
        candidates = ops.shape(query)[1]
        if keys_mask is not None:
            check_keys_mask(keys_mask, keys)
            keys_mask = ops.cast(keys_mask, "bool")
        if keys_mask is not None and self._skips_padding():
            blocks, _, scores = self._score_valid_rows(query, keys, keys_mask, training)
            scores = to_every_position(scores, blocks, batch, history)
            if blocks.size > 1:  # the padding inside the gathered blocks
                scores = ops.where(
                    ops.expand_dims(keys_mask, -1), scores, ops.zeros_like(scores)
                )
            return scores
        row_mask = None
        if keys_mask is not None:
            row_mask = ops.expand_dims(keys_mask, -1)
            row_mask = ops.broadcast_to(row_mask, (batch, history, candidates))
            row_mask = ops.reshape(row_mask, (-1,))
        scores = self._row_scores(query, keys, None, training, row_mask)
        scores = ops.reshape(scores, (batch, history, candidates))
        if keys_mask is not None:
            scores = ops.where(
                ops.expand_dims(keys_mask, -1), scores, ops.zeros_like(scores)
            )
        return scores

    def _skips_padding(self):
        """Whether padding positions are left out of the computation."""
        return (
            self.skip_padding
            and not self.use_bn
            and keras.backend.backend() != "jax"
            and not computing_every_position()
        )

    def _uses_dice(self):
        return any(isinstance(x, Dice) for x in self.activation_layers)

    def _score_valid_rows(self, query, keys, keys_mask, training):
        """Gathers the blocks of history rows that hold valid ones; scores them.

        Returns `(blocks, keys_rows, scores)`: the kept blocks (see
        `valid_blocks`), their `(N, P, 1, E)` keys and their `(N * P, C)`
        scores, `P` being the block size. The padding inside a block is
        scored too, and left out of Dice statistics.
        """
        size = block_size(static_shape(keys)[1])
        blocks = valid_blocks(keys_mask, size)
        keys_rows = ops.reshape(keys, (-1, size, 1, self._embedding_dim))
        keys_rows = take_blocks(keys_rows, blocks)
        row_mask = None
        if blocks.valid is not None and self._uses_dice():  # for Dice alone
            row_mask = ops.expand_dims(blocks.valid, -1)
            row_mask = ops.broadcast_to(
                row_mask, (ops.shape(blocks.valid)[0], size, ops.shape(query)[1])
            )
            row_mask = ops.reshape(row_mask, (-1,))
        scores = self._row_scores(query, keys_rows, blocks.owners, training, row_mask)
        return blocks, keys_rows, scores

    def _row_scores(self, query, keys, owners, training, row_mask=None):
        """Scores of history rows against the candidates of their sequence.

        Args:
            query: `(B, C, E)` candidates.
            keys: The `(B, T, E)` history, every position a row, or `(N, P,
                1, E)` blocks of `P` rows selected from it.
            owners: `None` for every position, else the `(N,)` sequence
                (batch index) of each selected block.
            training: Python boolean, passed to the hidden layers.
            row_mask: Optional `(R * C,)` boolean mask of valid rows for the
                Dice statistics.

        Returns:
            `(R, C)` scores, `R` being `B * T` or `N * P`.
        """
        # No name holds the first layer's output while the stack runs, so
        # that it is freed as soon as the next layer has been computed.
        scores = self._hidden_and_output(
            self._first_layer(query, keys, owners), training, row_mask
        )
        return ops.reshape(scores, (-1, ops.shape(query)[1]))

    def _first_layer(self, query, keys, owners):
        """`[q, k, q - k, q * k] @ W_1 + b_1`, one row per (row, candidate).

        Returns an `(R * C, H_1)` matrix ordered by row (`R = B * T` or
        `N * P`), then candidate.
        """
        e = self._embedding_dim
        units = self.hidden_units[0]
        kernel, bias = self.kernels[0], self.biases[0]
        w_q, w_k = kernel[:e], kernel[e : 2 * e]
        w_d, w_p = kernel[2 * e : 3 * e], kernel[3 * e :]
        # With W_1 split by rows into [W_q; W_k; W_d; W_p], the first layer
        # is q (W_q + W_d) + b_1 + k (W_k - W_d) + (q * k) W_p: the query
        # term once per candidate, and for the rest two GEMMs, each a
        # quarter as wide as the concatenation's.
        query_term = ops.matmul(query, w_q + w_d) + bias  # (B, C, H)
        if owners is None and static_shape(query)[1] == 1:
            # One candidate at every position: plain (B * T, .) matrices and
            # one GEMM over [q * k, k]. XLA, torch and TensorFlow all run
            # this faster than the (B * T, C, .) form below.
            batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
            rows = ops.concatenate(
                [ops.reshape(query * keys, (-1, e)), ops.reshape(keys, (-1, e))],
                axis=-1,
            )
            hidden = ops.matmul(rows, ops.concatenate([w_p, w_k - w_d], axis=0))
            hidden = ops.reshape(hidden, (batch, history, units)) + query_term
            return ops.reshape(hidden, (-1, units))
        if owners is None:
            batch, history = ops.shape(keys)[0], ops.shape(keys)[1]
            candidates = ops.shape(query)[1]
            keys = ops.reshape(keys, (-1, 1, e))

            # The (B * T, C, .) layout, broadcast explicitly: XLA runs the
            # implicitly broadcast (B, T, C, .) one far slower.
            def per_row(x):  # (B, C, D) -> (B * T, C, D)
                x = ops.expand_dims(x, 1)
                x = ops.broadcast_to(x, (batch, history, candidates, x.shape[-1]))
                return ops.reshape(x, (-1, candidates, x.shape[-1]))

        else:

            def per_row(x):  # (B, C, D) -> (N, 1, C, D), against (N, P, 1, E)
                return ops.expand_dims(ops.take(x, owners, axis=0), 1)

        # One expression, so that each (rows, C, H) temporary is freed as
        # soon as it has been added: three at most are alive at once.
        hidden = (
            ops.matmul(per_row(query) * keys, w_p)
            + per_row(query_term)
            + ops.matmul(keys, w_k - w_d)
        )
        return ops.reshape(hidden, (-1, units))

    def _hidden_and_output(self, hidden, training, row_mask):
        """The hidden stack and output layer; returns one score per row."""
        for i in range(len(self.hidden_units)):
            if i > 0:
                hidden = ops.matmul(hidden, self.kernels[i]) + self.biases[i]
            if self.use_bn:
                hidden = self.batch_norms[i](hidden, training=training)
            activation = self.activation_layers[i]
            if self._activation_function is not None:
                hidden = self._activation_function(hidden)
            elif isinstance(activation, Dice):
                hidden = activation(hidden, training=training, mask=row_mask)
            else:
                hidden = activation(hidden, training=training)
            if self.dropouts:
                hidden = self.dropouts[i](hidden, training=training)
        return ops.matmul(hidden, self.output_kernel) + self.output_bias

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": _serialize_activation(self.activation),
                "l2_reg": self.l2_reg,
                "dropout_rate": self.dropout_rate,
                "use_bn": self.use_bn,
                "seed": self.seed,
                "skip_padding": self.skip_padding,
            }
        )
        return config
