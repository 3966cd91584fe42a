"""The inputs of a model on feature specs: their checks, names and shapes."""

from keras_din.models.behavior_sequence import BehaviorSequence
from keras_din.models.feature import Feature


class SpecInputs:
    """The id and length inputs that `features` and `behaviors` describe.

    Checks the specs: lists of distinct names, each history referring to a
    feature of `features`, no input name used twice.

    Attributes:
        features: dict of `Feature`, by name, in the given order.
        behaviors: list of `BehaviorSequence`.
        candidate_names: set of the features the sequences refer to.
        table_of: dict: the feature whose table embeds each id input, in
            the order of `shapes`.
        sequence_of: dict: the sequence of each history and negative input.
    """

    def __init__(self, features, behaviors, negatives):
        self.features = _by_name(_check_specs("features", features, Feature))
        self.behaviors = _check_specs("behaviors", behaviors, BehaviorSequence)
        names = [behavior.name for behavior in self.behaviors]
        if len(set(names)) != len(names):
            raise ValueError(
                f"Behavior sequences must have distinct names. Received: {names}"
            )
        for behavior in self.behaviors:
            for history, feature in behavior.features.items():
                if feature not in self.features:
                    raise ValueError(
                        f"History input {history!r} of behavior sequence "
                        f"{behavior.name!r} shares the table of feature "
                        f"{feature!r}, which is not in `features`: "
                        f"{list(self.features)}"
                    )
        self.candidate_names = {
            feature for b in self.behaviors for feature in b.features.values()
        }
        self.table_of = {}
        self.sequence_of = {}
        self._shapes = {}
        for name in self.features:
            self._add(name, (), name)  # a candidate feature's: see `shapes`
        for behavior in self.behaviors:
            inputs = dict(behavior.features)
            if negatives and behavior.negatives is not None:
                inputs.update(
                    (negative, behavior.features[history])
                    for history, negative in behavior.negatives.items()
                )
            for name, feature in inputs.items():
                self._add(name, (behavior.max_length,), feature)
                self.sequence_of[name] = behavior
            if behavior.length is not None:
                self._add(behavior.length, (), None)

    def _add(self, name, shape, feature):
        if name in self._shapes:
            raise ValueError(
                f"Input names must be unique: {name!r} names two of the "
                "features, history inputs, length inputs and negative inputs."
            )
        self._shapes[name] = shape
        if feature is not None:
            self.table_of[name] = feature

    def shapes(self, candidates):
        """`{input name: shape without the batch axis}`, a candidate
        feature's `(candidates,)`."""
        return {
            name: (candidates,) if name in self.candidate_names else shape
            for name, shape in self._shapes.items()
        }

    def sharing(self, feature):
        """The id inputs that `feature`'s table embeds."""
        return [name for name, table in self.table_of.items() if table == feature]


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
