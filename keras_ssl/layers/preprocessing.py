"""ChannelAffine: the fixed input scaling an ecosystem backbone expects, as a serialisable layer."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_ssl")
class ChannelAffine(keras.layers.Layer):
    """Maps every pixel's channels through a fixed per-channel affine map, with no weights.

    `y[..., i] = x[..., channel_order[i]] * scale[i] + offset[i]`

    This is how keras_ssl feeds a model that expects other pixel values than
    its [0, 1] images: `backbones.from_keras_applications` measures a
    `preprocess_input` function into such a map (ResNet50's "caffe" mode is
    `scale=[255] * 3`, `offset=[-103.939, -116.779, -123.68]`,
    `channel_order=[2, 1, 0]`: RGB to BGR, then the ImageNet mean removed on
    0-255 values), and `backbones.from_keras_hub` folds a keras-hub
    `ImageConverter`'s scale and offset into one. The map is elementwise (a
    gather and a multiply-add, no matrix product), so it is exact on every
    device, and its config holds only numbers: it reloads under `safe_mode`.

    Args:
        scale: one float per output channel, or one float for all channels.
        offset: one float per output channel, or one float for all channels.
        channel_order: the input channel each output channel reads
            (`[2, 1, 0]` swaps RGB and BGR); default: unchanged.
    """

    def __init__(self, scale=1.0, offset=0.0, channel_order=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = _floats("scale", scale)
        self.offset = _floats("offset", offset)
        if channel_order is not None:
            valid = isinstance(channel_order, (list, tuple)) and channel_order
            if not valid or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in channel_order):
                raise ValueError(
                    "`channel_order` must be a non-empty list of channel indices. "
                    f"Received: channel_order={channel_order!r}"
                )
            channel_order = [int(i) for i in channel_order]
        self.channel_order = channel_order
        sizes = {len(v) for v in (self.scale, self.offset, self.channel_order or [0]) if len(v) > 1}
        if len(sizes) > 1:
            raise ValueError(
                "`scale`, `offset` and `channel_order` must give the same number of channels (or one value). Received: "
                f"scale={self.scale}, offset={self.offset}, channel_order={self.channel_order}"
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None:
            wanted = max(len(self.scale), len(self.offset), len(self.channel_order or []))
            out_of_range = [i for i in self.channel_order or [] if i >= channels]
            if out_of_range or (wanted > 1 and self.channel_order is None and wanted != channels):
                raise ValueError(
                    f"ChannelAffine {self.name!r} maps {wanted} channels (channel_order={self.channel_order}). "
                    f"Received: inputs with {channels} channels, shape {tuple(input_shape)}"
                )
        self.built = True

    def call(self, inputs):
        x = inputs
        if self.channel_order is not None:
            x = ops.take(x, self.channel_order, axis=-1)
        x = ops.cast(x, self.compute_dtype)
        return x * ops.convert_to_tensor(self.scale, self.compute_dtype) + ops.convert_to_tensor(
            self.offset, self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        if self.channel_order is None:
            return tuple(input_shape)
        return (*input_shape[:-1], len(self.channel_order))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset, "channel_order": self.channel_order}


def _floats(name, value):
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(f"`{name}` must be a finite number or a non-empty list of them. Received: {name}={value!r}")
    return [float(v) for v in values]
