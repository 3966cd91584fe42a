"""What the model builders share: the inputs, the tables and the MLP head."""

import functools

import keras
import numpy as np
from keras import ops

from keras_din.layers._activations import activation_factory
from keras_din.layers._checks import check_non_negative
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_rate
from keras_din.layers.mini_batch_aware_embedding import MiniBatchAwareEmbedding
from keras_din.layers.mlp import MLP
from keras_din.models._candidate_scores import CandidateScores
from keras_din.models._specs import check_positive_int
from keras_din.models.behavior_sequence import BehaviorSequence
from keras_din.models.feature import Feature
from keras_din.models.feature_model import FeatureModel
from keras_din.models.feature_model import check_feature_arrays


class FeatureGraph:
    """The inputs and embeddings of a model on `features` and `behaviors`.

    Checks the specs, makes one `keras.Input` per input name and one
    `MiniBatchAwareEmbedding` per `Feature`, and embeds inputs on demand.

    Args:
        features: list of `Feature`.
        behaviors: list of `BehaviorSequence`.
        candidates: int, or `None` for any number of candidates per row.
        embedding_l2: float. The mini-batch aware regularization strength.
        frequencies: Optional dict of arrays keyed by input name, or a
            `keras.utils.PyDataset` of such dicts (or of `(dict, labels)`
            pairs), over which each table's id frequencies are counted.
        negatives: bool. Whether the behaviours' negative inputs are inputs
            of the model.
    """

    def __init__(
        self, features, behaviors, candidates, embedding_l2, frequencies, negatives
    ):
        self.features = _by_name(_check_specs("features", features, Feature))
        self.behaviors = _check_specs("behaviors", behaviors, BehaviorSequence)
        if candidates is not None:
            candidates = check_positive_int("candidates", candidates)
        self.candidates = candidates
        self.negatives = negatives
        embedding_l2 = check_non_negative("embedding_l2", embedding_l2)
        names = [behavior.name for behavior in self.behaviors]
        if len(set(names)) != len(names):
            raise ValueError(
                f"Behavior sequences must have distinct names. Received: {names}"
            )
        self.candidate_names = self._candidate_names()
        self.table_of = {}  # the feature whose table embeds each input
        self.sequence_of = {}  # the behaviour of each history and negative input
        self.inputs = {
            name: keras.Input(shape, dtype="int32", name=name)
            for name, shape in self._input_shapes().items()
        }
        self.vocabulary_sizes = {
            name: self.features[feature].vocabulary_size
            for name, feature in self.table_of.items()
        }
        counts = {}
        if frequencies is not None:
            counts = self._frequency_counts(frequencies)
        self.tables = {
            name: self._table(feature, embedding_l2, counts.get(name))
            for name, feature in self.features.items()
        }
        self._embedded = {}
        self._valid = {}  # the valid positions of each behaviour, by name

    def _candidate_names(self):
        """The features that the behaviour sequences refer to."""
        for behavior in self.behaviors:
            for history, feature in behavior.features.items():
                if feature not in self.features:
                    raise ValueError(
                        f"History input {history!r} of behavior sequence "
                        f"{behavior.name!r} shares the table of feature "
                        f"{feature!r}, which is not in `features`: "
                        f"{list(self.features)}"
                    )
        return {f for b in self.behaviors for f in b.features.values()}

    def _input_shapes(self):
        """`{input name: shape}` of every input; fills `self.table_of`."""
        shapes = {}
        for name in self.features:
            shape = (self.candidates,) if name in self.candidate_names else ()
            self._add_input(shapes, name, shape, name)
        for behavior in self.behaviors:
            inputs = dict(behavior.features)
            if self.negatives and behavior.negatives is not None:
                inputs.update(
                    (negative, behavior.features[history])
                    for history, negative in behavior.negatives.items()
                )
            for name, feature in inputs.items():
                self._add_input(shapes, name, (behavior.max_length,), feature)
                self.sequence_of[name] = behavior
            if behavior.length is not None:
                self._add_input(shapes, behavior.length, (), None)
        return shapes

    def _add_input(self, shapes, name, shape, feature):
        if name in shapes:
            raise ValueError(
                f"Input names must be unique: {name!r} names two of the "
                "features, history inputs, length inputs and negative inputs."
            )
        shapes[name] = shape
        if feature is not None:
            self.table_of[name] = feature

    def _counted(self, feature):
        """The inputs whose ids count as occurrences of `feature`'s ids."""
        negative_inputs = {
            name for b in self.behaviors for name in (b.negatives or {}).values()
        }
        return [
            name
            for name, table in self.table_of.items()
            if table == feature and name not in negative_inputs
        ]

    def _frequency_counts(self, frequencies):
        """`{feature name: id counts}` over a dict of arrays, or over the
        batches of a `keras.utils.PyDataset` (one batch in memory at a time)."""
        if isinstance(frequencies, keras.utils.PyDataset):
            batches = (frequencies[index] for index in range(len(frequencies)))
            parts = (b[0] if isinstance(b, (tuple, list)) else b for b in batches)
        else:
            parts = [frequencies]
        counts = {
            name: np.zeros(feature.vocabulary_size, np.int64)
            for name, feature in self.features.items()
        }
        for part in parts:
            self._check_frequencies(part)
            for name in self.features:
                for counted in self._counted(name):
                    ids = self._counted_ids(part, counted).ravel()
                    counts[name] += np.bincount(ids, minlength=counts[name].size)
        return counts

    def _check_frequencies(self, frequencies):
        if not isinstance(frequencies, dict):
            raise TypeError(
                "`frequencies` must be a dict of arrays keyed by input name (the "
                "training inputs), or a keras.utils.PyDataset of such dicts. "
                f"Received: a {type(frequencies).__name__}"
            )
        counted = {
            name: self.vocabulary_sizes[name]
            for feature in self.features
            for name in self._counted(feature)
        }
        check_feature_arrays(
            frequencies, self.inputs, counted, "frequencies", every_input=False
        )

    def _table(self, feature, embedding_l2, counts):
        return MiniBatchAwareEmbedding(
            feature.vocabulary_size,
            feature.embedding_dim,
            frequencies=counts,
            l2=embedding_l2,
            # Id 0 pads the histories that share the table.
            mask_zero=feature.name in self.candidate_names,
            name=f"{feature.name}_embedding",
        )

    def _counted_ids(self, frequencies, name):
        """The ids of `frequencies[name]`, 0 at the padding as in `_ids`
        (where `frequencies` holds the inputs that tell it)."""
        ids = np.asarray(frequencies[name])
        behavior = self.sequence_of.get(name)
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

    def embed(self, names):
        """The embeddings of the inputs `names`, concatenated on the last
        axis (one input's carries its table's Keras mask of id 0; a
        concatenation none: `valid` gives a behaviour's)."""
        parts = []
        for name in names:
            if name not in self._embedded:
                # Every input of the table in one call: the mini-batch aware
                # penalty then counts an id once per batch, as the paper's
                # (per table), however many inputs hold it.
                feature = self.table_of[name]
                shared = [n for n, f in self.table_of.items() if f == feature]
                outputs = self.tables[feature]([self._ids(n) for n in shared])
                self._embedded.update(zip(shared, outputs, strict=True))
            parts.append(self._embedded[name])
        # An op, not a `Concatenate` layer: a layer call costs more than the
        # concatenation itself on an eager backend.
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _ids(self, name):
        """The ids of input `name`; in a behaviour's inputs, 0 wherever the
        position is padding (an id 0 in one of its histories, or from its
        length on): the tables' masks and penalties never see what lies
        there."""
        ids = self.inputs[name]
        if name not in self.sequence_of:
            return ids
        return ops.where(self.valid(self.sequence_of[name]), ids, 0)

    def valid(self, behavior):
        """The `(B, T)` mask of `behavior`'s valid positions: no id 0 in any
        of its histories, and below its length (if it has one)."""
        if behavior.name not in self._valid:
            valid = [ops.not_equal(self.inputs[h], 0) for h in behavior.features]
            if behavior.length is not None:
                length = ops.reshape(self.inputs[behavior.length], (-1, 1))
                valid.append(ops.less(ops.arange(behavior.max_length), length))
            self._valid[behavior.name] = functools.reduce(ops.logical_and, valid)
        return self._valid[behavior.name]

    def query(self, behavior):
        """The `(B, C, E)` candidate embeddings that `behavior` is scored against."""
        return self.embed(behavior.features.values())

    def keys(self, behavior):
        """The `(B, T, E)` history embeddings of `behavior` (see `valid`)."""
        return self.embed(behavior.features)

    def negative_keys(self, behavior):
        """The `(B, T, E)` negative history embeddings, or `None`."""
        if not self.negatives or behavior.negatives is None:
            return None
        return self.embed(behavior.negatives[name] for name in behavior.features)

    def keys_inputs(self, behavior):
        """`[keys]`, or `[keys, length]` where `behavior` has a length input."""
        keys = self.keys(behavior)
        if behavior.length is None:
            return [keys]
        return [keys, self.inputs[behavior.length]]

    def model(self, interests, dnn_hidden_units, dnn_activation, dnn_dropout, name):
        """The `FeatureModel` that feeds the context, the candidates and the
        `(B, C, D)` `interests` to an MLP and outputs `(B, C)` probabilities."""
        parts = [self.embed([feature]) for feature in self.features]
        # Context: (B, E) -> (B, 1, E).
        parts = [ops.expand_dims(p, 1) if len(p.shape) == 2 else p for p in parts]
        parts += list(interests)
        if self.candidates != 1:
            # The context and the sum pooling, (B, 1, .), for every candidate:
            # adding (B, C, 1) zeros broadcasts them to a number of
            # candidates that, with `candidates=None`, is known only at call.
            candidate = next(part for part in parts if part.shape[1] != 1)
            zeros = ops.zeros_like(candidate[..., :1])
            parts = [part + zeros if part.shape[1] == 1 else part for part in parts]
        # keras.ops carry no Keras mask: the candidates' (id 0) ends here.
        hidden = ops.concatenate(parts, axis=-1)
        hidden = ops.reshape(hidden, (-1, hidden.shape[-1]))  # (B * C, D)
        activation_factory(dnn_activation, "dnn_activation")  # checks
        hidden = MLP(
            check_positive_units("dnn_hidden_units", dnn_hidden_units),
            activation=dnn_activation,
            dropout_rate=check_rate("dnn_dropout", dnn_dropout),
            name="dnn",
        )(hidden)
        # In float32 under a mixed precision policy too, as Keras advises for
        # the output layer.
        click = keras.layers.Dense(
            1, activation="sigmoid", dtype="float32", name="click"
        )(hidden)
        return FeatureModel(
            self.inputs,
            # Kept in float32, as `click`.
            CandidateScores(dtype="float32", name="scores")(
                [click, self.inputs[min(self.candidate_names)]]
            ),
            name=name,
            vocabulary_sizes=self.vocabulary_sizes,
        )


def _by_name(features):
    by_name = {}
    for feature in features:
        if feature.name in by_name:
            names = [f.name for f in features]
            raise ValueError(
                f"Two features are named {feature.name!r}: `features` must have "
                f"distinct names. Received: names {names}"
            )
        by_name[feature.name] = feature
    return by_name


def _check_specs(argument, specs, kind):
    if isinstance(specs, kind):
        specs = [specs]
    if not isinstance(specs, (list, tuple)) or not all(
        isinstance(spec, kind) for spec in specs
    ):
        raise TypeError(
            f"`{argument}` must be a list of keras_din.models.{kind.__name__}. "
            f"Received: {argument}={specs!r:.200}"
        )
    if not specs:
        needed = (
            "the candidate features that the behavior sequences refer to, and "
            "any context features"
            if kind is Feature
            else "a user history for the model to pool"
        )
        raise ValueError(
            f"`{argument}` must hold at least one {kind.__name__} ({needed}). "
            f"Received: {argument}={specs!r}"
        )
    return list(specs)
