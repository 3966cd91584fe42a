"""Keras's layer contract, on every public layer and backend.

For each layer, several configurations are called symbolically (as in a
functional model) and eagerly under the float32, mixed_float16 and
mixed_bfloat16 policies and under a layer-level `dtype=`; the two calls must
agree in shape and dtype, and the output dtype must be the layer's compute
dtype. As a second check, the same configurations go through the harness
that Keras tests its own layers with, `keras.src.testing.TestCase.
run_layer_test` (private API: tox pins the Keras version it was written for).
"""

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_din import MLP
from keras_din import AttentionalGRUCell
from keras_din import AttentionSequencePoolingLayer
from keras_din import BehaviorSequenceTransformer
from keras_din import Dice
from keras_din import InterestEvolution
from keras_din import InterestExtractor
from keras_din import LocalActivationUnit
from keras_din import MiniBatchAwareEmbedding
from keras_din import SearchBasedInterest

RNG = np.random.default_rng(0)


def floats(*shape):
    return RNG.normal(size=shape).astype("float32")


QUERY, QUERY3, KEYS = floats(4, 1, 8), floats(4, 3, 8), floats(4, 6, 8)
LENGTHS = np.array([[0], [2], [6], [9]], "int32")
MASK = RNG.random((4, 6)) < 0.6

# (id, layer class, constructor arguments, inputs, call arguments).
CASES = [
    ("unit", LocalActivationUnit, {"hidden_units": (16, 8)}, [QUERY, KEYS], {}),
    (
        "unit-dice-3-candidates",
        LocalActivationUnit,
        {"hidden_units": (8,), "activation": "dice"},
        [QUERY3, KEYS],
        {"keys_mask": MASK},
    ),
    (
        "unit-prelu-bn-dropout",
        LocalActivationUnit,
        {
            "hidden_units": (8, 4),
            "activation": "prelu",
            "use_bn": True,
            "dropout_rate": 0.2,
            "seed": 1,
        },
        [QUERY, KEYS],
        {},
    ),
    (
        "unit-query-index",
        LocalActivationUnit,
        {"hidden_units": (8, 4)},
        [QUERY3, floats(7, 2, 8)],
        {"query_index": np.array([0, 3, 3, 1, 2, 0, 1], "int32")},
    ),
    (
        "pooling-lengths-softmax",
        AttentionSequencePoolingLayer,
        {"att_hidden_units": (16, 8), "weight_normalization": True},
        [QUERY, KEYS, LENGTHS],
        {},
    ),
    (
        "pooling-raw-scores",
        AttentionSequencePoolingLayer,
        {"att_hidden_units": (8,), "return_score": True},
        [QUERY3, KEYS, LENGTHS[:, 0]],
        {},
    ),
    (
        "pooling-explicit-mask-3-candidates",
        AttentionSequencePoolingLayer,
        {"att_hidden_units": (8, 4), "weight_normalization": True},
        [QUERY3, KEYS],
        {"mask": MASK},
    ),
    (
        "pooling-dice-no-mask",
        AttentionSequencePoolingLayer,
        {"att_hidden_units": (8, 4), "att_activation": "dice"},
        [QUERY, KEYS],
        {},
    ),
    (
        "extractor-lengths",
        InterestExtractor,
        {"units": 5},
        [KEYS, LENGTHS[:, 0]],
        {},
    ),
    (
        "extractor-mask-negatives",
        InterestExtractor,
        {"auxiliary_loss_weight": 0.5, "auxiliary_hidden_units": (4,)},
        KEYS,
        {"mask": MASK, "negative_keys": floats(4, 6, 8)},
    ),
    (
        "evolution-augru",
        InterestEvolution,
        {"att_hidden_units": (8,)},
        [QUERY, KEYS, LENGTHS],
        {},
    ),
    (
        "evolution-agru-3-candidates",
        InterestEvolution,
        {"gru_type": "AGRU", "units": 4, "att_hidden_units": (8,)},
        [QUERY3, KEYS],
        {"mask": MASK},
    ),
    (
        "evolution-gru-2d-query",
        InterestEvolution,
        {"gru_type": "GRU", "att_hidden_units": (8,)},
        [floats(4, 8), KEYS, LENGTHS],
        {},
    ),
    ("dice-2d", Dice, {}, floats(5, 4), {}),
    ("dice-3d", Dice, {"epsilon": 1e-8}, floats(3, 5, 4), {}),
    ("dice-axis-1", Dice, {"axis": 1}, floats(3, 4, 5), {}),
    ("dice-momentum", Dice, {"momentum": 0.5}, floats(6, 2), {}),
    (
        "embedding",
        MiniBatchAwareEmbedding,
        {"input_dim": 10, "output_dim": 4},
        RNG.integers(0, 10, (3, 5)).astype("int32"),
        {},
    ),
    (
        "embedding-l2",
        MiniBatchAwareEmbedding,
        {"input_dim": 10, "output_dim": 4, "l2": 0.1},
        RNG.integers(0, 10, (3, 5)).astype("int32"),
        {},
    ),
    (
        "embedding-mask-zero",
        MiniBatchAwareEmbedding,
        {"input_dim": 10, "output_dim": 3, "mask_zero": True},
        RNG.integers(0, 10, (4, 2)).astype("int32"),
        {},
    ),
    (
        "embedding-frequencies",
        MiniBatchAwareEmbedding,
        {
            "input_dim": 6,
            "output_dim": 2,
            "l2": 0.5,
            "frequencies": np.arange(6, dtype="float32"),
        },
        RNG.integers(0, 6, (8,)).astype("int32"),
        {},
    ),
]
CASES += [
    ("mlp", MLP, {"hidden_units": (8, 4)}, floats(4, 6), {}),
    (
        "mlp-dice-dropout-rank-3",
        MLP,
        {"hidden_units": (8,), "activation": "dice", "dropout_rate": 0.2, "seed": 1},
        floats(4, 3, 6),
        {},
    ),
]
CASES += [
    (
        "cell-gru-zero-state",
        AttentionalGRUCell,
        {"units": 5, "gru_type": "GRU"},
        floats(4, 8),
        {},
    ),
    (
        "cell-gru-state",
        AttentionalGRUCell,
        {"gru_type": "GRU", "seed": 1},
        floats(4, 8),
        {"states": floats(4, 8)},
    ),
    (
        "cell-augru-3-candidates",
        AttentionalGRUCell,
        {"units": 5},
        floats(4, 8),
        {"states": floats(4, 3, 5), "attention": RNG.random((4, 3)).astype("float32")},
    ),
    (
        "cell-aigru-zero-state",
        AttentionalGRUCell,
        {"gru_type": "AIGRU"},
        floats(4, 8),
        {"attention": RNG.random(4).astype("float32")},
    ),
]
CASES += [
    (
        "bst-concat",
        BehaviorSequenceTransformer,
        {"num_heads": 2},
        [QUERY, KEYS],
        {"mask": MASK},
    ),
    (
        "bst-target-3-candidates-dropout",
        BehaviorSequenceTransformer,
        {"num_heads": 4, "pooling": "target", "dropout_rate": 0.1, "seed": 2},
        [QUERY3, KEYS],
        {},
    ),
    (
        "bst-mean-key-dim",
        BehaviorSequenceTransformer,
        {"num_heads": 3, "key_dim": 2, "feed_forward_units": 5, "pooling": "mean"},
        [QUERY3, KEYS],
        {"mask": MASK},
    ),
]
IDS_3 = RNG.integers(0, 3, (4, 3)).astype("int32")
KEY_IDS = RNG.integers(0, 3, (4, 6)).astype("int32")
CASES += [
    ("sim-soft", SearchBasedInterest, {"top_k": 3}, [QUERY, KEYS], {"mask": MASK}),
    (
        "sim-soft-3-candidates-key-dim",
        SearchBasedInterest,
        {"top_k": 10, "num_heads": 3, "key_dim": 2},
        [QUERY3, KEYS],
        {},
    ),
    (
        "sim-hard-3-candidates",
        SearchBasedInterest,
        {"top_k": 2, "search": "hard", "seed": 4},
        [QUERY3, KEYS, IDS_3, KEY_IDS],
        {"mask": MASK},
    ),
]
IDS = [case[0] for case in CASES]
POLICIES = ["float32", "mixed_float16", "mixed_bfloat16"]


def symbolic(x):
    """A Keras input like `x`, its batch size unknown."""
    return keras.Input(batch_shape=(None, *x.shape[1:]), dtype=x.dtype)


def symbolic_call_kwargs(kwargs):
    # `query_index` indexes one query row per keys row: as data, not shape,
    # it is given as the array itself in both calls.
    return {k: v if k == "query_index" else symbolic(v) for k, v in kwargs.items()}


def check_symbolic_matches_eager(layer_cls, init_kwargs, inputs, call_kwargs):
    structure = inputs if isinstance(inputs, list) else [inputs]
    eager_layer = layer_cls(**init_kwargs)
    eager = eager_layer(inputs, **call_kwargs)
    symbolic_inputs = [symbolic(x) for x in structure]
    symbolic_layer = layer_cls(**init_kwargs)
    spec = symbolic_layer(
        symbolic_inputs if isinstance(inputs, list) else symbolic_inputs[0],
        **symbolic_call_kwargs(call_kwargs),
    )
    if not isinstance(eager, list):  # one output
        eager, spec = [eager], [spec]
    assert len(eager) == len(spec)
    for e, s in zip(eager, spec, strict=True):
        dtype = keras.backend.standardize_dtype(e.dtype)
        assert dtype == s.dtype == eager_layer.compute_dtype, (dtype, s.dtype)
        assert len(s.shape) == len(e.shape)
        for a, b in zip(s.shape, e.shape, strict=True):
            assert a is None or a == b, (s.shape, e.shape)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(e).astype("float32")))


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "name, layer_cls, init_kwargs, inputs, call_kwargs", CASES, ids=IDS
)
def test_symbolic_and_eager_calls_agree(
    policy, name, layer_cls, init_kwargs, inputs, call_kwargs
):
    keras.config.set_dtype_policy(policy)
    check_symbolic_matches_eager(layer_cls, init_kwargs, inputs, call_kwargs)


@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "float16"])
@pytest.mark.parametrize(
    "name, layer_cls, init_kwargs, inputs, call_kwargs", CASES, ids=IDS
)
def test_layer_level_dtype_policy(
    dtype, name, layer_cls, init_kwargs, inputs, call_kwargs
):
    check_symbolic_matches_eager(
        layer_cls, {**init_kwargs, "dtype": dtype}, inputs, call_kwargs
    )


class _Harness(testing.TestCase):
    def runTest(self):  # unittest wants one; the harness is called directly
        pass


def expected_shape(layer_cls, init_kwargs, inputs, call_kwargs):
    output = layer_cls(**init_kwargs)(inputs, **call_kwargs)
    if isinstance(output, list):
        return [tuple(x.shape) for x in output]
    return tuple(output.shape)


# The harness calls `compute_output_spec` without the call arguments, which
# `query_index` changes the meaning of and the cell's `attention` is needed
# for: those cases are checked above only.
HARNESS_CASES = [
    case for case in CASES if not {"query_index", "attention"} & set(case[4])
]


@pytest.mark.parametrize(
    "name, layer_cls, init_kwargs, inputs, call_kwargs",
    HARNESS_CASES,
    ids=[case[0] for case in HARNESS_CASES],
)
def test_keras_layer_harness(name, layer_cls, init_kwargs, inputs, call_kwargs):
    shape = expected_shape(layer_cls, init_kwargs, inputs, call_kwargs)
    harness = _Harness()
    harness.run_layer_test(
        layer_cls,
        init_kwargs,
        # A tuple: on TensorFlow the harness's training data go through
        # `tf.data`, whose signatures take no lists.
        input_data=tuple(inputs) if isinstance(inputs, list) else inputs,
        call_kwargs={k: keras.ops.convert_to_tensor(v) for k, v in call_kwargs.items()},
        expected_output_shape=shape,
        # The training check fits on the inputs alone: call arguments such as
        # an explicit mask are not passed there. Nor does it take two
        # outputs on TensorFlow (its `tf.data` targets take no list); the
        # soft search's training is tested in its own file.
        run_training_check=not call_kwargs and not isinstance(shape, list),
        run_mixed_precision_check=True,
    )
