"""Building blocks shared by the methods: heads, queues, EMA teachers, transformer layers, input scaling."""

from keras_ssl.layers.ema import copy_as_teacher, ema_value, momentum_schedule
from keras_ssl.layers.heads import L2Normalize, PrototypeLayer, dino_projector, mlp_head, simclr_projection_head
from keras_ssl.layers.pixels import ImageModel, PixelScaling
from keras_ssl.layers.preprocessing import ChannelAffine
from keras_ssl.layers.queue import FeatureQueue
from keras_ssl.layers.transformer import (
    ClassToken,
    PaddingMask,
    PatchEmbedding,
    PositionEmbedding,
    TokenIdCheck,
    TokenPooling,
    TransformerBlock,
    patchify,
    sincos_position_embedding,
    unpatchify,
)

__all__ = [
    "ChannelAffine",
    "ClassToken",
    "FeatureQueue",
    "ImageModel",
    "L2Normalize",
    "PaddingMask",
    "PatchEmbedding",
    "PositionEmbedding",
    "PixelScaling",
    "PrototypeLayer",
    "TokenIdCheck",
    "TokenPooling",
    "TransformerBlock",
    "copy_as_teacher",
    "dino_projector",
    "ema_value",
    "mlp_head",
    "momentum_schedule",
    "patchify",
    "simclr_projection_head",
    "sincos_position_embedding",
    "unpatchify",
]
