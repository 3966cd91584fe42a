"""keras-din: DIN target attention layers for Keras 3 on TensorFlow, PyTorch and JAX."""

from keras_din import datasets
from keras_din import metrics
from keras_din import models
from keras_din.layers import MLP
from keras_din.layers import AttentionalGRUCell
from keras_din.layers import AttentionSequencePoolingLayer
from keras_din.layers import BehaviorSequenceTransformer
from keras_din.layers import Dice
from keras_din.layers import InterestEvolution
from keras_din.layers import InterestExtractor
from keras_din.layers import LocalActivationUnit
from keras_din.layers import MiniBatchAwareEmbedding
from keras_din.layers import SearchBasedInterest

__version__ = "0.2.0"

__all__ = [
    "AttentionSequencePoolingLayer",
    "AttentionalGRUCell",
    "BehaviorSequenceTransformer",
    "Dice",
    "InterestEvolution",
    "InterestExtractor",
    "LocalActivationUnit",
    "MLP",
    "MiniBatchAwareEmbedding",
    "SearchBasedInterest",
    "__version__",
    "datasets",
    "metrics",
    "models",
]
