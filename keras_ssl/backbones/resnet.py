"""ResNet encoders (He et al., 2016) with a CIFAR or an ImageNet stem.

Each builder returns a plain functional `keras.Model` that maps images in
[0, 1] (NHWC, float) to a pooled feature vector. Only stock Keras layers are
used, so the model reloads from its config under `safe_mode`.
"""

import keras
from keras import layers

from keras_ssl.backbones.validation import check_choice, check_positive

# blocks per stage, and whether the stage uses bottleneck blocks
_DEPTHS = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
}


def _conv_bn(x, filters, kernel_size, strides, name, activation=True):
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _block(x, filters, strides, bottleneck, name):
    out_filters = filters * 4 if bottleneck else filters
    shortcut = x
    if strides != 1 or x.shape[-1] != out_filters:
        shortcut = _conv_bn(x, out_filters, 1, strides, f"{name}_proj", activation=False)
    if bottleneck:
        y = _conv_bn(x, filters, 1, 1, f"{name}_1")
        y = _conv_bn(y, filters, 3, strides, f"{name}_2")
        y = _conv_bn(y, out_filters, 1, 1, f"{name}_3", activation=False)
    else:
        y = _conv_bn(x, filters, 3, strides, f"{name}_1")
        y = _conv_bn(y, filters, 3, 1, f"{name}_2", activation=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def ResNet(depth=18, stem="cifar", width=1.0, input_shape=(None, None, 3), name=None):
    """A ResNet encoder returning globally average-pooled features.

    Args:
        depth: 18, 34 or 50.
        stem: "cifar" (3x3 conv, stride 1, no max-pool; for 32x32 inputs) or
            "imagenet" (7x7 conv, stride 2, then 3x3 max-pool).
        width: multiplier on every stage's channel count (64, 128, 256, 512 at
            width 1.0). Use e.g. 0.25 for CPU-sized experiments.
        input_shape: (height, width, channels); spatial sizes may be None.
        name: model name; defaults to "resnet{depth}_{stem}".

    Returns:
        A functional `keras.Model`; its output has 512 * width features
        (2048 * width for ResNet-50).
    """
    check_choice("depth", depth, tuple(_DEPTHS))
    check_choice("stem", stem, ("cifar", "imagenet"))
    check_positive("width", width)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape}")
    blocks, bottleneck = _DEPTHS[depth]
    base = max(1, int(round(64 * width)))

    inputs = keras.Input(shape=input_shape, name="images")
    # Images arrive in [0, 1]; centre them so the first conv sees ~zero mean.
    x = layers.Rescaling(scale=4.0, offset=-2.0, name="normalize")(inputs)
    if stem == "cifar":
        x = _conv_bn(x, base, 3, 1, "stem")
    else:
        x = _conv_bn(x, base, 7, 2, "stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, num_blocks in enumerate(blocks):
        filters = base * 2**stage
        for block in range(num_blocks):
            strides = 2 if (block == 0 and stage > 0) else 1
            x = _block(x, filters, strides, bottleneck, f"stage{stage + 1}_block{block + 1}")
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}_{stem}")


def ResNet18(stem="cifar", width=1.0, input_shape=(None, None, 3), name=None):
    """ResNet-18 encoder; see `ResNet` for the arguments."""
    return ResNet(18, stem=stem, width=width, input_shape=input_shape, name=name)


def ResNet34(stem="cifar", width=1.0, input_shape=(None, None, 3), name=None):
    """ResNet-34 encoder; see `ResNet` for the arguments."""
    return ResNet(34, stem=stem, width=width, input_shape=input_shape, name=name)


def ResNet50(stem="imagenet", width=1.0, input_shape=(None, None, 3), name=None):
    """ResNet-50 (bottleneck) encoder; see `ResNet` for the arguments."""
    return ResNet(50, stem=stem, width=width, input_shape=input_shape, name=name)
