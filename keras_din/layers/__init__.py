"""The keras-din layers."""

from keras_din.layers.attention_sequence_pooling_layer import (
    AttentionSequencePoolingLayer,
)
from keras_din.layers.attentional_gru_cell import AttentionalGRUCell
from keras_din.layers.behavior_sequence_transformer import BehaviorSequenceTransformer
from keras_din.layers.dice import Dice
from keras_din.layers.interest_evolution import InterestEvolution
from keras_din.layers.interest_extractor import InterestExtractor
from keras_din.layers.local_activation_unit import LocalActivationUnit
from keras_din.layers.mini_batch_aware_embedding import MiniBatchAwareEmbedding
from keras_din.layers.mlp import MLP
from keras_din.layers.search_based_interest import SearchBasedInterest

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
]
