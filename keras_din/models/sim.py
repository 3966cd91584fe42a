"""The SIM model builder."""

from keras_din.models._search import search_model


def SIM(
    features,
    behaviors,
    candidates=1,
    search="soft",
    search_feature=None,
    top_k=50,
    num_heads=2,
    key_dim=None,
    auxiliary_loss_weight=1.0,
    dnn_hidden_units=(200, 80),
    dnn_activation="dice",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="sim",
):
    """A SIM model (Search-based Interest Model) on named features.

    As `DIN`, with each behaviour sequence (a long one, typically) turned
    into an interest per candidate by a `SearchBasedInterest`: a search
    that keeps the `top_k` behaviours most relevant to the candidate, then
    multi-head target attention over them.

    With `search="soft"` the search ranks by the inner product of learned
    projections, which the top-k passes no gradient to: as in the paper, an
    auxiliary click model trains them, an MLP of the same widths (layers
    named `auxiliary_*`) over the context, the candidates and each
    sequence's `sum_t r_t e_t`. Its loss, weighted by
    `auxiliary_loss_weight`, is added in training; the model outputs (and
    exports) the main click probabilities alone.

    Args:
        features, behaviors, candidates: As in `DIN`. A sequence's
            embedding size (its features' widths added) must be a multiple
            of `num_heads`, unless `key_dim` is given.
        search: `"soft"` or `"hard"`, as in `SearchBasedInterest`. Defaults
            to `"soft"`.
        search_feature: str. With `search="hard"`, the feature (a category,
            say) that a behaviour must share with the candidate to be kept:
            every behaviour sequence must have a history input of it.
        top_k, num_heads, key_dim: As in `SearchBasedInterest`. Defaults to
            `50`, `2` and `None`.
        auxiliary_loss_weight: float >= 0. With `search="soft"`, the weight
            of the auxiliary click model's binary cross-entropy; `0` leaves
            the search untrained. Defaults to `1.0`, the paper's.
        dnn_hidden_units, dnn_activation, dnn_dropout: As in `DIN`.
        embedding_l2, frequencies: As in `DIN`.
        name: str. The model's name. Defaults to `"sim"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import BehaviorSequence, Feature
        >>> model = SIM(
        ...     [Feature("item", 1000), Feature("category", 50)],
        ...     [BehaviorSequence(
        ...         "history", {"items": "item", "categories": "category"},
        ...         max_length=500)],
        ...     search="hard", search_feature="category", top_k=20)
        >>> x = {"item": np.array([7, 8]), "category": np.array([1, 2]),
        ...      "items": np.zeros((2, 500), "int32"),
        ...      "categories": np.zeros((2, 500), "int32")}
        >>> model.predict(x, verbose=0).shape
        (2, 1)

    References:
        - [Pi et al., 2020](https://arxiv.org/abs/2006.05639), Search-based
          User Interest Modeling with Lifelong Sequential Behavior Data for
          Click-Through Rate Prediction.
    """
    if search not in ("soft", "hard"):
        raise ValueError(
            "`search` must be one of ('soft', 'hard') (ETA's SimHash search "
            f"is the builder `ETA`). Received: search={search!r}"
        )
    return search_model(
        features,
        behaviors,
        candidates,
        dict(top_k=top_k, search=search, num_heads=num_heads, key_dim=key_dim),
        search_feature,
        auxiliary_loss_weight,
        (dnn_hidden_units, dnn_activation, dnn_dropout),
        embedding_l2,
        frequencies,
        name,
    )
