"""A categorical input of a `keras_din.models` model."""

import dataclasses

from keras_din.models._specs import check_name
from keras_din.models._specs import check_positive_int


@dataclasses.dataclass(frozen=True)
class Feature:
    """A categorical feature: integer ids, each embedded in its own table.

    A feature that a `BehaviorSequence` refers to is a candidate feature:
    the model takes one id per candidate (shape `(B, C)`, or `(B,)` with one
    candidate), and the history inputs that refer to it share its embedding
    table. Every other feature is context (the user's profile, the time of
    day): one id per row, shape `(B,)`, embedded and fed to the MLP with the
    candidate and the pooled histories.

    Id 0 is the padding of the histories, so a candidate feature's ids
    start at 1 (a context feature may use 0 as a value).

    Args:
        name: str. The key of the feature's array in the model's input dict
            (and the name of its `keras.Input` and of its table in
            `FeatureEmbedding`, `"<name>_embedding"`).
        vocabulary_size: int. The number of ids: the largest id plus one.
        embedding_dim: int. The width of the feature's embeddings.
            Defaults to `8`.

    Examples:

        >>> Feature("item", vocabulary_size=1000, embedding_dim=16)
        Feature(name='item', vocabulary_size=1000, embedding_dim=16)
    """

    name: str
    vocabulary_size: int
    embedding_dim: int = 8

    def __post_init__(self):
        check_name("name", self.name, owner="Feature")
        owner = f"Feature {self.name!r}"
        for argument in ("vocabulary_size", "embedding_dim"):
            value = check_positive_int(argument, getattr(self, argument), owner=owner)
            object.__setattr__(self, argument, value)
