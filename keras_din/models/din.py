"""The DIN model builder."""

from keras_din.layers.attention_sequence_pooling_layer import (
    AttentionSequencePoolingLayer,
)
from keras_din.models._graph import FeatureGraph


def DIN(
    features,
    behaviors,
    candidates=1,
    att_hidden_units=(80, 40),
    att_activation="dice",
    weight_normalization=False,
    dnn_hidden_units=(200, 80),
    dnn_activation="dice",
    dnn_dropout=0.0,
    embedding_l2=0.0,
    frequencies=None,
    name="din",
):
    """A DIN model (Deep Interest Network) on named features.

    Every `Feature` gets an embedding table (a `MiniBatchAwareEmbedding`).
    Each behaviour sequence is pooled by an `AttentionSequencePoolingLayer`
    against the embeddings of the candidate features it refers to; the
    context embeddings, the candidate embeddings and the pooled histories,
    concatenated, feed an MLP that outputs the click probability of each
    candidate.

    Args:
        features: list of `keras_din.models.Feature`: the candidate features
            (those the behaviour sequences refer to) and the context.
        behaviors: list of `keras_din.models.BehaviorSequence`, at least one.
        candidates: int, or `None`. The number of candidates per row, `C`:
            the candidate features are inputs of shape `(B, C)` and the
            output is `(B, C)`. `None` takes any number of candidates, fixed
            only when called (one exported model then serves requests of any
            size). Defaults to `1`.
        att_hidden_units: sequence of positive ints. Hidden widths of the
            activation unit. Defaults to `(80, 40)`.
        att_activation: The activation unit's activation (see
            `AttentionSequencePoolingLayer`). Defaults to `"dice"`.
        weight_normalization: bool. Whether to softmax the attention scores.
            Defaults to `False`, as in the DIN paper.
        dnn_hidden_units: sequence of positive ints. Hidden widths of the
            MLP. Defaults to `(200, 80)`, the paper's.
        dnn_activation: The MLP's activation: a Keras activation name or
            function, `"dice"`, `"prelu"` or a layer. Defaults to `"dice"`.
        dnn_dropout: float in `[0, 1)`. Dropout after each hidden layer of
            the MLP. Defaults to `0.0`.
        embedding_l2: float. The strength of the mini-batch aware
            regularization of every table. Defaults to `0.0` (none).
        frequencies: Optional dict of NumPy arrays keyed by input name,
            usually the training inputs: each table's id frequencies (which
            scale the regularization) are counted over the candidate and
            history inputs that use it. Or a `keras.utils.PyDataset` of such
            dicts, such as `keras_din.datasets.HistoryBatches`, counted batch
            by batch. Defaults to `None` (all 1).
        name: str. The model's name. Defaults to `"din"`.

    Returns:
        An uncompiled `keras_din.models.FeatureModel` that takes a dict of
        arrays keyed by input name and returns `(B, C)` click
        probabilities.

    Examples:

        >>> from keras_din.models import BehaviorSequence, Feature
        >>> model = DIN(
        ...     [Feature("item", 1000), Feature("category", 50)],
        ...     [BehaviorSequence(
        ...         "history", {"items": "item", "categories": "category"},
        ...         max_length=20)])
        >>> sorted(model.input)
        ['categories', 'category', 'item', 'items']

    References:
        - [Zhou et al., 2018](https://arxiv.org/abs/1706.06978), Deep Interest
          Network for Click-Through Rate Prediction.
    """
    graph = FeatureGraph(
        features, behaviors, candidates, embedding_l2, frequencies, negatives=False
    )
    interests = [
        AttentionSequencePoolingLayer(
            att_hidden_units=att_hidden_units,
            att_activation=att_activation,
            weight_normalization=weight_normalization,
            name=f"{behavior.name}_attention",
        )([sequence["query"], sequence["keys"]], mask=sequence["mask"])
        for behavior, sequence in graph.sequences()
    ]
    return graph.model(interests, dnn_hidden_units, dnn_activation, dnn_dropout, name)
