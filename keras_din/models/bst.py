"""The BST model builder."""

from keras_din.layers.behavior_sequence_transformer import BehaviorSequenceTransformer
from keras_din.models._graph import FeatureGraph


def BST(
    features,
    behaviors,
    candidates=1,
    num_heads=8,
    key_dim=None,
    feed_forward_units=None,
    transformer_dropout=0.0,
    pooling="concat",
    dnn_hidden_units=(1024, 512, 256),
    dnn_activation="leaky_relu",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="bst",
):
    """A BST model (Behavior Sequence Transformer) on named features.

    As `DIN`, with each behaviour sequence and the candidate turned into an
    interest by a `BehaviorSequenceTransformer`: one Transformer block over
    the valid behaviours followed by the candidate, with recency embeddings.

    Args:
        features, behaviors, candidates: As in `DIN`. A sequence's
            embedding size (its features' widths added) must be a multiple
            of `num_heads`, unless `key_dim` is given.
        num_heads, key_dim, feed_forward_units, pooling: The block's, as in
            `BehaviorSequenceTransformer`. Defaults to `8`, `None`, `None`
            and `"concat"` (the paper's).
        transformer_dropout: float in `[0, 1)`. The block's dropout.
            Defaults to `0.0`.
        dnn_hidden_units: sequence of positive ints. Hidden widths of the
            MLP. Defaults to `(1024, 512, 256)`, the paper's.
        dnn_activation: The MLP's activation, as in `DIN`. Defaults to
            `"leaky_relu"`, the paper's.
        dnn_dropout, embedding_l2, frequencies: As in `DIN`.
        name: str. The model's name. Defaults to `"bst"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import BehaviorSequence, Feature
        >>> model = BST(
        ...     [Feature("item", 1000), Feature("category", 50)],
        ...     [BehaviorSequence(
        ...         "history", {"items": "item", "categories": "category"},
        ...         max_length=20)],
        ...     dnn_hidden_units=(64, 32))
        >>> x = {"item": np.array([7, 8]), "category": np.array([1, 2]),
        ...      "items": np.zeros((2, 20), "int32"),
        ...      "categories": np.zeros((2, 20), "int32")}
        >>> model.predict(x, verbose=0).shape
        (2, 1)

    References:
        - [Chen et al., 2019](https://arxiv.org/abs/1905.06874), Behavior
          Sequence Transformer for E-commerce Recommendation in Alibaba.
    """
    graph = FeatureGraph(
        features, behaviors, candidates, embedding_l2, frequencies, negatives=False
    )
    interests = [
        BehaviorSequenceTransformer(
            num_heads=num_heads,
            key_dim=key_dim,
            feed_forward_units=feed_forward_units,
            dropout_rate=transformer_dropout,
            pooling=pooling,
            name=f"{behavior.name}_transformer",
        )([sequence["query"], sequence["keys"]], mask=sequence["mask"])
        for behavior, sequence in graph.sequences()
    ]
    return graph.model(interests, dnn_hidden_units, dnn_activation, dnn_dropout, name)
