"""Model builders (DIN, DIEN, BST, SIM, ETA and the DIN paper's base model) from feature
specs, and the layer that embeds those features."""

from keras_din.models.base_model import BaseModel
from keras_din.models.behavior_sequence import BehaviorSequence
from keras_din.models.bst import BST
from keras_din.models.dien import DIEN
from keras_din.models.din import DIN
from keras_din.models.eta import ETA
from keras_din.models.feature import Feature
from keras_din.models.feature_embedding import FeatureEmbedding
from keras_din.models.feature_model import FeatureModel
from keras_din.models.sim import SIM

__all__ = [
    "BST",
    "DIEN",
    "DIN",
    "ETA",
    "BaseModel",
    "BehaviorSequence",
    "Feature",
    "FeatureEmbedding",
    "FeatureModel",
    "SIM",
]
