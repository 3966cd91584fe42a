"""DeepCTR's and DeepCTR-Torch's trained weights give their outputs here.

The peers are installed in the tox environments of their frameworks:
DeepCTR (TensorFlow, under tf-keras) in `tensorflow`, DeepCTR-Torch in
`torch`. `KERAS_DIN_PEER`, set by tox, names the peer an environment must
have: there a missing peer is a failure, not a skip.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from layer_checks import to_numpy

from keras_din import AttentionSequencePoolingLayer
from keras_din import LocalActivationUnit

PEER = os.environ.get("KERAS_DIN_PEER")
HIDDEN = (8, 4)
MODES = [(wn, rs) for wn in (False, True) for rs in (False, True)]
# An empty history (row 2) differs by design and is not compared.
LENGTHS = np.array([[3], [7], [0], [1], [12], [5]], "int32")
NON_EMPTY = LENGTHS[:, 0] > 0


def requires_peer(name):
    return pytest.mark.skipif(
        name not in (PEER or "").split(","),
        reason=f"{name} is installed only in the tox environment that sets "
        f"KERAS_DIN_PEER={name} (this one has {PEER!r})",
    )


@pytest.fixture
def case(rng):
    query = rng.normal(size=(6, 1, 5)).astype("float32")
    keys = rng.normal(size=(6, 7, 5)).astype("float32")
    unit = LocalActivationUnit(hidden_units=HIDDEN)
    unit([query, keys])
    # Our layout: [W_1, b_1, W_2, b_2, w_o, b_o].
    weights = [
        rng.normal(scale=0.5, size=w.shape).astype("float32") for w in unit.weights
    ]
    return query, keys, weights


def keras_din_outputs(query, keys, weights):
    unit = LocalActivationUnit(hidden_units=HIDDEN)
    unit([query, keys])
    unit.set_weights(weights)
    outputs = {"unit": to_numpy(unit([query, keys]))}
    for wn, rs in MODES:
        layer = AttentionSequencePoolingLayer(
            att_hidden_units=HIDDEN, weight_normalization=wn, return_score=rs
        )
        layer([query, keys, LENGTHS])
        layer.set_weights(weights)
        outputs[f"pool_{int(wn)}_{int(rs)}"] = to_numpy(layer([query, keys, LENGTHS]))
    return outputs


def assert_outputs_match(ours, theirs):
    np.testing.assert_allclose(ours["unit"], theirs["unit"], rtol=1e-4, atol=1e-4)
    for wn, rs in MODES:
        key = f"pool_{int(wn)}_{int(rs)}"
        np.testing.assert_allclose(
            ours[key][NON_EMPTY],
            theirs[key][NON_EMPTY],
            rtol=1e-4,
            atol=1e-4,
            err_msg=key,
        )
        # Where DeepCTR's softmax mode averages the padding, we return zeros.
        assert np.all(ours[key][~NON_EMPTY] == 0)


@requires_peer("deepctr")
def test_deepctr_tensorflow_weights(case, tmp_path):
    query, keys, weights = case
    n = len(HIDDEN)
    # DeepCTR's order: output kernel and bias, then all hidden kernels, then
    # all hidden biases.
    kernels, biases = weights[0 : 2 * n : 2], weights[1 : 2 * n : 2]
    peer_weights = [weights[2 * n], weights[2 * n + 1], *kernels, *biases]
    inputs, outputs = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(
        inputs,
        query=query,
        keys=keys,
        keys_length=LENGTHS,
        hidden_units=np.array(HIDDEN),
        **{f"w{i}": w for i, w in enumerate(peer_weights)},
    )
    script = Path(__file__).parent / "peers" / "deepctr_tf_outputs.py"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(script), str(inputs), str(outputs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = dict(np.load(outputs))
    assert_outputs_match(keras_din_outputs(query, keys, weights), theirs)


@requires_peer("deepctr_torch")
def test_deepctr_torch_weights(case):
    import torch
    from deepctr_torch.layers import AttentionSequencePoolingLayer as PeerPooling
    from deepctr_torch.layers import LocalActivationUnit as PeerUnit

    query, keys, weights = case
    n = len(HIDDEN)

    def load(module):
        # torch.nn.Linear keeps (out, in) kernels: ours transposed.
        linears = [*module.dnn.linears, module.dense]
        with torch.no_grad():
            for i, linear in enumerate(linears):
                linear.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))
                linear.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
        assert len(linears) == n + 1
        return module.eval()

    q, k = torch.from_numpy(query), torch.from_numpy(keys)
    lengths = torch.from_numpy(LENGTHS.astype("int64"))
    theirs = {}
    with torch.no_grad():
        unit = load(PeerUnit(hidden_units=HIDDEN, embedding_dim=5))
        theirs["unit"] = unit(q, k).numpy()
        for wn, rs in MODES:
            layer = PeerPooling(
                att_hidden_units=HIDDEN,
                embedding_dim=5,
                weight_normalization=wn,
                return_score=rs,
            )
            load(layer.local_att)
            theirs[f"pool_{int(wn)}_{int(rs)}"] = layer(q, k, lengths).numpy()
    assert_outputs_match(keras_din_outputs(query, keys, weights), theirs)
    assert keras.backend.backend() == "torch"


# --- DIEN --------------------------------------------------------------------

DIEN_LENGTHS = np.array([3, 7, 0, 1, 6, 2])


def gru_weights(kernel, recurrent_kernel, bias, recurrent_bias, negate_update):
    """Ours `[kernel, recurrent_kernel, bias, recurrent_bias]` from torch's
    `(3H, in)` matrices in the order (r, z, n). torch's `nn.GRU` keeps the
    old state with `z` (`h = (1 - z) n + z h`); ours takes the new one with
    `u` (`h = (1 - u) h + u n`): `u = 1 - z`, so its weights are negated."""
    arrays = [kernel.T, recurrent_kernel.T, bias, recurrent_bias]
    if negate_update:
        units = recurrent_kernel.shape[1]
        for a in arrays:
            a[..., units : 2 * units] *= -1
    return [np.ascontiguousarray(a) for a in arrays]


@requires_peer("deepctr_torch")
@pytest.mark.parametrize("gru_type", ["AUGRU", "AGRU", "AIGRU", "GRU"])
def test_deepctr_torch_interest_evolving(rng, gru_type):
    import torch
    from deepctr_torch.models.dien import InterestEvolving

    from keras_din import InterestEvolution

    dim = 5
    query = rng.normal(size=(6, dim)).astype("float32")
    interests = rng.normal(size=(6, 7, dim)).astype("float32")
    torch.manual_seed(0)
    peer = InterestEvolving(
        input_size=dim,
        gru_type=gru_type,
        att_hidden_size=HIDDEN,
        att_weight_normalization=True,
    ).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.from_numpy(rng.normal(scale=0.5, size=p.shape)))
        # As DeepCTR-Torch's DIEN model does, the interests of the
        # non-empty histories only (its extractor drops the empty ones).
        theirs = peer(
            torch.from_numpy(query),
            torch.from_numpy(interests[DIEN_LENGTHS > 0]),
            torch.from_numpy(DIEN_LENGTHS),
        ).numpy()
    cell = peer.interest_evolution
    if gru_type in ("AGRU", "AUGRU"):
        cell = cell.rnn
        # DeepCTR-Torch's AUGRUCell registers its recurrent bias under the
        # name `bias_ih` too: its two biases are one tensor.
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    else:
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    arrays = [getattr(cell, n).detach().numpy().copy() for n in names]
    gru = gru_weights(*arrays, negate_update=gru_type in ("GRU", "AIGRU"))
    unit = peer.attention.local_att
    linears = [*unit.dnn.linears, unit.dense]
    att = []
    for linear in linears:
        att += [linear.weight.detach().numpy().T.copy(), linear.bias.detach().numpy()]
    layer = InterestEvolution(gru_type=gru_type, att_hidden_units=HIDDEN)
    layer.build([query.shape, interests.shape])
    layer.set_weights(gru + att)
    ours = to_numpy(layer([query, interests, DIEN_LENGTHS]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@requires_peer("deepctr_torch")
def test_deepctr_torch_interest_extractor(rng):
    import torch
    from deepctr_torch.models.dien import InterestExtractor as PeerExtractor

    from keras_din import InterestExtractor

    dim = 5
    keys = rng.normal(size=(6, 7, dim)).astype("float32")
    negatives = rng.normal(size=(6, 7, dim)).astype("float32")
    peer = PeerExtractor(input_size=dim, use_neg=True).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.from_numpy(rng.normal(scale=0.5, size=p.shape)))
        states, loss = peer(
            torch.from_numpy(keys),
            torch.from_numpy(DIEN_LENGTHS),
            torch.from_numpy(negatives),
        )
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    arrays = [getattr(peer.gru, n).detach().numpy().copy() for n in names]
    weights = gru_weights(*arrays, negate_update=True)
    for linear in peer.auxiliary_net.linears:
        weights += [
            linear.weight.detach().numpy().T.copy(),
            linear.bias.detach().numpy(),
        ]
    layer = InterestExtractor(auxiliary_loss_weight=1.0)
    layer.build(keys.shape)
    layer.set_weights(weights)
    ours = to_numpy(layer([keys, DIEN_LENGTHS], negative_keys=negatives, training=True))
    # The peer returns the non-empty histories only.
    non_empty = DIEN_LENGTHS > 0
    np.testing.assert_allclose(ours[non_empty], states.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_numpy(layer.losses[0]), loss.item(), rtol=1e-4)
