"""Runs DeepCTR's (TensorFlow) DIN layers on given inputs and weights.

Usage: python deepctr_tf_outputs.py IN.npz OUT.npz

Run in its own process with TF_USE_LEGACY_KERAS=1, since DeepCTR is written
for tf.keras 2. IN.npz holds `query`, `keys`, `keys_length`, `hidden_units`
and the weights `w0, w1, ...` in DeepCTR's order; OUT.npz gets the unit's
scores (`unit`) and the pooling layer's output for every mode
(`pool_<weight_normalization>_<return_score>`).
"""

import sys

import numpy as np
from deepctr.layers.core import LocalActivationUnit
from deepctr.layers.sequence import AttentionSequencePoolingLayer

data = np.load(sys.argv[1])
hidden_units = tuple(int(u) for u in data["hidden_units"])
weights = [data[f"w{i}"] for i in range(2 * len(hidden_units) + 2)]
query, keys, keys_length = data["query"], data["keys"], data["keys_length"]

outputs = {}
unit = LocalActivationUnit(hidden_units=hidden_units)
unit([query, keys])
unit.set_weights(weights)
outputs["unit"] = unit([query, keys], training=False).numpy()
for weight_normalization in (False, True):
    for return_score in (False, True):
        layer = AttentionSequencePoolingLayer(
            att_hidden_units=hidden_units,
            weight_normalization=weight_normalization,
            return_score=return_score,
        )
        layer([query, keys, keys_length])
        layer.set_weights(weights)
        out = layer([query, keys, keys_length], training=False).numpy()
        outputs[f"pool_{int(weight_normalization)}_{int(return_score)}"] = out
np.savez(sys.argv[2], **outputs)
