"""The builder of the DIN paper's base model."""

from keras_din.models._graph import FeatureGraph
from keras_din.models._sum_pooling import SumPooling


def BaseModel(
    features,
    behaviors,
    candidates=1,
    dnn_hidden_units=(200, 80),
    dnn_activation="prelu",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="base",
):
    """The DIN paper's base model (Embedding&MLP) on named features.

    As `DIN`, with each behaviour sequence sum-pooled over its valid
    positions instead of attention-pooled against the candidate: the
    baseline DIN's RelaImpr is measured against.

    Args:
        features, behaviors, candidates: As in `DIN`.
        dnn_hidden_units, dnn_dropout, embedding_l2, frequencies: As in
            `DIN`.
        dnn_activation: The MLP's activation, as in `DIN`. Defaults to
            `"prelu"`, the paper's for the base model.
        name: str. The model's name. Defaults to `"base"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import BehaviorSequence, Feature
        >>> model = BaseModel(
        ...     [Feature("item", 1000)],
        ...     [BehaviorSequence("history", {"items": "item"}, max_length=20)])
        >>> x = {"item": np.array([7, 8]), "items": np.zeros((2, 20), "int32")}
        >>> model.predict(x, verbose=0).shape
        (2, 1)

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), section 4.1.
    """
    graph = FeatureGraph(
        features, behaviors, candidates, embedding_l2, frequencies, negatives=False
    )
    interests = [
        SumPooling(name=f"{behavior.name}_sum_pooling")(
            sequence["keys"], mask=sequence["mask"]
        )
        for behavior, sequence in graph.sequences()
    ]
    return graph.model(interests, dnn_hidden_units, dnn_activation, dnn_dropout, name)
