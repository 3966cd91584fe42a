"""FuxiCTR's SIM (soft search) and ETA give `SearchBasedInterest`'s outputs,
given the same weights and hash projection.

FuxiCTR 2.3.10 is installed in the `torch` tox environment, which names it
in `KERAS_DIN_PEER`: there a missing FuxiCTR is a failure, not a skip. Its
own `SIM.forward` and `ETA.forward` run, on stand-ins for what lies around
the search: the
embedding layer returns the test's embeddings, the short-sequence attention
zeros, and both MLPs their input, so that their outputs are the long-term
interest and the auxiliary model's `sum_t r_t e_t`. FuxiCTR's
`MultiHeadTargetAttention` is the exact search unit, and keras-din's
recency embeddings are set to 0 (FuxiCTR has none).

Where keras-din departs from FuxiCTR, by design (tested below): FuxiCTR's
SIM ranks the padding with relevance 0, so where the valid relevances are
negative it keeps padding in place of behaviours; an empty history gets
FuxiCTR's attention's mean over the padding, keras-din's 0; FuxiCTR leaves
ties to torch's `topk` (no rule), keras-din keeps the most recent (so ETA
is compared where no tie straddles the `top_k`-th distance).
"""

import importlib.util
import os
import sys
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from layer_checks import to_numpy

from keras_din import SearchBasedInterest

PEER = os.environ.get("KERAS_DIN_PEER") or ""
pytestmark = pytest.mark.skipif(
    "fuxictr" not in PEER.split(","),
    reason="FuxiCTR is installed only in the tox environment that names it in "
    f"KERAS_DIN_PEER (this one has {PEER!r})",
)
B, T, E, D, HEADS, K = 5, 12, 6, 8, 2, 4


def fuxictr_model(name):
    """FuxiCTR's model class `name` (`"SIM"`, `"ETA"`) and its
    `MultiHeadTargetAttention`.

    FuxiCTR's package `__init__`s import its data pipeline (polars, pandas
    and more, not installed): the layer packages are entered bare (their
    folders, without their `__init__`), and the model's module is run with
    stand-ins for the base model and the pandas helper it imports.
    """
    root = Path(importlib.util.find_spec("fuxictr").submodule_search_locations[0])
    for package in ("pytorch.layers", "pytorch.layers.blocks"):
        module_name = f"fuxictr.{package}"
        if module_name not in sys.modules:
            module = types.ModuleType(module_name)
            module.__path__ = [str(root.joinpath(*package.split(".")))]
            sys.modules[module_name] = module
    import torch
    from fuxictr.pytorch.layers.attentions.target_attention import (
        MultiHeadTargetAttention,
    )

    layers = types.ModuleType("fuxictr.pytorch.layers")
    layers.MultiHeadTargetAttention = MultiHeadTargetAttention
    layers.FeatureEmbedding = layers.MLP_Block = None
    stand_ins = {
        "fuxictr.pytorch.layers": layers,
        "fuxictr.pytorch.models": types.SimpleNamespace(BaseModel=torch.nn.Module),
        "fuxictr.utils": types.SimpleNamespace(not_in_whitelist=None),
        "pandas": types.ModuleType("pandas"),
        "pandas.core": types.ModuleType("pandas.core"),
        "pandas.core.common": types.SimpleNamespace(flatten=None),
    }
    zoo = Path(importlib.util.find_spec("model_zoo").submodule_search_locations[0])
    namespace = {}
    with mock.patch.dict(sys.modules, stand_ins):
        source = (zoo / "LongCTR" / name / f"{name}.py").read_text()
        exec(compile(source, f"{name}.py", "exec"), namespace)
    return namespace[name], MultiHeadTargetAttention


def fuxictr_modules(name="SIM", hash_bits=16):
    """FuxiCTR's `<name>.forward`, and the modules it runs on, seeded."""
    import torch

    model, attention = fuxictr_model(name)
    torch.manual_seed(0)
    modules = types.SimpleNamespace(
        get_inputs=lambda inputs: inputs,
        embedding_layer=lambda items, flatten_emb: items["embeddings"],
        item_info_dim=E,
        short_seq_len=T,
        topk=K,
        short_attention=lambda target, sequence, mask: torch.zeros_like(target),
        W_a=torch.nn.Linear(E, D, bias=False),
        W_b=torch.nn.Linear(E, D, bias=False),
        long_attention=attention(E, D, HEADS, 0),
        dnn_aux=lambda x: x,
        dnn=lambda x: x,
        # ETA's: one fixed projection for every row.
        random_rotations=torch.randn(1, E, hash_bits),
        reuse_hash=True,
        hash_bits=hash_bits,
    )
    if name == "ETA":
        modules.topk_retrieval = types.MethodType(model.topk_retrieval, modules)
        modules.lsh_hash = types.MethodType(model.lsh_hash, modules)
    return model.forward, modules


def kernel(linear):
    return linear.weight.detach().numpy().T


def both_outputs(query, keys, valid, forward, modules):
    """`(keras-din's, FuxiCTR's)` `(interest, u)`, for one candidate."""
    import torch

    embeddings = np.concatenate([keys, query], axis=1).reshape(B, -1)
    with torch.no_grad():
        result = forward(
            modules,
            (
                {},
                {"embeddings": torch.tensor(embeddings)},
                torch.tensor(valid.astype("float32")),
            ),
        )
    eta = "y_aux" not in result
    theirs = [result["y_pred"][:, 2 * E :].numpy()]
    if not eta:
        theirs.append(result["y_aux"][:, E:].numpy())
    search = dict(search="simhash", hash_bits=modules.hash_bits) if eta else {}
    layer = SearchBasedInterest(top_k=K, num_heads=HEADS, key_dim=D // HEADS, **search)
    layer([query, keys], mask=valid)
    attention = modules.long_attention
    kernels = {
        "query_kernel": kernel(attention.W_q),
        "key_kernel": kernel(attention.W_k),
        "value_kernel": kernel(attention.W_v),
        "output_kernel": kernel(attention.W_o),
        "search_query_kernel": kernel(modules.W_a),
        "search_key_kernel": kernel(modules.W_b),
        "recency_embeddings": np.zeros((16, E)),  # FuxiCTR has none
        "hash_projection": modules.random_rotations[0].numpy(),
    }
    layer.set_weights([kernels[w.name] for w in layer.weights])
    ours = layer([query, keys], mask=valid)
    ours = [to_numpy(x)[:, 0] for x in (ours if isinstance(ours, list) else [ours])]
    return ours, theirs


def test_full_histories_match_fuxictr(rng):
    query = rng.normal(size=(B, 1, E)).astype("float32")
    keys = rng.normal(size=(B, T, E)).astype("float32")
    ours, theirs = both_outputs(query, keys, np.ones((B, T), bool), *fuxictr_modules())
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_padding_and_empty_histories_differ_by_design(rng):
    forward, modules = fuxictr_modules()
    query = rng.normal(size=(B, 1, E)).astype("float32")
    keys = rng.normal(size=(B, T, E)).astype("float32")
    valid = np.ones((B, T), bool)
    valid[1, 8:] = False  # 8 valid behaviours, more than K
    valid[2] = False  # an empty history
    # Row 1: every valid relevance negative (it is linear in the behaviour).
    relevance = keys[1] @ kernel(modules.W_b) @ (query[1, 0] @ kernel(modules.W_a))
    keys[1] *= -np.sign(relevance)[:, None]
    ours, theirs = both_outputs(query, keys, valid, forward, modules)
    (interest, u), (their_interest, their_u) = ours, theirs
    np.testing.assert_allclose(u, their_u, rtol=1e-4, atol=1e-5)  # padding: 0
    for row in (0, 3, 4):
        np.testing.assert_allclose(
            interest[row], their_interest[row], rtol=1e-4, atol=1e-5
        )
    # FuxiCTR kept the 4 padding positions of row 1 (relevance 0), and
    # averages padding in rows 1 and 2; keras-din kept 4 behaviours of row 1
    # and gives the empty row 0.
    assert not np.allclose(interest[1], their_interest[1], atol=1e-3)
    padding_mean = keys[1, 8:] @ kernel(modules.long_attention.W_v)
    padding_mean = padding_mean.mean(0) @ kernel(modules.long_attention.W_o)
    np.testing.assert_allclose(their_interest[1], padding_mean, rtol=1e-4, atol=1e-5)
    assert np.all(interest[2] == 0) and np.abs(their_interest[2]).sum() > 0


def test_eta_matches_fuxictr_without_ties_at_the_boundary(rng):
    forward, modules = fuxictr_modules("ETA")
    projection = modules.random_rotations[0].numpy()
    query = rng.normal(size=(B, 1, E)).astype("float32")
    valid = np.ones((B, T), bool)
    valid[1, 3:] = False  # fewer valid behaviours than K
    valid[3, ::2] = False  # holes
    # Histories whose K-th nearest signature is strictly nearer than the
    # next: which of tied behaviours FuxiCTR keeps is torch's choice.
    keys = np.empty((B, T, E), "float32")
    for row in range(B):
        while True:
            keys[row] = rng.normal(size=(T, E))
            bits = (keys[row] @ projection > 0) != (query[row, 0] @ projection > 0)
            distances = np.sort(bits.sum(-1)[valid[row]])
            if len(distances) <= K or distances[K - 1] < distances[K]:
                break
    valid[2] = True
    (interest,), (theirs,) = both_outputs(query, keys, valid, forward, modules)
    np.testing.assert_allclose(interest, theirs, rtol=1e-4, atol=1e-5)
