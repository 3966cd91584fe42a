"""A behaviour sequence of a `keras_din.models` model."""

import dataclasses

from keras_din.models._specs import check_name
from keras_din.models._specs import check_name_map
from keras_din.models._specs import check_positive_int


@dataclasses.dataclass(frozen=True)
class BehaviorSequence:
    """A user's behaviour history: one or more id inputs per position.

    Each position of the history is described by one id per input in
    `features` (the item id, its category id, ...), and each of those inputs
    shares the embedding table of a candidate `Feature`: the history of
    items the item table, the history of categories the category table. The
    embeddings of a position, concatenated in the order of `features`, are
    the keys that the model pools against the concatenated embeddings of the
    same candidate features (the query). A model pools each behaviour
    sequence on its own (short- and long-term, clicks and purchases).

    Id 0 marks an empty position (padding, anywhere in the row). A `length`
    input can mark the valid positions too: then a position is valid when it
    lies before the length and its ids are not 0.

    Args:
        name: str. Names the sequence's layers (`"<name>_attention"`, ...).
        features: dict. Maps each history input name (its key in the input
            dict, an integer array of shape `(B, max_length)`) to the name
            of the candidate `Feature` whose table it shares.
        max_length: int. The history length `T` the model takes (pad or cut
            the histories to it).
        length: Optional str. The name of an integer input of shape `(B,)`
            holding the number of valid positions of each history, counted
            from the start. Defaults to `None` (id 0 alone marks padding).
        negatives: Optional dict. For the auxiliary loss of `DIEN`: maps
            every history input name (each key of `features`) to the name of
            an input of the same shape holding, at each valid position, an
            item the user did not take next (negative sampling). Other
            models ignore it. Defaults to `None`.

    Examples:

        >>> BehaviorSequence(
        ...     "clicks",
        ...     {"clicked_items": "item", "clicked_categories": "category"},
        ...     max_length=50,
        ... ).max_length
        50
    """

    name: str
    features: dict
    max_length: int
    length: str | None = None
    negatives: dict | None = None

    def __post_init__(self):
        check_name("name", self.name, owner="BehaviorSequence")
        owner = f"BehaviorSequence {self.name!r}"
        features = check_name_map(
            "features", self.features, owner, "history input name to feature name"
        )
        object.__setattr__(self, "features", features)
        max_length = check_positive_int("max_length", self.max_length, owner=owner)
        object.__setattr__(self, "max_length", max_length)
        if self.length is not None:
            check_name("length", self.length, owner=owner)
        if self.negatives is not None:
            negatives = check_name_map(
                "negatives",
                self.negatives,
                owner,
                "history input name to negative input name",
            )
            if set(negatives) != set(self.features):
                raise ValueError(
                    f"{owner}: `negatives` must map every history input (the keys "
                    f"of `features`: {list(self.features)}) to a negative input. "
                    f"Received: keys {list(negatives)}"
                )
            object.__setattr__(self, "negatives", negatives)
