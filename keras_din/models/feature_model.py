"""A functional model on a dict of named features, which checks its inputs."""

import keras
import numpy as np

from keras_din.export import tie_unknown_dimensions
from keras_din.models._feature_arrays import check_feature_arrays


@keras.saving.register_keras_serializable(package="keras_din")
class FeatureModel(keras.Model):
    """A functional `keras.Model` whose inputs are named integer features.

    The `keras_din.models` builders return one. It is a plain functional
    model (built from `inputs` and `outputs`, saved as `.keras`, exported
    with `model.export`) that checks, before `fit`, `evaluate` and `predict`
    run (and their `*_on_batch` forms), an input dict of NumPy arrays:
    exactly one array per input (`list(model.input)` names them, in order),
    integer dtypes (ids and lengths), the shapes the model takes, one batch
    size, and ids within each feature's vocabulary. Each problem raises an
    error naming the input. Histories are not padded for you: a list of
    rows of different lengths raises an error that says how to pad them
    (`keras.utils.pad_sequences(rows, maxlen=max_length, padding="post")`).
    Other data (a `tf.data.Dataset`, a `keras.utils.PyDataset`, tensors)
    goes to Keras unchecked.

    Args:
        inputs: dict of `keras.Input`, keyed by input name.
        outputs: The model's output tensor(s).
        name: Optional str. The model's name.
        vocabulary_sizes: Optional dict of int, keyed by input name: ids of
            that input must lie in `[0, size)`. Defaults to `None` (none
            checked).
        auxiliary_loss_weight: Optional float. With a weight, `outputs` is
            a list of two: the click probabilities and those of an auxiliary
            click model (SIM's soft search trains through one). In training
            the model returns both, and `auxiliary_loss_weight` times the
            binary cross-entropy of the second against the labels is added
            to the compiled loss; everywhere else (`predict`, `evaluate`,
            symbolic calls, `export`) it returns the first alone, which the
            metrics score. Defaults to `None`: one output.
        **kwargs: `keras.Model` keyword arguments, such as `trainable`.

    Examples:

        >>> import numpy as np
        >>> from keras_din.models import DIN, BehaviorSequence, Feature
        >>> model = DIN(
        ...     [Feature("item", 100)],
        ...     [BehaviorSequence("history", {"items": "item"}, max_length=3)])
        >>> model.predict({"item": np.array([5]), "items": np.array([[1, 2, 100]])})
        Traceback (most recent call last):
          ...
        ValueError: Input 'items' of `x` holds ids outside its vocabulary
        [0, 100): id 100 at index (0, 2)
    """

    def __init__(
        self,
        inputs,
        outputs,
        name=None,
        *,
        vocabulary_sizes=None,
        auxiliary_loss_weight=None,
        **kwargs,
    ):
        if auxiliary_loss_weight is not None and (
            not isinstance(outputs, (list, tuple)) or len(outputs) != 2
        ):
            raise ValueError(
                "With an `auxiliary_loss_weight`, `outputs` must be a list of "
                "two: the click probabilities and the auxiliary ones. "
                f"Received: outputs={outputs!r:.200}"
            )
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.vocabulary_sizes = dict(vocabulary_sizes or {})
        self.auxiliary_loss_weight = auxiliary_loss_weight

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        if self.auxiliary_loss_weight is None or training:
            return outputs
        return outputs[0]

    def compute_output_spec(self, inputs, training=None, mask=None):
        spec = super().compute_output_spec(inputs, training=training, mask=mask)
        if self.auxiliary_loss_weight is None or training:
            return spec
        return spec[0]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self.auxiliary_loss_weight is None or not isinstance(y_pred, (list, tuple)):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        scores, auxiliary = y_pred
        loss = super().compute_loss(x, y, scores, sample_weight, training)
        auxiliary_loss = keras.losses.BinaryCrossentropy()(y, auxiliary, sample_weight)
        return loss + self.auxiliary_loss_weight * auxiliary_loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self.auxiliary_loss_weight is not None and isinstance(y_pred, (list, tuple)):
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def check_inputs(self, x):
        """Checks `x`, a dict of NumPy arrays keyed by input name.

        Raises a `ValueError` or `TypeError` naming the input at the first
        problem. Returns `x` with its arrays in the model's shapes (`(N,)` and
        `(N, 1)` are both taken where the model takes one value per row).
        Values that are not NumPy arrays or lists (tensors) are checked only
        for being there, and returned as they are.
        """
        if isinstance(x, (list, tuple, np.ndarray)):
            raise TypeError(
                f"Model {self.name!r} takes a dict of arrays keyed by input name "
                f"({list(self.input)}). Received: a {type(x).__name__}"
            )
        if isinstance(x, dict):
            return check_feature_arrays(x, self.input, self.vocabulary_sizes, "x")
        return x

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        x = self.check_inputs(x)
        if isinstance(validation_data, (list, tuple)) and validation_data:
            validation_data = (
                self.check_inputs(validation_data[0]),
                *validation_data[1:],
            )
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        return super().evaluate(self.check_inputs(x), *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self.check_inputs(x), *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        return super().train_on_batch(self.check_inputs(x), *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        return super().test_on_batch(self.check_inputs(x), *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(self.check_inputs(x))

    def export(self, filepath, format="tf_saved_model", **kwargs):
        """As `keras.Model.export`. On the JAX backend, a SavedModel's unknown
        dimensions at one axis are taken to be equal, as in
        `keras_din.export.export_model`: the candidates' number `C` of a
        model built with `candidates=None` is one size across its inputs."""
        kwargs = tie_unknown_dimensions(self, format, kwargs)
        return super().export(filepath, format=format, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["vocabulary_sizes"] = dict(self.vocabulary_sizes)
        if self.auxiliary_loss_weight is not None:
            config["auxiliary_loss_weight"] = self.auxiliary_loss_weight
        return config
