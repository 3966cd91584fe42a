"""Each table's id frequencies, counted over training arrays."""

import keras
import numpy as np

from keras_din.models._feature_arrays import check_feature_arrays


def count_frequencies(frequencies, spec_inputs, candidates):
    """`{feature name: id counts}` over `frequencies`, a dict of arrays
    keyed by input name, or a `keras.utils.PyDataset` of such dicts (or of
    `(dict, labels)` pairs), one batch in memory at a time.

    A feature's ids count in its own input and in the histories that share
    its table, not in the negative inputs (items the user did not take), and
    not at a history's padding (as the model embeds id 0 there).
    """
    if isinstance(frequencies, keras.utils.PyDataset):
        batches = (frequencies[index] for index in range(len(frequencies)))
        parts = (b[0] if isinstance(b, (tuple, list)) else b for b in batches)
    else:
        parts = [frequencies]
    negatives = {n for b in spec_inputs.behaviors for n in (b.negatives or {}).values()}
    counted = {
        feature: [n for n in spec_inputs.sharing(feature) if n not in negatives]
        for feature in spec_inputs.features
    }
    sizes = {
        name: spec_inputs.features[feature].vocabulary_size
        for feature, names in counted.items()
        for name in names
    }
    inputs = {
        name: keras.KerasTensor((None, *shape), dtype="int32")
        for name, shape in spec_inputs.shapes(candidates).items()
    }
    counts = {
        name: np.zeros(feature.vocabulary_size, np.int64)
        for name, feature in spec_inputs.features.items()
    }
    for part in parts:
        if not isinstance(part, dict):
            raise TypeError(
                "`frequencies` must be a dict of arrays keyed by input name (the "
                "training inputs), or a keras.utils.PyDataset of such dicts. "
                f"Received: a {type(part).__name__}"
            )
        check_feature_arrays(part, inputs, sizes, "frequencies", every_input=False)
        for feature, names in counted.items():
            for name in names:
                ids = _counted_ids(part, name, spec_inputs.sequence_of.get(name))
                counts[feature] += np.bincount(
                    ids.ravel(), minlength=counts[feature].size
                )
    return counts


def _counted_ids(frequencies, name, behavior):
    """The ids of `frequencies[name]`, 0 at the padding of `behavior` (as
    far as the arrays of `frequencies` tell it)."""
    ids = np.asarray(frequencies[name])
    if behavior is None:
        return ids
    valid = np.ones(ids.shape, bool)
    for history in behavior.features:
        if history in frequencies:
            valid &= np.asarray(frequencies[history]) != 0
    if behavior.length is not None and behavior.length in frequencies:
        length = np.reshape(frequencies[behavior.length], (-1, 1))
        valid &= np.arange(behavior.max_length) < length
    return np.where(valid, ids, 0)
