"""The ETA model builder."""

from keras_din.models._search import search_model


def ETA(
    features,
    behaviors,
    candidates=1,
    top_k=50,
    hash_bits=32,
    num_heads=2,
    key_dim=None,
    dnn_hidden_units=(200, 80),
    dnn_activation="dice",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="eta",
):
    """An ETA model (End-to-end Target Attention) on named features.

    As `SIM`, with each behaviour sequence searched by SimHash: a
    `SearchBasedInterest(search="simhash")` keeps the `top_k` behaviours
    whose signatures (the signs of a fixed random projection of their
    embeddings) are nearest the candidate's in Hamming distance, then
    attends over them. The search has no weight to train: the embeddings
    it hashes train end to end through the attention, and no auxiliary
    model is needed.

    Args:
        features, behaviors, candidates: As in `DIN`. A sequence's
            embedding size (its features' widths added) must be a multiple
            of `num_heads`, unless `key_dim` is given.
        top_k, hash_bits, num_heads, key_dim: As in `SearchBasedInterest`.
            Defaults to `50`, `32`, `2` and `None`.
        dnn_hidden_units, dnn_activation, dnn_dropout: As in `DIN`.
        embedding_l2, frequencies: As in `DIN`.
        name: str. The model's name. Defaults to `"eta"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import BehaviorSequence, Feature
        >>> model = ETA(
        ...     [Feature("item", 1000)],
        ...     [BehaviorSequence("history", {"items": "item"}, max_length=500)],
        ...     candidates=3, top_k=20)
        >>> x = {"item": np.array([[7, 8, 9]]), "items": np.ones((1, 500), "int32")}
        >>> model.predict(x, verbose=0).shape
        (1, 3)

    References:
        - [Chen et al., 2021](https://arxiv.org/abs/2108.04468), End-to-End
          User Behavior Retrieval in Click-Through Rate Prediction Model.
    """
    return search_model(
        features,
        behaviors,
        candidates,
        dict(
            top_k=top_k,
            search="simhash",
            hash_bits=hash_bits,
            num_heads=num_heads,
            key_dim=key_dim,
        ),
        None,
        0.0,
        (dnn_hidden_units, dnn_activation, dnn_dropout),
        embedding_l2,
        frequencies,
        name,
    )
