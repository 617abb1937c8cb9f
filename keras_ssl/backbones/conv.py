"""A small VGG-style ConvNet encoder for small images and quick experiments."""

import keras
from keras import layers

from keras_ssl.backbones.validation import check_positive


def ConvNet(filters=(32, 64, 128), input_shape=(None, None, 3), name="convnet"):
    """Stacks of 3x3 conv -> BatchNorm -> ReLU, halving resolution between stages.

    Args:
        filters: channels of each stage; each stage has two conv layers and all
            but the last end with 2x2 max-pooling.
        input_shape: (height, width, channels) of images in [0, 1].
        name: model name.

    Returns:
        A functional `keras.Model` whose output is the global average of the
        last stage, `filters[-1]` features.
    """
    if not filters:
        raise ValueError(f"`filters` must list at least one stage. Received: filters={filters!r}")
    for f in filters:
        check_positive("filters", f)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape}")
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(scale=4.0, offset=-2.0, name="normalize")(inputs)
    for stage, f in enumerate(filters):
        for conv in range(2):
            prefix = f"stage{stage + 1}_conv{conv + 1}"
            x = layers.Conv2D(int(f), 3, padding="same", use_bias=False, name=prefix)(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(x)
            x = layers.Activation("relu", name=f"{prefix}_relu")(x)
        if stage < len(filters) - 1:
            x = layers.MaxPooling2D(2, padding="same", name=f"stage{stage + 1}_pool")(x)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)
