"""Backbones from the ecosystem: keras.applications models and keras-hub image backbones.

keras_ssl's augmenters emit float images in [0, 1]. Networks from the ecosystem
expect other values: a keras.applications model expects 0-255 pixels and the
scaling of its family's `preprocess_input` ("caffe": BGR minus the ImageNet
mean; "torch": ImageNet mean and std on [0, 1]; "tf": [-1, 1]; or, for the
families with a built-in `Rescaling`/`Normalization` layer, the 0-255 pixels
themselves), and a keras-hub backbone expects what its `ImageConverter`
produces. Each wrapper here puts that scaling in front of the network as one
`keras_ssl.layers.ChannelAffine` layer, so the wrapped model takes [0, 1]
images like every keras_ssl backbone, and its config holds only Keras classes
and numbers.
"""

import copy
import os
import sys
import warnings

import keras
import numpy as np

from keras_ssl.backbones.validation import check_choice
from keras_ssl.layers.preprocessing import ChannelAffine

APPLICATIONS_PREFIX = "keras.applications."
# Layers that take a keras_ssl [0, 1] image to what the network expects, and the pooling of keras-hub outputs.
SCALING_LAYER = "input_scaling"
POOLINGS = ("avg", "max")
# A keras.applications family whose preprocess_input leaves pixels unchanged scales them inside the model.
BUILT_IN_SCALING = ("Rescaling", "Normalization")


def from_keras_applications(name_or_model, input_shape=None, weights=None, preprocess_input=None, name=None, **kwargs):
    """A keras.applications model as a keras_ssl backbone that takes [0, 1] images.

    Args:
        name_or_model: the name of a keras.applications constructor
            (`"MobileNetV3Small"` or `"keras.applications.MobileNetV3Small"`),
            built here with `include_top=False, pooling="avg"`; or a model
            already built that way (e.g. with your own weights loaded), in
            which case `preprocess_input` must be given.
        input_shape: `(height, width, 3)`; default: the constructor's (open
            sizes for `weights=None`). Give a fixed size to export under JAX.
        weights: `None` (random), `"imagenet"` (Keras downloads them) or the
            path of a weights file of the same model built with
            `include_top=False`. Only with a name.
        preprocess_input: the `preprocess_input` function of the model's
            family (e.g. `keras.applications.resnet50.preprocess_input`) or a
            constructor name whose family's function to use. Default: the
            named constructor's own. keras_ssl measures it on probe pixels
            into a per-channel affine map (it refuses a function that is not
            one) and applies that map to `255 * images`.
        name: the wrapper model's name; default `"<model name>_ssl"`.
        **kwargs: more arguments of the constructor (e.g. `alpha`), only
            with a name. With `include_preprocessing=False` give
            `preprocess_input` yourself.

    Returns:
        A functional `keras.Model`: input `images` (float, [0, 1]) ->
        `ChannelAffine` (named `input_scaling`) -> the keras.applications
        model -> its pooled features.

    Raises:
        ValueError: an unknown name; a model with a classifier top
            (`include_top=True`), an unpooled output, or not 3 input channels;
            a `preprocess_input` that is not a per-channel affine map, or that
            disagrees with the model's own `Rescaling`/`Normalization` layer.
    """
    if isinstance(name_or_model, str):
        constructor_name = _applications_name(name_or_model)
        constructor = _applications_constructor(constructor_name)
        for fixed in ("include_top", "pooling"):
            if fixed in kwargs:
                raise ValueError(
                    f"from_keras_applications builds the model with include_top=False, pooling='avg' (a pooled "
                    f"feature vector). Received: {fixed}={kwargs[fixed]!r}"
                )
        if kwargs.get("include_preprocessing") is False and preprocess_input is None:
            raise ValueError(
                f"{constructor_name}(include_preprocessing=False) expects pixels scaled outside the model, as its "
                "documentation says; pass that scaling as `preprocess_input=` (a function of 0-255 pixels). "
                "Received: include_preprocessing=False and no preprocess_input"
            )
        if isinstance(weights, os.PathLike):
            weights = os.fspath(weights)
        if weights is not None and not isinstance(weights, str):
            raise ValueError(f"`weights` must be None, 'imagenet' or a file path. Received: weights={weights!r}")
        if weights not in (None, "imagenet") and not os.path.isfile(weights):
            raise FileNotFoundError(
                f"`weights` names no file: {weights!r} (expected None, 'imagenet' or the path of a "
                f"{constructor_name}(include_top=False) weights file)"
            )
        if input_shape is not None:
            input_shape = _image_shape(input_shape)
        model = constructor(include_top=False, pooling="avg", weights=weights, input_shape=input_shape, **kwargs)
        if preprocess_input is None:
            preprocess_input = _family_preprocess_input(constructor, constructor_name)
    elif isinstance(name_or_model, keras.Model):
        if weights is not None or kwargs:
            given = ["weights"] * (weights is not None) + sorted(kwargs)
            raise ValueError(
                "weights and constructor arguments apply when from_keras_applications builds the model from a "
                f"name; load weights into a model you built yourself. Received a model and {', '.join(given)}"
            )
        if preprocess_input is None:
            raise ValueError(
                "from_keras_applications cannot tell which pixel scaling a model built elsewhere expects: pass its "
                "family's function, e.g. preprocess_input=keras.applications.resnet50.preprocess_input, or the "
                f"constructor's name, preprocess_input='ResNet50'. Received: model {name_or_model.name!r} and no "
                "preprocess_input"
            )
        model = name_or_model
    else:
        raise ValueError(
            "`name_or_model` must be a keras.applications constructor name (e.g. 'MobileNetV3Small') or a "
            f"keras.Model. Received: {name_or_model!r}"
        )
    if isinstance(preprocess_input, str):
        constructor_name = _applications_name(preprocess_input)
        preprocess_input = _family_preprocess_input(_applications_constructor(constructor_name), constructor_name)
    if not callable(preprocess_input):
        raise ValueError(f"`preprocess_input` must be a function or a name. Received: {preprocess_input!r}")
    shape = _check_pooled_rgb_model(model, input_shape)
    scale, offset, order = measure_preprocess_input(preprocess_input)
    _check_scaling_matches_model(model, scale, offset, order)
    return _wrap(model, shape, scale, offset, order, name or f"{model.name}_ssl")


def from_keras_hub(backbone, image_converter=None, scale=None, offset=None, input_shape=None, pooling="avg", name=None):
    """A keras-hub image backbone as a keras_ssl backbone that takes [0, 1] images.

    keras-hub is an optional extra (`pip install "keras-ssl[hub]"`).

    Args:
        backbone: a `keras_hub.models.Backbone` (built from a config, or with
            `Backbone.from_preset(...)` to start from its weights), or its
            serialised config (`keras.saving.serialize_keras_object(backbone)`,
            the `config.json` of a keras-hub preset).
        image_converter: the backbone's `keras_hub.layers.ImageConverter`
            (an instance or its serialised config), whose `scale` and
            `offset` (on 0-255 pixels) keras_ssl applies to `255 * images`.
        scale, offset: instead of `image_converter`, the map from keras_ssl's
            [0, 1] images to what the backbone expects (one float or one per
            channel): `scale=1.0, offset=0.0` feeds the [0, 1] images as
            they are. keras-hub backbones do not scale their inputs, so one
            of the two ways must be given.
        input_shape: `(height, width, channels)`, to fix sizes the backbone
            leaves open (needed to export under JAX).
        pooling: `"avg"` or `"max"` over the spatial positions (or tokens)
            of the backbone's output; a pooled output passes through.
        name: the wrapper model's name; default `"<backbone name>_ssl"`.

    Returns:
        A functional `keras.Model`: input `images` (float, [0, 1]) ->
        `ChannelAffine` (named `input_scaling`) -> the backbone's layers
        (rebuilt as a plain functional model) -> pooling.

    Raises:
        ImportError: keras-hub is not installed.
        ValueError: no scaling or two; an input that is not one image batch
            (channels last); an output that is not one tensor of rank 2-4.
    """
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            'from_keras_hub needs keras-hub, an optional extra: pip install "keras-ssl[hub]" (or keras-hub).'
        ) from error
    check_choice("pooling", pooling, POOLINGS)
    if isinstance(backbone, dict):
        backbone = keras.saving.deserialize_keras_object(copy.deepcopy(backbone))
    if not isinstance(backbone, keras_hub.models.Backbone):
        raise ValueError(
            f"`backbone` must be a keras_hub.models.Backbone or its serialised config. Received: {backbone!r}"
        )
    if (image_converter is None) == (scale is None and offset is None):
        raise ValueError(
            "keras-hub backbones do not scale their inputs: they expect what their ImageConverter produces. Pass "
            "either image_converter= (e.g. keras_hub.layers.ImageConverter.from_preset(...)) or scale=/offset= "
            "(the map from [0, 1] images; scale=1.0, offset=0.0 feeds them as they are), not both. Received: "
            f"image_converter={image_converter!r}, scale={scale!r}, offset={offset!r}"
        )
    if image_converter is not None:
        if isinstance(image_converter, dict):
            image_converter = keras.saving.deserialize_keras_object(copy.deepcopy(image_converter))
        if not isinstance(image_converter, keras_hub.layers.ImageConverter):
            raise ValueError(
                "`image_converter` must be a keras_hub.layers.ImageConverter or its serialised config. "
                f"Received: {image_converter!r}"
            )
        # The converter maps 0-255 pixels: x * scale + offset (None skips a step). Ours are x / 255.
        converter_scale = 1.0 if image_converter.scale is None else image_converter.scale
        scale = [255.0 * float(s) for s in np.ravel(converter_scale)]
        offset = [float(o) for o in np.ravel(0.0 if image_converter.offset is None else image_converter.offset)]
    scale = [float(s) for s in np.ravel(1.0 if scale is None else scale)]
    offset = [float(o) for o in np.ravel(0.0 if offset is None else offset)]
    if len(backbone.inputs) != 1 or len(backbone.outputs) != 1:
        raise ValueError(
            f"from_keras_hub wraps a backbone with one image input and one output. Received: {backbone.name!r} "
            f"with {len(backbone.inputs)} inputs and {len(backbone.outputs)} outputs"
        )
    if len(backbone.inputs[0].shape) != 4 or getattr(backbone, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            "from_keras_hub wraps image backbones taking (batch, height, width, channels) inputs, channels last. "
            f"Received: {backbone.name!r} with inputs of shape {tuple(backbone.inputs[0].shape)}"
        )
    # A plain functional model of the same layers (and weights): its config names no keras_hub model class.
    # Single tensors, not one-item lists: called on a list, the network would return a list.
    network = keras.Model(backbone.inputs[0], backbone.outputs[0], name=backbone.name)
    classes = {f"{type(layer).__module__}.{type(layer).__name__}" for layer in _layers(network)}
    foreign = sorted(c for c in classes if not c.startswith(("keras.", "keras_ssl.")))
    if foreign:
        warnings.warn(
            f"{backbone.name!r} has layers of classes outside Keras ({', '.join(foreign)}): it trains, but "
            "keras_ssl.load refuses a bundle naming them (its safety scan allows only keras and keras_ssl "
            "classes). Save the encoder's weights instead.",
            stacklevel=2,
        )
    shape = tuple(network.inputs[0].shape[1:])
    if input_shape is not None:
        given = _image_shape(input_shape)
        if any(want is not None and want != got for want, got in zip(shape, given)):
            raise ValueError(
                f"input_shape {given} conflicts with the backbone's inputs {shape}. Received: input_shape={input_shape}"
            )
        shape = given
    channels = shape[-1]
    if channels is not None and max(len(scale), len(offset)) not in (1, channels):
        raise ValueError(
            f"The scaling gives {max(len(scale), len(offset))} channel values for a backbone with {channels} "
            f"input channels. Received: scale={scale}, offset={offset}"
        )
    outputs_rank = len(network.outputs[0].shape)
    if outputs_rank not in (2, 3, 4):
        raise ValueError(
            f"from_keras_hub pools outputs of shape (batch, features), (batch, tokens, features) or (batch, height, "
            f"width, features). Received: {backbone.name!r} with outputs of shape {tuple(network.outputs[0].shape)}"
        )
    inputs = keras.Input(shape=shape, name="images")
    x = ChannelAffine(scale=scale, offset=offset, name=SCALING_LAYER)(inputs)
    x = network(x)
    pool = {
        (3, "avg"): keras.layers.GlobalAveragePooling1D,
        (3, "max"): keras.layers.GlobalMaxPooling1D,
        (4, "avg"): keras.layers.GlobalAveragePooling2D,
        (4, "max"): keras.layers.GlobalMaxPooling2D,
    }.get((outputs_rank, pooling))
    if pool is not None:
        x = pool(name="pool")(x)
    return keras.Model(inputs, x, name=name or f"{backbone.name}_ssl")


def measure_preprocess_input(preprocess_input, channels=3):
    """Measures a `preprocess_input` function of 0-255 pixels as a map of [0, 1] images.

    Returns `(scale, offset, channel_order)` such that
    `ChannelAffine(scale, offset, channel_order)(x)` equals
    `preprocess_input(255 * x)` (`channel_order` is None when the channels
    keep their order). Raises ValueError for a function that is not a
    per-channel affine map (checked on random pixels).
    """
    probes = np.zeros((channels + 1, 1, 1, channels), "float64")
    for c in range(channels):
        probes[c + 1, 0, 0, c] = 255.0
    out = _apply(preprocess_input, probes)
    if out.shape != probes.shape:
        raise ValueError(f"preprocess_input must keep the shape of the images. Received: {probes.shape} -> {out.shape}")
    base = out[0, 0, 0]
    response = out[1:, 0, 0] - base  # response[j, i]: output channel i per full-scale input channel j
    order, scale = [], []
    for i in range(channels):
        sources = np.flatnonzero(np.abs(response[:, i]) > 1e-6 * max(1.0, float(np.abs(response).max())))
        if len(sources) != 1:
            raise ValueError(
                "preprocess_input must map each output channel from one input channel (a per-channel affine map). "
                f"Received: output channel {i} depends on input channels {sources.tolist()}"
            )
        order.append(int(sources[0]))
        scale.append(float(response[sources[0], i]))
    offset = [float(b) for b in base]
    layer = ChannelAffine(scale=scale, offset=offset, channel_order=order)
    rng = np.random.default_rng(0)
    x = rng.random((4, 5, 5, channels), dtype="float32")
    expected = _apply(preprocess_input, x.astype("float64") * 255.0)
    got = keras.ops.convert_to_numpy(layer(x))
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    if not np.allclose(got, expected, rtol=0, atol=tolerance):
        raise ValueError(
            "preprocess_input is not a per-channel affine map of the pixels (its response to random pixels differs "
            f"from the one measured on single channels by up to {float(np.abs(got - expected).max()):.3g}); wrap "
            "the network yourself behind a layer that reproduces it"
        )
    return scale, offset, (None if order == list(range(channels)) else order)


# --- helpers ----------------------------------------------------------------------------------------------


def _applications_name(name):
    return name.removeprefix(APPLICATIONS_PREFIX)


def _applications_constructor(name):
    constructor = getattr(keras.applications, name, None) if name.isidentifier() else None
    if constructor is None or not callable(constructor) or not name[:1].isupper():
        known = sorted(
            n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n))
        )
        raise ValueError(f"{name!r} is not a keras.applications model. Expected one of: {', '.join(known)}")
    return constructor


def _family_preprocess_input(constructor, name):
    module = sys.modules.get(getattr(constructor, "__module__", ""), None)
    function = getattr(module, "preprocess_input", None)
    if function is None:
        raise ValueError(
            f"Found no preprocess_input next to keras.applications.{name}; pass `preprocess_input=` explicitly"
        )
    return function


def _apply(preprocess_input, pixels):
    out = preprocess_input(np.array(pixels, "float64", copy=True))  # some modes write into a numpy input
    return np.asarray(keras.ops.convert_to_numpy(out), "float64")


def _image_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) != 3 or any(d is not None and (not isinstance(d, int) or d <= 0) for d in shape):
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape!r}")
    return shape


def _check_pooled_rgb_model(model, input_shape):
    """The model's input shape, once it is known to take RGB images and return pooled features."""
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(
            "from_keras_applications wraps models with one (batch, height, width, 3) image input. Received: "
            f"{model.name!r} with inputs {[tuple(i.shape) for i in model.inputs]}"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if shape[-1] != 3:
        raise ValueError(
            "keras.applications models and their preprocess_input take RGB images, 3 channels last. Received: "
            f"{model.name!r} with inputs of shape {(None, *shape)}"
        )
    if any(layer.name == "predictions" for layer in model.layers):
        raise ValueError(
            f"{model.name!r} has its classifier top (a 'predictions' layer): build it with include_top=False, "
            "pooling='avg' so that it returns features"
        )
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(
            "from_keras_applications expects pooled features of shape (batch, features): build the model with "
            f"include_top=False, pooling='avg'. Received: {model.name!r} with outputs "
            f"{[tuple(o.shape) for o in model.outputs]}"
        )
    if input_shape is not None:
        given = _image_shape(input_shape)
        if any(want is not None and want != got for want, got in zip(shape, given)):
            raise ValueError(f"input_shape {given} conflicts with the model's inputs {shape}")
        shape = given
    return shape


def _check_scaling_matches_model(model, scale, offset, order):
    """Refuses to scale twice, or not at all, where the model has (or lacks) its own scaling layer."""
    passes_pixels = order is None and np.allclose(scale, 255.0) and np.allclose(offset, 0.0)
    built_in = [layer.name for layer in _layers(model) if type(layer).__name__ in BUILT_IN_SCALING]
    if passes_pixels and not built_in:
        raise ValueError(
            f"preprocess_input leaves the 0-255 pixels unchanged, which is how families that scale inside the "
            f"model (include_preprocessing=True) work, but {model.name!r} has no Rescaling or Normalization "
            "layer: it was built with include_preprocessing=False; pass the scaling it expects as preprocess_input"
        )
    if built_in and not passes_pixels:
        raise ValueError(
            f"{model.name!r} scales its input itself (layers {built_in}) but preprocess_input rescales the pixels "
            "too: the model would see them scaled twice. Pass its own family's preprocess_input"
        )


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def _wrap(model, shape, scale, offset, order, name):
    inputs = keras.Input(shape=shape, name="images")
    scaled = ChannelAffine(scale=scale, offset=offset, channel_order=order, name=SCALING_LAYER)(inputs)
    return keras.Model(inputs, model(scaled), name=name)
