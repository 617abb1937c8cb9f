"""Image inputs that cannot be fed wrongly: uint8 pixels in [0, 255] and float pixels in [0, 1] give the same features.

`PixelScaling` decides by dtype, never by value: uint8 is divided by 255,
floating point passes through (it must already be in [0, 1]), and any other
dtype is refused. `ImageModel` puts it in front of a model over images, so
the scaling travels inside the saved model (as keras-hub presets carry their
preprocessing); `keras_ssl.export` wraps image models in it.
"""

import keras
from keras import ops

PIXEL_DTYPES = "uint8 pixels in [0, 255] or floating-point pixels in [0, 1]"


def check_pixel_dtype(dtype):
    """The standard name of an image dtype `PixelScaling` accepts ("uint8" or a float); else a ValueError."""
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype != "uint8" and not keras.backend.is_float_dtype(dtype):
        raise ValueError(
            f"Expected images as {PIXEL_DTYPES}. Received: dtype {dtype}. Cast them first: "
            "`x.astype('uint8')` for values in [0, 255], or `x.astype('float32') / 255` for float pixels."
        )
    return dtype


@keras.saving.register_keras_serializable(package="keras_ssl")
class PixelScaling(keras.layers.Layer):
    """Maps uint8 pixels in [0, 255] to floats in [0, 1] and passes floating-point pixels (in [0, 1]) through.

    The choice is made by the input's dtype, so it holds inside compiled graphs
    and served signatures: a uint8 batch and the same batch divided by 255 as
    float32 give the same output. Other dtypes (int32, uint16, bool...) are
    refused with a ValueError, as their range is not known.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def call(self, images):
        dtype = check_pixel_dtype(images.dtype)
        if dtype == "uint8":
            return ops.cast(images, self.compute_dtype) / 255.0
        return ops.cast(images, self.compute_dtype)

    def compute_output_spec(self, images):
        check_pixel_dtype(images.dtype)
        return keras.KerasTensor(images.shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_ssl")
class ImageModel(keras.Model):
    """A model over images that takes uint8 pixels in [0, 255] or float pixels in [0, 1] and handles both.

    Wraps `model` (a Keras model whose one input is a batch of images, float
    pixels in [0, 1]): calling the wrapper runs `PixelScaling` on the batch,
    then `model`. It is a functional model with the same input shape, output
    shape and weights as `model`, so it fine-tunes, nests and pretrains as
    `model` does. A functional model built on it (`wrapper(keras.Input(...))`)
    converts its inputs to its own `Input`'s dtype first, as every Keras
    functional model does: give that `Input` `dtype="uint8"` to feed it uint8.

    Args:
        model: the image model, with one rank-4 floating-point input.
    """

    def __init__(self, model, name=None, **kwargs):
        inputs = getattr(model, "inputs", None)
        if not isinstance(model, keras.Model) or not inputs or len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [tuple(x.shape) for x in inputs] if inputs else "none (not a built functional model)"
            raise ValueError(
                "ImageModel expects a Keras model with one input, a batch of images (batch, height, width, "
                f"channels). Received: {type(model).__name__} with inputs {shapes}"
            )
        if not keras.backend.is_float_dtype(inputs[0].dtype):
            raise ValueError(
                f"ImageModel expects a model whose input is floating-point pixels in [0, 1]. Received: a model "
                f"whose input is {keras.backend.standardize_dtype(inputs[0].dtype)}"
            )
        images = keras.Input(shape=inputs[0].shape[1:], dtype=inputs[0].dtype, name="images")
        super().__init__(images, model(images), name=name or f"{model.name}_images", **kwargs)
        self.model = model
        self.scaling = PixelScaling(name="pixel_scaling")

    def call(self, inputs, training=None, mask=None):
        # A functional model converts its inputs to its Input's dtype before its graph runs, which would turn uint8
        # 0-255 into float 0-255: the scaling runs first, on the batch as it was given.
        return super().call(self.scaling(inputs), training=training, mask=mask)

    def get_config(self):
        return {
            "model": keras.saving.serialize_keras_object(self.model),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects=custom_objects)
        return cls(model, **config)
