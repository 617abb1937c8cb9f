"""Encoders: functional Keras models that map inputs to a feature vector."""

from keras_ssl.backbones.conv import ConvNet
from keras_ssl.backbones.mlp import MLP
from keras_ssl.backbones.resnet import ResNet, ResNet18, ResNet34, ResNet50

__all__ = ["ConvNet", "MLP", "ResNet", "ResNet18", "ResNet34", "ResNet50"]
