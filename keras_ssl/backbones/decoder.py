"""Decoders that mirror an encoder, for autoencoders."""

import math

import keras
from keras import layers

_GLOBAL_POOLS = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)


def mirror_decoder(encoder, latent_dim=None, output_activation=None, name="decoder"):
    """Builds the decoder D: R^latent_dim -> the encoder's input space.

    - Vector encoders (input rank 2, e.g. `MLP`): Dense -> BatchNorm -> ReLU
      layers with the encoder's hidden widths in reverse, then a Dense layer
      to the input size.
    - Convolutional encoders ending in global pooling (`ConvNet`, `ResNet`)
      with a fixed input size: a Dense layer to the last feature map's shape,
      then one stride-2 transposed conv -> BatchNorm -> ReLU -> conv stage per
      halving of resolution (widths reversed), then a 3x3 conv to the input
      channels.

    Args:
        encoder: the encoder to mirror.
        latent_dim: the decoder's input size (default: the encoder's output).
        output_activation: e.g. "sigmoid" for [0, 1] images, None for vectors.

    Raises:
        ValueError: for other encoders (pass your own decoder then) or an
            open input size.
    """
    in_shape = tuple(encoder.input_shape[1:])
    latent_dim = int(latent_dim or encoder.output_shape[-1])
    inputs = keras.Input(shape=(latent_dim,), name="latent")
    if len(in_shape) == 1:
        widths = [layer.units for layer in encoder.layers if isinstance(layer, layers.Dense)]
        x = inputs
        for i, units in enumerate(reversed(widths[:-1])):
            x = layers.Dense(units, use_bias=False, name=f"dense{i + 1}")(x)
            x = layers.BatchNormalization(name=f"dense{i + 1}_bn")(x)
            x = layers.Activation("relu", name=f"dense{i + 1}_relu")(x)
        outputs = layers.Dense(in_shape[0], activation=output_activation, name="output")(x)
        return keras.Model(inputs, outputs, name=name)
    if len(in_shape) != 3:
        raise ValueError(f"Cannot mirror an encoder with input shape {in_shape}: pass a `decoder`.")
    height, width, channels = in_shape
    if height is None or width is None:
        raise ValueError(
            "Mirroring a convolutional encoder needs its input size: build it with e.g. input_shape=(32, 32, 3), "
            f"or pass a `decoder`. Received an encoder with input shape {in_shape}."
        )
    pools = [layer for layer in encoder.layers if isinstance(layer, _GLOBAL_POOLS)]
    if not pools:
        raise ValueError(
            f"Cannot mirror encoder {encoder.name!r}: it does not end in global pooling (ConvNet, ResNet do). "
            "Pass a `decoder`."
        )
    h, w, c = pools[-1].input.shape[1:]
    ratio = height // h
    if h * ratio != height or w * ratio != width or ratio & (ratio - 1):
        raise ValueError(
            f"Cannot mirror encoder {encoder.name!r}: its {height}x{width} input shrinks to {h}x{w}, "
            "not by a power of two. Pass a `decoder`."
        )
    filters = []
    for layer in encoder.layers:
        if isinstance(layer, layers.Conv2D) and layer.filters not in filters:
            filters.append(layer.filters)
    widths = list(reversed(filters))
    x = layers.Dense(h * w * c, use_bias=False, name="project")(inputs)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.Activation("relu", name="project_relu")(x)
    x = layers.Reshape((h, w, c), name="to_map")(x)
    for i in range(int(math.log2(ratio))):
        f = widths[min(i + 1, len(widths) - 1)]
        prefix = f"up{i + 1}"
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", use_bias=False, name=f"{prefix}_deconv")(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn1")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu1")(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn2")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu2")(x)
    outputs = layers.Conv2D(channels, 3, padding="same", activation=output_activation, name="output")(x)
    return keras.Model(inputs, outputs, name=name)
