"""What the model builders share: the inputs, their embeddings and the MLP head."""

import keras
from keras import ops

from keras_din.layers._activations import activation_factory
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_rate
from keras_din.layers.mlp import MLP
from keras_din.models._candidate_scores import CandidateScores
from keras_din.models._frequencies import count_frequencies
from keras_din.models._inputs import SpecInputs
from keras_din.models._specs import check_positive_int
from keras_din.models.feature_embedding import FeatureEmbedding
from keras_din.models.feature_model import FeatureModel


class FeatureGraph:
    """The inputs of a model on `features` and `behaviors`, embedded.

    Checks the specs, makes one `keras.Input` per input name, and embeds
    them all with one `FeatureEmbedding`.

    Args:
        features: list of `Feature`.
        behaviors: list of `BehaviorSequence`.
        candidates: int, or `None` for any number of candidates per row.
        embedding_l2: float. The mini-batch aware regularization strength.
        frequencies: Optional dict of arrays keyed by input name, or a
            `keras.utils.PyDataset` of such dicts (or of `(dict, labels)`
            pairs), over which each table's id frequencies are counted.
        negatives: bool. Whether the behaviours' negative inputs are inputs
            of the model.
    """

    def __init__(
        self, features, behaviors, candidates, embedding_l2, frequencies, negatives
    ):
        specs = SpecInputs(features, behaviors, negatives)
        if candidates is not None:
            candidates = check_positive_int("candidates", candidates)
        self.candidates = candidates
        self.behaviors = specs.behaviors
        self.candidate_names = specs.candidate_names
        self.vocabulary_sizes = {
            name: specs.features[feature].vocabulary_size
            for name, feature in specs.table_of.items()
        }
        if frequencies is not None:
            frequencies = count_frequencies(frequencies, specs, candidates)
        embedding = FeatureEmbedding(
            list(specs.features.values()),
            specs.behaviors,
            embedding_l2=embedding_l2,
            frequencies=frequencies,
            negatives=negatives,
            name="embedding",
        )
        self.inputs = {
            name: keras.Input(shape, dtype="int32", name=name)
            for name, shape in embedding.input_shapes(candidates).items()
        }
        self.embedded = embedding(self.inputs)

    def sequences(self):
        """`(behavior, its embeddings)` for each behaviour sequence: a dict
        of its `"query"`, `"keys"`, `"mask"` and, where the model takes
        them, `"negative_keys"`."""
        embedded = self.embedded["behaviors"]
        return [(behavior, embedded[behavior.name]) for behavior in self.behaviors]

    def model(
        self,
        interests,
        dnn_hidden_units,
        dnn_activation,
        dnn_dropout,
        name,
        auxiliary=None,
        auxiliary_loss_weight=None,
    ):
        """The `FeatureModel` that feeds the context, the candidates and the
        `(B, C, D)` `interests` to an MLP and outputs `(B, C)` probabilities.

        With `auxiliary` interests, a second MLP of the same widths (layers
        named `auxiliary_*`) scores the context, the candidates and those:
        an auxiliary click model, trained with `auxiliary_loss_weight`.
        """
        activation_factory(dnn_activation, "dnn_activation")  # checks
        head = (
            check_positive_units("dnn_hidden_units", dnn_hidden_units),
            dnn_activation,
            check_rate("dnn_dropout", dnn_dropout),
        )
        outputs = self._scores(interests, *head, "")
        if auxiliary is not None:
            outputs = [outputs, self._scores(auxiliary, *head, "auxiliary_")]
        return FeatureModel(
            self.inputs,
            outputs,
            name=name,
            vocabulary_sizes=self.vocabulary_sizes,
            auxiliary_loss_weight=auxiliary_loss_weight,
        )

    def _scores(self, interests, hidden_units, activation, dropout, prefix):
        parts = list(self.embedded["features"].values())
        # Context: (B, E) -> (B, 1, E).
        parts = [ops.expand_dims(p, 1) if len(p.shape) == 2 else p for p in parts]
        parts += list(interests)
        if self.candidates != 1:
            # The context and the sum pooling, (B, 1, .), for every candidate:
            # adding (B, C, 1) zeros broadcasts them to a number of
            # candidates that, with `candidates=None`, is known only at call.
            candidate = next(part for part in parts if part.shape[1] != 1)
            zeros = ops.zeros_like(candidate[..., :1])
            parts = [part + zeros if part.shape[1] == 1 else part for part in parts]
        # keras.ops carry no Keras mask: the candidates' (id 0) ends here.
        hidden = ops.concatenate(parts, axis=-1)
        hidden = ops.reshape(hidden, (-1, hidden.shape[-1]))  # (B * C, D)
        hidden = MLP(
            hidden_units,
            activation=activation,
            dropout_rate=dropout,
            name=f"{prefix}dnn",
        )(hidden)
        # In float32 under a mixed precision policy too, as Keras advises for
        # the output layer.
        click = keras.layers.Dense(
            1, activation="sigmoid", dtype="float32", name=f"{prefix}click"
        )(hidden)
        # Kept in float32, as `click`.
        return CandidateScores(dtype="float32", name=f"{prefix}scores")(
            [click, self.inputs[min(self.candidate_names)]]
        )
