import keras
from keras import ops

from keras_din.layers._checks import check_dtype
from keras_din.layers._checks import check_optional_units
from keras_din.layers._checks import dims_disagree
from keras_din.layers._checks import static_shape
from keras_din.layers._dtypes import cast_to
from keras_din.layers._recurrence import GRU_TYPES
from keras_din.layers._recurrence import gated_recurrence
from keras_din.layers._recurrence import gated_step
from keras_din.layers._recurrence import orthogonal


@keras.saving.register_keras_serializable(package="keras_din")
class AttentionalGRUCell(keras.layers.Layer):
    """DIEN's gated recurrent unit: the GRU and its attentional variants.

    One step, with the gates in the order `[reset, update, candidate]` and
    the DIEN paper's convention (the update gate is the share of the new
    candidate):

        r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + c_r)
        u_t = sigmoid(x_t W_u + b_u + h_{t-1} U_u + c_u)
        n_t = tanh(x_t W_n + b_n + r_t * (h_{t-1} U_n + c_n))
        h_t = (1 - u_t) * h_{t-1} + u_t * n_t

    With an attention weight `a_t` per step, `"AUGRU"` (the paper's eq. 8)
    uses `a_t u_t` as the update gate, `"AGRU"` uses `a_t` instead of it and
    `"AIGRU"` takes `a_t x_t` as the input; `"GRU"` takes no attention.
    Calling the cell computes one step; `scan` runs it over a sequence, as
    `InterestExtractor` and `InterestEvolution` do.

    Args:
        units: int or `None`. Width `H` of the state; `None` takes the input
            size `E`. Defaults to `None`.
        gru_type: one of `"AUGRU"`, `"AGRU"`, `"AIGRU"` and `"GRU"`.
            Defaults to `"AUGRU"`.
        seed: int or `None`. Seed of the kernel's initialiser; the recurrent
            kernel's is `seed + 1`. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `x_t`, shape `(B, E)`.
        states: `h_{t-1}`, shape `(B, H)`, or `(B, C, H)` for `C`
            candidates, each with its own state and attention (a list of one
            such tensor, as Keras's cells take, works too). `None`, the
            default, is the zero state.
        attention: `a_t`, shape `(B,)`, or `(B, C)` with candidates. Given
            for every type but `"GRU"`.

    Output:
        `h_t`, shaped as the state.

    Weights:
        `[kernel (E, 3H), recurrent_kernel (H, 3H), bias (3H,),
        recurrent_bias (3H,)]`: `W`, `U`, `b` and `c` above, each with its
        gates side by side in the order `[reset, update, candidate]`. The
        kernel starts Glorot-uniform, the recurrent kernel orthogonal, the
        biases at 0.

    Examples:

        >>> import numpy as np
        >>> cell = AttentionalGRUCell(units=3, gru_type="AUGRU")
        >>> x = np.random.rand(2, 4).astype("float32")
        >>> h = cell(x, attention=np.array([0.5, 0.0], "float32"))  # from 0
        >>> tuple(h.shape)
        (2, 3)
        >>> float(np.abs(keras.ops.convert_to_numpy(h)[1]).max())  # a_t = 0
        0.0
        >>> sequence = np.random.rand(2, 5, 4).astype("float32")
        >>> attention = np.random.rand(2, 5, 7).astype("float32")  # C = 7
        >>> tuple(cell.scan(sequence, attention=attention).shape)
        (2, 7, 3)

    References:
        - [Zhou et al., 2019](https://arxiv.org/abs/1809.03672), Deep Interest
          Evolution Network for Click-Through Rate Prediction.
    """

    def __init__(self, units=None, gru_type="AUGRU", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = check_optional_units("units", units)
        if gru_type not in GRU_TYPES:
            raise ValueError(
                f"`gru_type` must be one of {GRU_TYPES}. "
                f"Received: gru_type={gru_type!r}"
            )
        self.gru_type = gru_type
        self.seed = seed

    def build(self, input_shape):
        input_shape = static_shape(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "`AttentionalGRUCell` takes inputs of shape (..., E) with a known "
                f"E. Received: input_shape={input_shape}"
            )
        dim = input_shape[-1]
        units = self.units or dim
        seed = None if self.seed is None else self.seed + 1
        self.kernel = self.add_weight(
            shape=(dim, 3 * units),
            initializer=keras.initializers.GlorotUniform(self.seed),
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(units, 3 * units),
            initializer=orthogonal(seed),
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=(3 * units,), initializer="zeros", name="bias"
        )
        self.recurrent_bias = self.add_weight(
            shape=(3 * units,), initializer="zeros", name="recurrent_bias"
        )

    def _validate_inputs(
        self, inputs, states=None, attention=None, mask=None, over_time=False
    ):
        """Checks shapes or tensors (`scan`'s if `over_time`); returns the
        state's shape."""
        shape = static_shape(inputs)
        if hasattr(inputs, "dtype"):
            check_dtype("inputs", inputs, "float")
        steps = shape[:-1]  # (B,), or (B, T) over time
        dim = self.kernel.shape[0] if self.built else None
        if len(shape) != 2 + over_time or dims_disagree(shape[-1], dim):
            expected = "(batch, steps, E)" if over_time else "(batch, E)"
            raise ValueError(
                f"`inputs` must have shape {expected}, E={dim or 'known'}. "
                f"Received: inputs.shape={shape}"
            )
        if (attention is None) != (self.gru_type == "GRU"):
            rule = "takes no" if attention is not None else "needs an"
            raise ValueError(
                f"`gru_type={self.gru_type!r}` {rule} `attention`. Received: "
                f"attention={None if attention is None else static_shape(attention)}"
            )
        state = (shape[0], self.units or shape[-1])
        if attention is not None:
            attention = static_shape(attention)
            if len(attention) not in (len(steps), len(steps) + 1) or any(
                map(dims_disagree, attention, steps)
            ):
                axes = ", ".join(map(str, steps))
                raise ValueError(
                    f"`attention` must have shape ({axes}) or ({axes}, C). "
                    f"Received: attention.shape={attention}"
                )
            state = state[:1] + attention[len(steps) :] + state[1:]
        if states is not None and (
            len(static_shape(states)) != len(state)
            or any(map(dims_disagree, static_shape(states), state))
        ):
            raise ValueError(
                f"`states` must have shape {state}. "
                f"Received: states.shape={static_shape(states)}"
            )
        if mask is not None:
            check_dtype("mask", mask, "mask")
            if len(static_shape(mask)) != 2 or any(
                map(dims_disagree, static_shape(mask), steps)
            ):
                raise ValueError(
                    f"`mask` must have shape {steps}. "
                    f"Received: mask.shape={static_shape(mask)}"
                )
        return state

    def call(self, inputs, states=None, attention=None):
        if isinstance(states, (list, tuple)):
            states = states[0]
        self._validate_inputs(inputs, states, attention)
        if states is None:
            states = self._zero_state(inputs, attention)
        score = None if attention is None else ops.expand_dims(attention, -1)
        weights = self._weights(inputs.dtype)
        return gated_step(states, inputs, score, weights, self.gru_type)

    def scan(self, inputs, mask=None, attention=None, return_sequences=False):
        """Runs the cell over the steps of `inputs`, from the zero state.

        The steps run without a `Layer.__call__` each. At a position that
        `mask` marks invalid, the state is carried over unchanged and the
        output is 0.

        Args:
            inputs: `(B, T, E)`, the sequence of `x_t`.
            mask: Optional boolean `(B, T)`, the valid positions (by
                default all).
            attention: `(B, T)`, or `(B, T, C)` for `C` candidates, each
                with its own state. Given for every type but `"GRU"`.
            return_sequences: bool. Whether to return the state after every
                step rather than the last one. Defaults to `False`.

        Returns:
            The last state, `(B, H)` (`(B, C, H)` with candidates), or with
            `return_sequences` all of them, `(B, T, H)` (`(B, T, C, H)`).
        """
        self._validate_inputs(inputs, attention=attention, mask=mask, over_time=True)
        if not self.built:
            self.build(static_shape(inputs))
        return gated_recurrence(
            self._zero_state(inputs, attention),
            inputs,
            None if mask is None else cast_to(mask, "bool"),
            self._weights(inputs.dtype),
            self.gru_type,
            attention,
            return_sequences,
        )

    def _weights(self, dtype):
        """The four weights, cast to `dtype` where the policy mixes dtypes:
        a layer call's autocast casts them, a `scan` outside one does not."""
        weights = [self.kernel, self.recurrent_kernel, self.bias, self.recurrent_bias]
        if self.compute_dtype == self.variable_dtype:
            return weights
        return [cast_to(w, dtype) for w in weights]

    def _zero_state(self, inputs, attention):
        shape = (ops.shape(inputs)[0], self.recurrent_kernel.shape[0])
        if attention is not None and len(attention.shape) == len(inputs.shape):
            shape = shape[:1] + (ops.shape(attention)[-1],) + shape[1:]
        return ops.zeros(shape, inputs.dtype)

    def compute_output_shape(
        self, inputs_shape, states_shape=None, attention_shape=None
    ):
        return self._validate_inputs(inputs_shape, states_shape, attention_shape)

    def compute_output_spec(self, inputs, states=None, attention=None):
        if isinstance(states, (list, tuple)):
            states = states[0]
        shape = self._validate_inputs(inputs, states, attention)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"units": self.units, "gru_type": self.gru_type, "seed": self.seed}
        )
        return config
