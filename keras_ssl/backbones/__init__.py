"""Encoders: functional Keras models that map inputs to a feature vector."""

from keras_ssl.backbones.conv import ConvNet
from keras_ssl.backbones.decoder import mirror_decoder
from keras_ssl.backbones.ecosystem import from_keras_applications, from_keras_hub, measure_preprocess_input
from keras_ssl.backbones.mlp import MLP
from keras_ssl.backbones.resnet import ResNet, ResNet18, ResNet34, ResNet50
from keras_ssl.backbones.transformer import TEXT_SIZES, TransformerEncoder
from keras_ssl.backbones.vit import VIT_SIZES, ViT

__all__ = [
    "ConvNet",
    "MLP",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "TEXT_SIZES",
    "TransformerEncoder",
    "VIT_SIZES",
    "ViT",
    "from_keras_applications",
    "from_keras_hub",
    "measure_preprocess_input",
    "mirror_decoder",
]
