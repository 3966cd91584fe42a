import re
import zipfile

import h5py
import keras
import numpy as np
import pytest
import reference as ref
from layer_checks import assert_config_round_trip
from layer_checks import assert_save_load
from layer_checks import random_like_weights
from layer_checks import to_numpy

from keras_din import AttentionalGRUCell
from keras_din import InterestEvolution
from keras_din import InterestExtractor

TYPES = ["GRU", "AIGRU", "AGRU", "AUGRU"]
B, T, E, H, C = 4, 6, 3, 5, 2


def reference_step(x, h, a, weights, gru_type):
    """One step of the cell's equations in float64, gates `[reset, update,
    candidate]`; `h` `(B, H)` or `(B, C, H)`, `a` shaped as `h` without its
    last axis (or `None`)."""
    kernel, recurrent_kernel, bias, recurrent_bias = weights
    x, h = np.asarray(x, np.float64), np.asarray(h, np.float64)
    if h.ndim == 3:
        x = x[:, None, :]  # one input for every candidate
    a = None if a is None else np.asarray(a, np.float64)[..., None]
    if gru_type == "AIGRU":
        x = a * x
    gi = x @ kernel + bias
    gh = h @ recurrent_kernel + recurrent_bias
    (gi_r, gi_u, gi_n), (gh_r, gh_u, gh_n) = np.split(gi, 3, -1), np.split(gh, 3, -1)
    r = ref.sigmoid(gi_r + gh_r)
    u = ref.sigmoid(gi_u + gh_u)
    n = np.tanh(gi_n + r * gh_n)
    if gru_type == "AGRU":
        u = a
    elif gru_type == "AUGRU":
        u = a * u
    return (1 - u) * h + u * n


def make_cell(rng, gru_type, units=H, dim=E):
    cell = AttentionalGRUCell(units=units, gru_type=gru_type)
    cell.build((None, dim))
    weights = random_like_weights(cell, rng)
    cell.set_weights(weights)
    return cell, weights


def case_shapes(gru_type, candidates):
    """`(attention shape without B, state shape without B)` of a case."""
    if gru_type == "GRU":
        return None, (H,)
    return ((candidates,), (candidates, H)) if candidates else ((), (H,))


def test_weights_are_kernel_recurrent_kernel_and_biases():
    cell = AttentionalGRUCell(units=H)
    cell.build((None, E))
    names = [w.path.split("/")[-1] for w in cell.weights]
    assert names == ["kernel", "recurrent_kernel", "bias", "recurrent_bias"]
    shapes = [tuple(w.shape) for w in cell.weights]
    assert shapes == [(E, 3 * H), (H, 3 * H), (3 * H,), (3 * H,)]


def test_seeded_weights_start_glorot_uniform_orthogonal_and_zero():
    cell = AttentionalGRUCell(units=H, seed=7)
    cell.build((None, E))
    kernel, recurrent_kernel, bias, recurrent_bias = cell.get_weights()
    glorot = keras.initializers.GlorotUniform(7)((E, 3 * H))
    orthogonal = keras.initializers.Orthogonal(seed=8)((H, 3 * H))
    np.testing.assert_array_equal(kernel, to_numpy(glorot))
    np.testing.assert_array_equal(recurrent_kernel, to_numpy(orthogonal))
    assert not bias.any() and not recurrent_bias.any()


def test_units_default_to_the_input_size():
    cell = AttentionalGRUCell(gru_type="GRU")
    assert tuple(cell(np.ones((2, 4), "float32")).shape) == (2, 4)


@pytest.mark.parametrize("gru_type", TYPES)
@pytest.mark.parametrize("candidates", [None, C])
def test_step_matches_reference(rng, gru_type, candidates):
    if gru_type == "GRU" and candidates:
        pytest.skip("the plain GRU takes no attention, so no candidate axis")
    cell, weights = make_cell(rng, gru_type)
    attention_shape, state_shape = case_shapes(gru_type, candidates)
    x = rng.normal(size=(B, E)).astype("float32")
    h = rng.normal(size=(B, *state_shape)).astype("float32")
    a = None
    if attention_shape is not None:
        a = rng.random((B, *attention_shape)).astype("float32")
    actual = to_numpy(cell(x, states=h, attention=a))
    expected = reference_step(x, h, a, weights, gru_type)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    # Keras's cells take their states as a list; `None` is the zero state.
    np.testing.assert_allclose(to_numpy(cell(x, [h], attention=a)), actual)
    np.testing.assert_allclose(
        to_numpy(cell(x, attention=a)),
        reference_step(x, np.zeros_like(h), a, weights, gru_type),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("gru_type", TYPES)
@pytest.mark.parametrize("candidates", [None, C])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_scan_matches_reference_loop(rng, gru_type, candidates, return_sequences):
    if gru_type == "GRU" and candidates:
        pytest.skip("the plain GRU takes no attention, so no candidate axis")
    cell, weights = make_cell(rng, gru_type)
    attention_shape, _ = case_shapes(gru_type, candidates)
    inputs = rng.normal(size=(B, T, E)).astype("float32")
    mask = rng.random((B, T)) < 0.6  # holes anywhere
    mask[0] = False  # an empty history
    mask[1] = True
    attention = None
    if attention_shape is not None:
        attention = rng.random((B, T, *attention_shape)).astype("float32")
    actual = to_numpy(
        cell.scan(
            inputs, mask=mask, attention=attention, return_sequences=return_sequences
        )
    )
    per_candidate = attention[..., None] if attention_shape == () else attention
    runs = [
        ref.gru_states(
            inputs,
            mask,
            *weights,
            gru_type,
            None if attention is None else per_candidate[..., c],
        )
        for c in range(candidates or 1)
    ]
    expected = np.stack([run[0 if return_sequences else 1] for run in runs], -2)
    if not candidates:
        expected = expected[..., 0, :]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    if return_sequences:
        padding = ~mask if not candidates else np.repeat(~mask[..., None], C, -1)
        assert np.all(actual[padding] == 0)
    else:
        assert np.all(actual[0] == 0)  # the empty history keeps the zero state


def test_scan_without_mask_runs_every_step(rng):
    cell, weights = make_cell(rng, "GRU")
    inputs = rng.normal(size=(B, T, E)).astype("float32")
    states, final = ref.gru_states(inputs, np.ones((B, T), bool), *weights)
    actual = to_numpy(cell.scan(inputs, return_sequences=True))
    np.testing.assert_allclose(actual, states, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(cell.scan(inputs)), final, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_scan_of_no_step_gives_the_zero_state(rng, return_sequences):
    cell, _ = make_cell(rng, "AUGRU")
    inputs = np.zeros((B, 0, E), "float32")
    attention = np.zeros((B, 0, C), "float32")
    output = cell.scan(inputs, attention=attention, return_sequences=return_sequences)
    shape = (B, 0, C, H) if return_sequences else (B, C, H)
    assert tuple(output.shape) == shape and not to_numpy(output).any()


def test_dien_layers_scan_without_a_layer_call_per_step(rng, monkeypatch):
    calls = []
    original = AttentionalGRUCell.__call__

    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AttentionalGRUCell, "__call__", counted)
    keys = rng.normal(size=(B, T, E)).astype("float32")
    query = rng.normal(size=(B, 1, E)).astype("float32")
    states = InterestExtractor()(keys)
    InterestEvolution(att_hidden_units=(4,))([query, states])
    cell, _ = make_cell(rng, "GRU")
    cell.scan(keys)
    assert calls == []


def test_dien_layers_weights_are_their_cells(rng):
    keys = rng.normal(size=(B, T, E)).astype("float32")
    query = rng.normal(size=(B, 1, E)).astype("float32")
    extractor = InterestExtractor(units=H, auxiliary_hidden_units=(4,))
    extractor(keys)
    evolution = InterestEvolution(units=H, att_hidden_units=(4,))
    evolution([query, keys])
    for layer in (extractor, evolution):
        assert isinstance(layer.cell, AttentionalGRUCell)
        assert layer.weights[:4] == layer.cell.weights
    assert evolution.cell.gru_type == "AUGRU" and extractor.cell.gru_type == "GRU"


def test_dien_layers_save_the_cell_weights_as_their_own(rng, tmp_path):
    """keras-din 0.2's layout: the four weights in the DIEN layer's entry."""
    keys = keras.Input((T, E))
    query = keras.Input((1, E))
    states = InterestExtractor(name="extractor")(keys)
    output = InterestEvolution(att_hidden_units=(4,), name="evolution")([query, states])
    model = keras.Model([keys, query], output)
    model.set_weights(random_like_weights(model, rng))
    path = tmp_path / "dien.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as file:
        weights = h5py.File(file, "r")
        # Entries are named after the layers' classes.
        for name in ("extractor", "evolution"):
            group = weights[f"layers/interest_{name}"]
            saved = [np.asarray(group["vars"][str(i)]) for i in range(4)]
            expected = model.get_layer(name).cell.get_weights()
            for array, value in zip(saved, expected, strict=True):
                np.testing.assert_array_equal(array, value)
            # The cell's own entry holds nothing.
            assert "cell" not in group or not len(group["cell/vars"])
    inputs = [rng.normal(size=(B, T, E)), rng.normal(size=(B, 1, E))]
    assert_save_load(model, [x.astype("float32") for x in inputs], tmp_path)


def test_config_round_trip():
    cell = AttentionalGRUCell(units=4, gru_type="AIGRU", seed=3, name="cell")
    assert_config_round_trip(cell)
    assert cell.get_config()["gru_type"] == "AIGRU"


def test_keras_file_round_trip(rng, tmp_path):
    x, h, a = keras.Input((E,)), keras.Input((C, H)), keras.Input((C,))
    model = keras.Model([x, h, a], AttentionalGRUCell(H, "AGRU")(x, h, a))
    model.set_weights(random_like_weights(model, rng))
    data = [
        rng.normal(size=(B, E)).astype("float32"),
        rng.normal(size=(B, C, H)).astype("float32"),
        rng.random((B, C)).astype("float32"),
    ]
    assert_save_load(model, data, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_scan_outside_a_layer_call_computes_in_the_compute_dtype(rng, policy):
    cell = AttentionalGRUCell(units=H, gru_type="AUGRU", dtype=policy)
    inputs = rng.normal(size=(B, T, E)).astype("float32")
    attention = rng.random((B, T)).astype("float32")
    low = cell.compute_dtype
    output = cell.scan(
        keras.ops.cast(inputs, low), attention=keras.ops.cast(attention, low)
    )
    assert keras.backend.standardize_dtype(output.dtype) == low
    weights = cell.get_weights()
    expected = ref.gru_states(
        inputs, np.ones((B, T), bool), *weights, "AUGRU", attention
    )
    np.testing.assert_allclose(
        to_numpy(output).astype("float32"), expected[1], rtol=0.05, atol=0.05
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "`units` must be a positive int or None. Received: units=0"),
        ({"units": 2.5}, "Received: units=2.5"),
        (
            {"gru_type": "LSTM"},
            "`gru_type` must be one of ('GRU', 'AIGRU', 'AGRU', 'AUGRU'). "
            "Received: gru_type='LSTM'",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AttentionalGRUCell(**kwargs)


def test_bad_inputs(rng):
    x = rng.normal(size=(B, E)).astype("float32")
    sequence = rng.normal(size=(B, T, E)).astype("float32")
    attention = rng.random((B, C)).astype("float32")
    cell, _ = make_cell(rng, "AUGRU")
    cases = [
        (lambda: cell(x), "needs an `attention`. Received: attention=None"),
        (
            lambda: make_cell(rng, "GRU")[0](x, attention=attention),
            "`gru_type='GRU'` takes no `attention`. Received: attention=(4, 2)",
        ),
        (
            lambda: cell(sequence, attention=attention),
            "Received: inputs.shape=(4, 6, 3)",
        ),
        (lambda: cell(x[:, :2], attention=attention), "E=3. Received: inputs.shape"),
        (
            lambda: cell(x, attention=attention[:2]),
            "`attention` must have shape (4) or (4, C). "
            "Received: attention.shape=(2, 2)",
        ),
        (
            lambda: cell(x, np.zeros((B, C, 4), "float32"), attention),
            "`states` must have shape (4, 2, 5). Received: states.shape=(4, 2, 4)",
        ),
        (
            lambda: cell.scan(x, attention=attention),
            "`inputs` must have shape (batch, steps, E)",
        ),
        (
            lambda: cell.scan(sequence, attention=attention),
            "`attention` must have shape (4, 6) or (4, 6, C). "
            "Received: attention.shape=(4, 2)",
        ),
        (
            lambda: cell.scan(
                sequence, mask=np.ones((B, 5), bool), attention=sequence[..., 0]
            ),
            "`mask` must have shape (4, 6). Received: mask.shape=(4, 5)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()
    with pytest.raises(TypeError, match=re.escape("Received: inputs.dtype=int32")):
        cell.scan(sequence.astype("int32"), attention=sequence[..., 0])
    with pytest.raises(ValueError, match=re.escape("known E")):
        AttentionalGRUCell().build((None, None))
