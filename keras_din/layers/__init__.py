"""The keras-din layers."""

from keras_din.layers.attention_sequence_pooling_layer import (
    AttentionSequencePoolingLayer,
)
from keras_din.layers.dice import Dice
from keras_din.layers.local_activation_unit import LocalActivationUnit

__all__ = ["AttentionSequencePoolingLayer", "Dice", "LocalActivationUnit"]
