"""What the search-based builders (SIM, ETA) share."""

from keras_din.layers._checks import check_non_negative
from keras_din.layers.search_based_interest import SearchBasedInterest
from keras_din.models._graph import FeatureGraph


def search_model(
    features,
    behaviors,
    candidates,
    layer_options,
    search_feature,
    auxiliary_loss_weight,
    head,
    embedding_l2,
    frequencies,
    name,
):
    """A `FeatureModel` whose sequences are each turned into interests by a
    `SearchBasedInterest` of `layer_options` (named `"<sequence>_search"`),
    with an auxiliary click model for the soft search where
    `auxiliary_loss_weight` is positive; `head` is the MLP's
    `(hidden_units, activation, dropout)`."""
    search = layer_options["search"]
    auxiliary_loss_weight = check_non_negative(
        "auxiliary_loss_weight", auxiliary_loss_weight
    )
    graph = FeatureGraph(
        features, behaviors, candidates, embedding_l2, frequencies, negatives=False
    )
    search_inputs = _search_inputs(graph, search, search_feature)
    interests, auxiliary = [], []
    for (behavior, sequence), ids in zip(graph.sequences(), search_inputs, strict=True):
        layer = SearchBasedInterest(**layer_options, name=f"{behavior.name}_search")
        output = layer(
            [sequence["query"], sequence["keys"], *ids], mask=sequence["mask"]
        )
        if search == "soft":
            interests.append(output[0])
            auxiliary.append(output[1])
        else:
            interests.append(output)
    soft = search == "soft" and auxiliary_loss_weight > 0
    return graph.model(
        interests,
        *head,
        name,
        auxiliary=auxiliary if soft else None,
        auxiliary_loss_weight=auxiliary_loss_weight if soft else None,
    )


def _search_inputs(graph, search, search_feature):
    """Per sequence, the id inputs the hard search matches: the candidate's
    `search_feature` and the history's; none for the soft search."""
    if search != "hard":
        if search_feature is not None:
            raise ValueError(
                "`search_feature` is for `search='hard'` only. Received: "
                f"search={search!r}, search_feature={search_feature!r}"
            )
        return [[] for _ in graph.behaviors]
    found = []
    for behavior in graph.behaviors:
        histories = [h for h, f in behavior.features.items() if f == search_feature]
        if search_feature not in graph.candidate_names or not histories:
            raise ValueError(
                "`search='hard'` needs `search_feature`: a feature that every "
                "behavior sequence has a history input of (the candidate's "
                "and the behaviours' ids are matched). Behavior sequence "
                f"{behavior.name!r} refers to {sorted(set(behavior.features.values()))}"
                ". "
                f"Received: search_feature={search_feature!r}"
            )
        found.append([graph.inputs[search_feature], graph.inputs[histories[0]]])
    return found
