"""Tests for keras_ssl.backbones: output shapes, stems, config round trips, argument checks."""

import keras
import numpy as np
import pytest

from keras_ssl.backbones import MLP, ConvNet, ResNet, ResNet18, ResNet34, ResNet50

WIDTH = 0.125  # 8 channels in the first stage: CPU-sized


def images(n=2, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def assert_round_trip(model, x, rebuild):
    """`rebuild(model)` gives an architecture-equal model that matches once weights are copied."""
    before = predict(model, x)
    clone = rebuild(model)
    assert clone is not model
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    # Fresh random initialisation: the clone does not already agree.
    assert not np.allclose(predict(clone, x), before, atol=1e-6)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(predict(clone, x), before, rtol=1e-5, atol=1e-6)


def from_config(model):
    return keras.Model.from_config(model.get_config())


def via_serialization(model):
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model), safe_mode=True)


def randomize_batchnorm_statistics(model, seed=0):
    """Non-trivial moving statistics, so inference-mode BatchNorm is not the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(scale=0.1, size=channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=channels).astype("float32"))


@pytest.mark.parametrize(
    "builder,features",
    [(ResNet18, 512), (ResNet34, 512), (ResNet50, 2048)],
)
def test_resnet_output_shape(builder, features):
    model = builder(width=WIDTH, stem="cifar")
    out = predict(model, images())
    assert out.shape == (2, int(features * WIDTH))
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    # Global average pooling after ReLU: non-negative, and not all zero.
    assert out.min() >= 0.0 and out.max() > 0.0
    # Different images give different features.
    assert not np.allclose(out[0], out[1])


def test_resnet_default_names_and_stems():
    assert ResNet18(width=WIDTH).name == "resnet18_cifar"
    assert ResNet50(width=WIDTH).name == "resnet50_imagenet"  # ResNet-50 defaults to the ImageNet stem
    assert ResNet(34, stem="imagenet", width=WIDTH, name="enc").name == "enc"


def _spatial(model, layer_name, x):
    sub = keras.Model(model.input, model.get_layer(layer_name).output)
    return predict(sub, x).shape


def test_cifar_stem_keeps_resolution():
    model = ResNet18(stem="cifar", width=WIDTH)
    x = images()
    assert _spatial(model, "stem_relu", x) == (2, 32, 32, 8)
    names = {layer.name for layer in model.layers}
    assert "stem_pool" not in names
    # Three stride-2 stages after the stem: 32 -> 4.
    assert _spatial(model, "stage4_block2_out", x) == (2, 4, 4, 64)


def test_imagenet_stem_reduces_resolution_by_four():
    model = ResNet18(stem="imagenet", width=WIDTH)
    x = images()
    assert _spatial(model, "stem_relu", x) == (2, 16, 16, 8)  # stride-2 conv
    assert _spatial(model, "stem_pool", x) == (2, 8, 8, 8)  # then stride-2 max-pool
    assert _spatial(model, "stage4_block2_out", x) == (2, 1, 1, 64)
    assert predict(model, x).shape == (2, 64)


def test_resnet_accepts_other_image_sizes():
    model = ResNet18(width=WIDTH)
    assert predict(model, images(n=3, size=16)).shape == (3, 64)
    assert predict(model, images(n=1, size=24)).shape == (1, 64)


def test_resnet18_from_config_round_trip():
    model = ResNet18(width=WIDTH, stem="cifar")
    randomize_batchnorm_statistics(model)
    assert_round_trip(model, images(), from_config)


def test_resnet50_serialization_round_trip_safe_mode():
    model = ResNet50(width=WIDTH, stem="imagenet", input_shape=(32, 32, 3))
    randomize_batchnorm_statistics(model)
    assert_round_trip(model, images(), via_serialization)


def test_convnet_shapes():
    model = ConvNet(filters=(4, 8), input_shape=(8, 8, 1))
    out = predict(model, images(n=2, size=8, channels=1))
    assert out.shape == (2, 8)
    assert np.all(np.isfinite(out))
    # One pooling between the two stages: 8x8 -> 4x4.
    assert _spatial(model, "stage2_conv2_relu", images(n=2, size=8, channels=1)) == (2, 4, 4, 8)
    assert tuple(ConvNet(filters=(4,), input_shape=(None, None, 1)).outputs[0].shape) == (None, 4)


def test_convnet_round_trip():
    model = ConvNet(filters=(4, 8), input_shape=(8, 8, 1))
    randomize_batchnorm_statistics(model)
    x = images(n=2, size=8, channels=1)
    assert_round_trip(model, x, from_config)


def test_mlp_shapes_and_batch_norm_switch():
    x = np.random.default_rng(0).normal(size=(2, 6)).astype("float32")
    model = MLP(input_dim=6, hidden_dims=(6, 6), output_dim=3)
    assert predict(model, x).shape == (2, 3)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 2
    plain = MLP(input_dim=6, hidden_dims=(6,), output_dim=3, batch_norm=False)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    assert predict(plain, x).shape == (2, 3)
    # No hidden layers: a single linear map.
    linear = MLP(input_dim=6, hidden_dims=(), output_dim=3)
    assert [tuple(w.shape) for w in linear.weights] == [(6, 3), (3,)]
    assert predict(linear, x).shape == (2, 3)


def test_mlp_round_trip():
    model = MLP(input_dim=6, hidden_dims=(6,), output_dim=3)
    randomize_batchnorm_statistics(model)
    x = np.random.default_rng(1).normal(size=(2, 6)).astype("float32")
    assert_round_trip(model, x, via_serialization)


BAD_ARGUMENTS = [
    (lambda: ResNet(depth=20, width=WIDTH), "depth=20"),
    (lambda: ResNet18(stem="foo", width=WIDTH), "stem='foo'"),
    (lambda: ResNet18(width=0), "width=0"),
    (lambda: ResNet18(width=-0.5), "width=-0.5"),
    (lambda: ResNet34(width=WIDTH, input_shape=(32, 32)), "input_shape=(32, 32)"),
    (lambda: ConvNet(filters=()), "filters=()"),
    (lambda: ConvNet(filters=(4, 0)), "filters=0"),
    (lambda: ConvNet(filters=(4,), input_shape=(8, 8)), "input_shape=(8, 8)"),
    (lambda: MLP(input_dim=0), "input_dim=0"),
    (lambda: MLP(input_dim=4, output_dim=-1), "output_dim=-1"),
    (lambda: MLP(input_dim=4, hidden_dims=(8, 0)), "hidden_dims=0"),
]


def test_bad_arguments_raise():
    for build, fragment in BAD_ARGUMENTS:
        with pytest.raises(ValueError, match="Received") as info:
            build()
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("hidden_dropout", [False, True])
def test_bert_blocks_drop_mlp_outputs_but_not_hidden_units(hidden_dropout):
    """BERT drops the MLP's output only; ViT also its hidden units. Dropping only the output keeps each element
    either 0 or the undropped value / (1 - rate); dropping the hidden units too changes the values themselves."""
    from keras_ssl.backbones import TransformerEncoder
    from keras_ssl.layers.transformer import TransformerBlock

    encoder = TransformerEncoder(50, "tiny", max_length=8, dim=16, num_heads=2)
    assert not any(layer.get_config()["mlp_hidden_dropout"] for layer in encoder.layers if "block" in layer.name)
    block = TransformerBlock(2, 32, dropout=0.5, mlp_hidden_dropout=hidden_dropout)
    x = keras.random.normal((2, 8, 16), seed=1)
    block.build(x.shape)
    kept = keras.ops.convert_to_numpy(block.mlp_out(block.mlp_in(x))) / 0.5
    dropped = keras.ops.convert_to_numpy(block._mlp(x, training=True))
    output_only = np.isclose(dropped, 0.0) | np.isclose(dropped, kept, rtol=1e-5, atol=1e-6)
    assert output_only.all() != hidden_dropout
