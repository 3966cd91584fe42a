"""The embeddings of the id inputs of a model on feature specs."""

import dataclasses
import functools

import keras
from keras import ops

from keras_din.layers._checks import check_non_negative
from keras_din.layers.mini_batch_aware_embedding import MiniBatchAwareEmbedding
from keras_din.models._inputs import SpecInputs
from keras_din.models.behavior_sequence import BehaviorSequence
from keras_din.models.feature import Feature


@keras.saving.register_keras_serializable(package="keras_din")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds every id input of a model on `Feature` and `BehaviorSequence` specs.

    Each `Feature` has a table, a `MiniBatchAwareEmbedding` named
    `"<feature>_embedding"`, that embeds the feature's input and every
    history input that refers to it in one call: the mini-batch aware
    penalty then counts an id once per batch and table, as in the paper,
    however many inputs hold it. A position of a behaviour sequence is valid
    where none of its histories holds id 0 and it lies before the sequence's
    length (where it has a `length` input); the layer embeds id 0 at every
    other position, so the padding reaches neither the penalties nor the
    layers after it, and returns the mask of the valid positions.

    Args:
        features: list of `keras_din.models.Feature`.
        behaviors: list of `keras_din.models.BehaviorSequence`.
        embedding_l2: float `>= 0`. The mini-batch aware regularization
            strength of every table. Defaults to `0.0` (none).
        frequencies: Optional dict of arrays keyed by feature name: how
            often each id of the feature occurs in the training data (see
            `MiniBatchAwareEmbedding`), kept in its table's weights. The
            builders' `frequencies` counts them. Defaults to `None` (all
            1).
        negatives: bool. Whether the sequences' negative inputs are inputs
            of the layer (DIEN's auxiliary loss). Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: dict of integer tensors keyed by input name, one for each
            name of `input_shapes()`; other keys are ignored.
        training: Python boolean. The penalties are added in training only.

    Output:
        A dict. `"features"`: each feature's embeddings by name, of shape
        `(B, C, E_f)` for a feature the sequences refer to (a candidate
        feature) and `(B, E_f)` for context. `"behaviors"`: for each
        sequence by name, a dict of its `"query"`, the candidate's
        embeddings `(B, C, E)`, its `"keys"` `(B, T, E)` (each the features'
        embeddings concatenated in the order of the sequence's `features`),
        its `"mask"`, the `(B, T)` valid positions, and, with `negatives`,
        its `"negative_keys"` `(B, T, E)`.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import BehaviorSequence, Feature
        >>> embedding = FeatureEmbedding(
        ...     [Feature("item", 100, 4), Feature("category", 10, 2)],
        ...     [BehaviorSequence(
        ...         "history", {"items": "item", "categories": "category"},
        ...         max_length=3)])
        >>> embedding.input_shapes(candidates=1)
        {'item': (1,), 'category': (1,), 'items': (3,), 'categories': (3,)}
        >>> outputs = embedding({
        ...     "item": np.array([[7]]), "category": np.array([[2]]),
        ...     "items": np.array([[5, 6, 0]]), "categories": np.array([[1, 2, 0]])})
        >>> history = outputs["behaviors"]["history"]
        >>> tuple(history["query"].shape), tuple(history["keys"].shape)
        ((1, 1, 6), (1, 3, 6))
        >>> keras.ops.convert_to_numpy(history["mask"])
        array([[ True,  True, False]])
    """

    def __init__(
        self,
        features,
        behaviors,
        embedding_l2=0.0,
        frequencies=None,
        negatives=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.specs = SpecInputs(features, behaviors, negatives)
        self.features = list(self.specs.features.values())
        self.behaviors = self.specs.behaviors
        self.embedding_l2 = check_non_negative("embedding_l2", embedding_l2)
        self.negatives = bool(negatives)
        counts = dict(frequencies or {})
        unknown = [name for name in counts if name not in self.specs.features]
        if unknown:
            raise ValueError(
                "`frequencies` must be keyed by feature name: "
                f"{list(self.specs.features)}. Received: keys {list(counts)}"
            )
        self.tables = {
            feature.name: MiniBatchAwareEmbedding(
                feature.vocabulary_size,
                feature.embedding_dim,
                frequencies=counts.get(feature.name),
                l2=self.embedding_l2,
                # Id 0 pads the histories that share the table.
                mask_zero=feature.name in self.specs.candidate_names,
                dtype=self.dtype_policy,
                name=f"{feature.name}_embedding",
            )
            for feature in self.features
        }

    def input_shapes(self, candidates=1):
        """`{input name: shape}` (without the batch axis) of every input.

        Args:
            candidates: int, or `None`: the number of candidates per row, the
                shape of a candidate feature's input, `(candidates,)`.
        """
        return self.specs.shapes(candidates)

    def build(self, input_shape=None):
        for table in self.tables.values():
            table.build()

    def _validate_inputs(self, inputs):
        expected = self.specs.shapes(None)
        missing = [name for name in expected if name not in inputs]
        if missing:
            raise ValueError(
                "`inputs` must hold a tensor for every input of the layer: "
                f"{list(expected)}. Missing: {missing}"
            )
        for name, behavior in self.specs.sequence_of.items():
            length = tuple(inputs[name].shape)[1:]
            if length[:1] not in ((behavior.max_length,), (None,)) or len(length) != 1:
                raise ValueError(
                    f"Input {name!r} of behavior sequence {behavior.name!r} must "
                    f"have shape (batch, max_length) = (batch, {behavior.max_length})."
                    f" Received: shape {tuple(inputs[name].shape)}"
                )

    def call(self, inputs, training=None):
        self._validate_inputs(inputs)
        masks = {b.name: _valid(b, inputs) for b in self.behaviors}
        embedded = {}
        for feature, table in self.tables.items():
            names = self.specs.sharing(feature)
            ids = [self._ids(name, inputs, masks) for name in names]
            # The table's `call`, not `__call__`: the table needs nothing of
            # it, and a layer call costs more than the lookups on torch.
            outputs = table.call(ids, training=training)
            embedded.update(zip(names, outputs, strict=True))
        behaviors = {}
        for behavior in self.behaviors:
            outputs = {
                "query": _concatenated(embedded, behavior.features.values()),
                "keys": _concatenated(embedded, behavior.features),
                "mask": masks[behavior.name],
            }
            if self.negatives and behavior.negatives is not None:
                outputs["negative_keys"] = _concatenated(
                    embedded, (behavior.negatives[h] for h in behavior.features)
                )
            behaviors[behavior.name] = outputs
        features = {name: embedded[name] for name in self.specs.features}
        return {"features": features, "behaviors": behaviors}

    def _ids(self, name, inputs, masks):
        """The ids of input `name`, 0 at its sequence's padding."""
        ids = inputs[name]
        behavior = self.specs.sequence_of.get(name)
        return ids if behavior is None else ops.where(masks[behavior.name], ids, 0)

    def compute_output_spec(self, inputs, training=None):
        self._validate_inputs(inputs)

        def embedded(names):
            shape = tuple(inputs[next(iter(names))].shape)
            width = sum(
                self.specs.features[self.specs.table_of[n]].embedding_dim for n in names
            )
            return keras.KerasTensor((*shape, width), dtype=self.compute_dtype)

        behaviors = {}
        for behavior in self.behaviors:
            history = inputs[next(iter(behavior.features))]
            behaviors[behavior.name] = {
                "query": embedded(list(behavior.features.values())),
                "keys": embedded(list(behavior.features)),
                "mask": keras.KerasTensor(history.shape, dtype="bool"),
            }
            if self.negatives and behavior.negatives is not None:
                behaviors[behavior.name]["negative_keys"] = embedded(
                    [behavior.negatives[h] for h in behavior.features]
                )
        features = {name: embedded([name]) for name in self.specs.features}
        return {"features": features, "behaviors": behaviors}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "features": [dataclasses.asdict(f) for f in self.features],
                "behaviors": [dataclasses.asdict(b) for b in self.behaviors],
                "embedding_l2": self.embedding_l2,
                "negatives": self.negatives,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["features"] = [Feature(**f) for f in config["features"]]
        config["behaviors"] = [BehaviorSequence(**b) for b in config["behaviors"]]
        return cls(**config)


def _valid(behavior, inputs):
    """The `(B, T)` valid positions of `behavior`: no id 0 in any of its
    histories, and below its length (if it has one)."""
    valid = [ops.not_equal(inputs[history], 0) for history in behavior.features]
    if behavior.length is not None:
        length = ops.reshape(inputs[behavior.length], (-1, 1))
        valid.append(ops.less(ops.arange(behavior.max_length), length))
    return functools.reduce(ops.logical_and, valid)


def _concatenated(embedded, names):
    parts = [embedded[name] for name in names]
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
