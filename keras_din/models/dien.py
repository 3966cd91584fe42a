"""The DIEN model builder."""

from keras_din.layers._checks import check_non_negative
from keras_din.layers.interest_evolution import InterestEvolution
from keras_din.layers.interest_extractor import InterestExtractor
from keras_din.models._graph import FeatureGraph


def DIEN(
    features,
    behaviors,
    candidates=1,
    gru_type="AUGRU",
    auxiliary_loss_weight=1.0,
    auxiliary_hidden_units=(100, 50),
    att_hidden_units=(80, 40),
    att_activation="dice",
    weight_normalization=True,
    dnn_hidden_units=(200, 80),
    dnn_activation="dice",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="dien",
):
    """A DIEN model (Deep Interest Evolution Network) on named features.

    As `DIN`, with each behaviour sequence turned into an interest by an
    `InterestExtractor` (a GRU over the history, with the auxiliary loss
    where the sequence has `negatives`) and an `InterestEvolution` (a GRU
    driven by the attention to each candidate) instead of attention pooling.

    Args:
        features, behaviors, candidates: As in `DIN`.
        gru_type: str. The evolution layer's GRU: `"AUGRU"` (the paper's
            best), `"AGRU"`, `"AIGRU"` or `"GRU"`. Defaults to `"AUGRU"`.
        auxiliary_loss_weight: float. The weight (the paper's alpha) of the
            auxiliary loss of each behaviour sequence that has `negatives`
            (they are then inputs of the model); `0` leaves it out. A
            positive weight needs at least one sequence with negatives.
            Defaults to `1.0`.
        auxiliary_hidden_units: sequence of positive ints. Hidden widths of
            the auxiliary loss's MLP. Defaults to `(100, 50)`.
        att_hidden_units, att_activation: The evolution layer's
            attention, as in `DIN`.
        weight_normalization: bool. Whether the attention is a softmax over
            the valid positions, as in the DIEN paper (eq. 7). Defaults to
            `True`: the attention `a_t` then lies in `[0, 1]`, so each
            AUGRU or AGRU step mixes the state and the candidate state and
            the states stay within `[-1, 1]`. `False` feeds the raw scores
            (DeepCTR's default), unbounded: the states can grow and training
            can diverge (as it did on MovieLens with the Dice defaults).
        dnn_hidden_units, dnn_activation, dnn_dropout: As in `DIN`.
        embedding_l2, frequencies: As in `DIN`.
        name: str. The model's name. Defaults to `"dien"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> from keras_din.models import BehaviorSequence, Feature
        >>> clicks = BehaviorSequence(
        ...     "clicks", {"items": "item"}, max_length=20,
        ...     negatives={"items": "negative_items"})
        >>> model = DIEN([Feature("item", 1000)], [clicks])
        >>> sorted(model.input)
        ['item', 'items', 'negative_items']

    References:
        - [Zhou et al., 2019](https://arxiv.org/abs/1809.03672), Deep Interest
          Evolution Network for Click-Through Rate Prediction.
    """
    auxiliary_loss_weight = check_non_negative(
        "auxiliary_loss_weight", auxiliary_loss_weight
    )
    graph = FeatureGraph(
        features,
        behaviors,
        candidates,
        embedding_l2,
        frequencies,
        negatives=auxiliary_loss_weight > 0,
    )
    if auxiliary_loss_weight > 0 and all(b.negatives is None for b in graph.behaviors):
        raise ValueError(
            f"auxiliary_loss_weight={auxiliary_loss_weight} needs a behavior "
            "sequence with `negatives` (the negative histories of the "
            "auxiliary loss); none has any. Give them, or pass "
            "auxiliary_loss_weight=0."
        )
    interests = []
    for behavior, sequence in graph.sequences():
        negative_keys = sequence.get("negative_keys")
        states = InterestExtractor(
            auxiliary_loss_weight=(
                0.0 if negative_keys is None else auxiliary_loss_weight
            ),
            auxiliary_hidden_units=auxiliary_hidden_units,
            name=f"{behavior.name}_interest_extractor",
        )(sequence["keys"], mask=sequence["mask"], negative_keys=negative_keys)
        interests.append(
            InterestEvolution(
                gru_type=gru_type,
                att_hidden_units=att_hidden_units,
                att_activation=att_activation,
                weight_normalization=weight_normalization,
                name=f"{behavior.name}_interest_evolution",
            )([sequence["query"], states], mask=sequence["mask"])
        )
    return graph.model(interests, dnn_hidden_units, dnn_activation, dnn_dropout, name)
