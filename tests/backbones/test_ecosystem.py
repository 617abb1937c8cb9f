"""Ecosystem backbones: keras.applications and keras-hub networks fed [0, 1] images, pretrained, exported, reloaded."""

import importlib.util

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, methods
from keras_ssl.layers import ChannelAffine
from keras_ssl.testing import TINY_METHOD_KWARGS

HAS_KERAS_HUB = importlib.util.find_spec("keras_hub") is not None
needs_keras_hub = pytest.mark.skipif(
    not HAS_KERAS_HUB, reason='keras-hub is an optional extra (pip install "keras-ssl[hub]"); it is not installed'
)
SIZE = 32  # the smallest input keras.applications accepts


def images(n=4, size=SIZE, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype="float32")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def pretrain_export_reload(encoder, tmp_path):
    """SimCLR for 2 steps on uint8 images, then export and load: the reloaded encoder gives the same features."""
    before = [w.copy() for w in encoder.get_weights()]
    method = methods.SimCLR(encoder, projection_dim=8)
    data = np.random.default_rng(1).integers(0, 256, (16, SIZE, SIZE, 3), dtype="uint8")
    history = method.fit(data, batch_size=8, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, encoder.get_weights())), "pretraining changed nothing"
    restored = keras_ssl.load(keras_ssl.export(method, tmp_path / "bundle"))
    x = images()
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), encoder.predict(x, verbose=0), rtol=1e-4, atol=1e-5 * _scale(encoder, x)
    )
    # export puts uint8/float pixel handling (layers.ImageModel) in front; the wrapped encoder is inside it.
    assert isinstance(restored, keras_ssl.layers.ImageModel)
    inner = restored.model
    assert inner.get_layer("input_scaling").get_config()["scale"] == encoder.get_layer("input_scaling").scale
    return inner


def _scale(encoder, x):
    return max(1.0, float(np.abs(encoder.predict(x, verbose=0)).max()))


# --- ChannelAffine ---------------------------------------------------------------------------------------------


def test_channel_affine_maps_each_channel_and_round_trips_in_safe_mode():
    layer = ChannelAffine(scale=[1.0, 2.0, 3.0], offset=[0.5, 0.0, -1.0], channel_order=[2, 1, 0])
    x = images(n=2, size=3)
    expected = x[..., ::-1] * np.array([1.0, 2.0, 3.0]) + np.array([0.5, 0.0, -1.0])
    np.testing.assert_allclose(numpy(layer(x)), expected, rtol=1e-6)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer), safe_mode=True)
    np.testing.assert_allclose(numpy(clone(x)), expected, rtol=1e-6)


def test_channel_affine_refuses_bad_arguments():
    with pytest.raises(ValueError, match="finite number.*Received: scale=nan"):
        ChannelAffine(scale=float("nan"))
    with pytest.raises(ValueError, match="same number of channels"):
        ChannelAffine(scale=[1.0, 2.0], offset=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="channel indices"):
        ChannelAffine(channel_order=[0, -1, 2])
    with pytest.raises(ValueError, match="maps 3 channels.*Received: inputs with 1 channels"):
        ChannelAffine(scale=[1.0, 2.0, 3.0])(np.zeros((1, 2, 2, 1), "float32"))


# --- measuring preprocess_input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,order",
    [("resnet50", [2, 1, 0]), ("vgg16", [2, 1, 0]), ("densenet", None), ("mobilenet_v2", None), ("mobilenet_v3", None)],
)
def test_measured_map_of_x_equals_preprocess_input_of_255x(family, order):
    """caffe (BGR, mean), torch (mean/std), tf ([-1, 1]) and built-in (pass-through) modes, measured exactly."""
    preprocess_input = getattr(keras.applications, family).preprocess_input
    scale, offset, channel_order = backbones.measure_preprocess_input(preprocess_input)
    assert channel_order == order
    x = images(n=2, size=5, seed=3)
    got = numpy(ChannelAffine(scale, offset, channel_order)(x))
    np.testing.assert_allclose(got, preprocess_input(x * 255.0), rtol=1e-5, atol=1e-4)


def test_a_preprocess_input_that_is_not_a_per_channel_affine_map_is_refused():
    with pytest.raises(ValueError, match="output channel 0 depends on input channels \\[0, 1, 2\\]"):
        backbones.measure_preprocess_input(lambda x: np.repeat(x.mean(axis=-1, keepdims=True), 3, axis=-1))
    with pytest.raises(ValueError, match="not a per-channel affine map"):
        backbones.measure_preprocess_input(lambda x: np.sqrt(x))


# --- keras.applications ------------------------------------------------------------------------------------


def test_a_0_255_model_is_fed_what_its_preprocess_input_gives_not_0_1_images():
    """VGG16 ("caffe" mode): the inner network sees preprocess_input(255 x) (BGR, ImageNet mean removed), never x."""
    encoder = backbones.from_keras_applications("VGG16", input_shape=(SIZE, SIZE, 3))
    inner = encoder.get_layer("vgg16")
    x = images(n=2)
    fed = numpy(keras.Model(encoder.input, encoder.get_layer("input_scaling").output)(x))
    expected = keras.applications.vgg16.preprocess_input(x * 255.0)
    np.testing.assert_allclose(fed, expected, atol=1e-4)
    np.testing.assert_allclose(fed[..., 0], x[..., 2] * 255.0 - 103.939, atol=1e-4)  # blue first, mean removed
    assert fed.min() < -100 and fed.max() > 100  # 0-255 pixels, not [0, 1] images
    np.testing.assert_allclose(numpy(encoder(x)), numpy(inner(expected)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(numpy(encoder(x)), numpy(inner(x)), rtol=1e-3, atol=1e-5)


def test_a_model_that_scales_itself_is_fed_0_255_pixels():
    """MobileNetV3 rescales 0-255 inside (include_preprocessing): its Rescaling layer sees 255 x and gives [-1, 1]."""
    encoder = backbones.from_keras_applications("keras.applications.MobileNetV3Small", input_shape=(SIZE, SIZE, 3))
    inner = encoder.get_layer("MobileNetV3Small")
    rescaling = next(layer for layer in inner.layers if isinstance(layer, keras.layers.Rescaling))
    x = images()
    fed = numpy(keras.Model(encoder.input, encoder.get_layer("input_scaling").output)(x))
    np.testing.assert_allclose(fed, x * 255.0, rtol=1e-6)
    rescaled = numpy(keras.Model(inner.input, rescaling.output)(fed))
    assert rescaled.min() < -0.9 and rescaled.max() > 0.9 and np.abs(rescaled).max() <= 1.0 + 1e-6


@pytest.mark.large  # ~75 s on a loaded 2-core CPU, mostly the SavedModel export
@pytest.mark.savedmodel
def test_mobilenet_v3_small_pretrains_with_simclr_exports_and_reloads(tmp_path):
    encoder = backbones.from_keras_applications("MobileNetV3Small", input_shape=(SIZE, SIZE, 3), weights=None)
    assert encoder.output_shape == (None, 576)
    assert encoder.input.name == "images"
    pretrain_export_reload(encoder, tmp_path)


def test_a_model_built_elsewhere_needs_its_preprocess_input_and_must_be_pooled_rgb_features():
    pooled = keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="cannot tell which pixel scaling.*Received: model"):
        backbones.from_keras_applications(pooled)
    wrapped = backbones.from_keras_applications(pooled, preprocess_input="MobileNetV2")
    assert wrapped.get_layer("input_scaling").scale == [2.0, 2.0, 2.0]

    top = keras.applications.MobileNetV2(include_top=True, weights=None, input_shape=(32, 32, 3), classes=10)
    with pytest.raises(ValueError, match="classifier top.*include_top=False, pooling='avg'"):
        backbones.from_keras_applications(top, preprocess_input="MobileNetV2")
    unpooled = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="pooled features.*Received: .* outputs \\[\\(None, 1, 1, 1280\\)\\]"):
        backbones.from_keras_applications(unpooled, preprocess_input="MobileNetV2")
    gray = keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="3 channels last. Received: .* \\(None, 32, 32, 1\\)"):
        backbones.from_keras_applications(gray, preprocess_input="MobileNetV2")


def test_scaling_twice_or_not_at_all_is_refused():
    self_scaling = keras.applications.MobileNetV3Small(
        include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 3)
    )
    with pytest.raises(ValueError, match="scaled twice"):
        backbones.from_keras_applications(self_scaling, preprocess_input=keras.applications.resnet50.preprocess_input)
    with pytest.raises(ValueError, match="include_preprocessing=False.*preprocess_input="):
        backbones.from_keras_applications("MobileNetV3Small", input_shape=(32, 32, 3), include_preprocessing=False)
    bare = keras.applications.MobileNetV3Small(
        include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 3), include_preprocessing=False
    )
    with pytest.raises(ValueError, match="no Rescaling or Normalization layer"):
        backbones.from_keras_applications(bare, preprocess_input="MobileNetV3Small")
    # Stated explicitly (this family expects [-1, 1] without its Rescaling), it is accepted.
    wrapped = backbones.from_keras_applications(bare, preprocess_input=keras.applications.mobilenet_v2.preprocess_input)
    assert wrapped.get_layer("input_scaling").offset == [-1.0, -1.0, -1.0]


def test_unknown_names_and_wrong_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'ResNet51' is not a keras.applications model. Expected one of: .*ResNet50"):
        backbones.from_keras_applications("ResNet51")
    with pytest.raises(ValueError, match="include_top=False, pooling='avg'.*Received: include_top=True"):
        backbones.from_keras_applications("MobileNetV2", include_top=True)
    with pytest.raises(FileNotFoundError, match="names no file"):
        backbones.from_keras_applications("MobileNetV2", input_shape=(32, 32, 3), weights=str(tmp_path / "none.h5"))


def test_weights_from_a_path_start_the_wrapped_model(tmp_path):
    """Domain-adaptive pretraining starts from weights the user has: a no-top weights file of the same model."""
    source = keras.applications.MobileNetV2(
        include_top=False, pooling="avg", weights=None, input_shape=(32, 32, 3), alpha=0.35
    )
    path = str(tmp_path / "mobilenet_v2_no_top.weights.h5")
    source.save_weights(path)
    encoder = backbones.from_keras_applications("MobileNetV2", input_shape=(32, 32, 3), alpha=0.35, weights=path)
    x = images()
    np.testing.assert_allclose(
        numpy(encoder(x)), numpy(source(keras.applications.mobilenet_v2.preprocess_input(x * 255.0))), atol=1e-5
    )


# --- keras-hub -----------------------------------------------------------------------------------------------

# The smallest ResNet keras-hub builds (it fixes 64 filters first): two basic blocks, as a preset's config.
HUB_RESNET = {
    "module": "keras_hub.src.models.resnet.resnet_backbone",
    "class_name": "ResNetBackbone",
    "registered_name": "keras_hub>ResNetBackbone",
    "config": {
        "name": "resnet_backbone",
        "trainable": True,
        "input_conv_filters": [64],
        "input_conv_kernel_sizes": [7],
        "stackwise_num_filters": [64, 128],
        "stackwise_num_blocks": [1, 1],
        "stackwise_num_strides": [1, 2],
        "block_type": "basic_block",
        "use_pre_activation": False,
        "image_shape": [SIZE, SIZE, 3],
    },
}


@pytest.mark.large
@needs_keras_hub
@pytest.mark.savedmodel
def test_keras_hub_resnet_from_its_config_pretrains_with_simclr_exports_and_reloads(tmp_path):
    import keras_hub

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # the ImageNet statistics of keras-hub's ResNets
    converter = keras_hub.layers.ResNetImageConverter(
        scale=[1 / (255.0 * s) for s in std], offset=[-m / s for m, s in zip(mean, std)]
    )
    encoder = backbones.from_keras_hub(HUB_RESNET, image_converter=converter)
    assert encoder.output_shape == (None, 128)
    scaling = encoder.get_layer("input_scaling")
    np.testing.assert_allclose(scaling.scale, [1 / 0.229, 1 / 0.224, 1 / 0.225], rtol=1e-6)
    # The backbone sees what the converter makes of 0-255 pixels.
    x = images()
    expected = numpy(converter(x * 255.0))
    np.testing.assert_allclose(numpy(keras.Model(encoder.input, scaling.output)(x)), expected, rtol=1e-5, atol=1e-5)
    restored = pretrain_export_reload(encoder, tmp_path)
    # The bundle names no keras_hub class: it loads without keras-hub's code.
    assert not [
        layer for layer in restored.get_layer("resnet_backbone").layers if "keras_hub" in type(layer).__module__
    ]


@needs_keras_hub
def test_keras_hub_needs_an_explicit_scaling():
    with pytest.raises(ValueError, match="do not scale their inputs.*Received: image_converter=None, scale=None"):
        backbones.from_keras_hub(HUB_RESNET)
    with pytest.raises(ValueError, match="not both"):
        backbones.from_keras_hub(HUB_RESNET, image_converter={}, scale=1.0)
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        backbones.from_keras_hub(HUB_RESNET, scale=1.0, pooling="cls")
    wrapped = backbones.from_keras_hub(HUB_RESNET, scale=1.0, offset=0.0, pooling="max")
    x = images(n=2)
    np.testing.assert_allclose(
        numpy(wrapped(x)), numpy(wrapped.get_layer("resnet_backbone")(x)).max(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )


# Small heads, so one step costs seconds. MAE needs keras_ssl's ViT; autoencoders need a decoder for the encoder.
NEEDS_ITS_OWN_ENCODER = {"mae", "autoencoder", "denoising_autoencoder", "vae"}
SMALL_HEADS = {name: kwargs for name, kwargs in TINY_METHOD_KWARGS.items() if name not in NEEDS_ITS_OWN_ENCODER}


def test_every_encoder_agnostic_image_method_is_covered():
    assert set(methods.list_methods(data="images")) - NEEDS_ITS_OWN_ENCODER == set(SMALL_HEADS)


@pytest.mark.large  # ~70 s for all eight under TensorFlow here
@needs_keras_hub
@pytest.mark.parametrize("method_name", sorted(SMALL_HEADS))
def test_every_image_method_trains_a_wrapped_keras_hub_backbone(method_name):
    """An open input size, so DINO's smaller local crops pass; one step, a finite loss, changed weights."""
    config = {**HUB_RESNET, "config": {**HUB_RESNET["config"], "image_shape": [None, None, 3]}}
    encoder = backbones.from_keras_hub(config, scale=1.0, offset=0.0)
    before = [w.copy() for w in encoder.get_weights()]
    method = methods.get_method(method_name)(encoder, **SMALL_HEADS[method_name])
    data = np.random.default_rng(0).integers(0, 256, (16, SIZE, SIZE, 3), dtype="uint8")
    history = method.fit(data, batch_size=8, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, encoder.get_weights()))


@needs_keras_hub
@pytest.mark.savedmodel
def test_a_keras_hub_vit_pools_its_tokens_and_warns_that_its_bundle_would_be_refused(tmp_path):
    """keras-hub's ViT has layers of keras-hub's own classes, which keras_ssl.load's safety scan refuses: a warning."""
    import keras_hub

    vit = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    with pytest.warns(UserWarning, match="outside Keras.*ViT.*Save the encoder's weights"):
        encoder = backbones.from_keras_hub(vit, scale=2.0, offset=-1.0)
    x = images(n=2)
    tokens = numpy(vit(x * 2.0 - 1.0))  # (2, 1 + 16 patches, 8)
    np.testing.assert_allclose(numpy(encoder(x)), tokens.mean(axis=1), rtol=1e-4, atol=1e-5)
    from keras_ssl.bundle import UnsafeBundleError

    with pytest.raises(UnsafeBundleError, match="keras_hub"):
        keras_ssl.load(keras_ssl.export(encoder, tmp_path / "bundle"))
