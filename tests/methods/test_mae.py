"""MAE and its ViT encoder: masking, patch targets, training on real images, bad input."""

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, layers, methods
from keras_ssl.testing import cifar10_sample


def tiny_vit(**kwargs):
    kwargs = {"dim": 32, "depth": 2, "num_heads": 2, **kwargs}
    return backbones.ViT("nano", image_size=32, **kwargs)


def tiny_mae(encoder=None, **kwargs):
    kwargs = {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2, "seed": 0, **kwargs}
    return methods.MAE(encoder or tiny_vit(), **kwargs)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes(pool):
    encoder = tiny_vit(pool=pool, positions="learned")
    assert encoder.output_shape == (None, 32)
    assert encoder.get_layer("patch_embed").compute_output_shape((None, 32, 32, 3)) == (None, 64, 32)
    assert encoder.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 32)
    large = backbones.ViT("tiny", image_size=224, depth=1)
    assert large.get_layer("patch_embed").patch_size == 16 and large.output_shape == (None, 192)


def test_patchify_round_trips_and_orders_patches_row_major():
    x = np.arange(2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)
    patches = keras.ops.convert_to_numpy(layers.patchify(x, 4))
    assert patches.shape == (2, 4, 48)
    np.testing.assert_array_equal(patches[:, 1].reshape(2, 4, 4, 3), x[:, :4, 4:])  # top-right patch
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layers.unpatchify(patches, 4, (2, 2), 3)), x)


def test_sincos_positions_follow_the_mae_formula():
    table = layers.sincos_position_embedding((2, 3), 8)
    assert table.shape == (6, 8)
    # Patch (row 1, col 2) is index 5: row half [sin(1*w), cos(1*w)], col half [sin(2*w), cos(2*w)], w = [1, 1e-2].
    w = np.array([1.0, 0.01])
    np.testing.assert_allclose(
        table[5], np.concatenate([np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)]), rtol=1e-6
    )


@pytest.mark.parametrize("mask_ratio", [0.25, 0.75, 0.9])
def test_the_mask_ratio_is_honoured_per_sample(mask_ratio):
    mae = tiny_mae(mask_ratio=mask_ratio)
    out = mae.masked_pass(keras.ops.zeros((16, 32, 32, 3)))
    mask = keras.ops.convert_to_numpy(out["mask"])
    hidden = 64 - int(64 * (1 - mask_ratio))
    np.testing.assert_array_equal(mask.sum(axis=1), np.full(16, hidden))
    assert len({row.tobytes() for row in mask}) == 16  # each sample draws its own patches
    assert keras.ops.convert_to_numpy(out["prediction"]).shape == (16, 64, 4 * 4 * 3)


def test_targets_are_normalised_per_patch():
    (x, _), _ = cifar10_sample(num_train=4)
    out = tiny_mae(norm_pix_loss=True).masked_pass(x)
    target = keras.ops.convert_to_numpy(out["target"])
    # The augmented image's 4x4 patches, each standardised by its own mean and variance (+1e-6, as in MAE).
    patches = (
        keras.ops.convert_to_numpy(out["images"])
        .reshape(4, 8, 4, 8, 4, 3)
        .transpose(0, 1, 3, 2, 4, 5)
        .reshape(4, 64, 48)
    )
    expected = (patches - patches.mean(-1, keepdims=True)) / np.sqrt(patches.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(target, expected, atol=2e-3)
    assert np.mean(np.abs(target.std(-1) - 1) < 0.05) > 0.9


def test_a_few_steps_reduce_the_masked_patch_loss_on_cifar():
    (x, _), _ = cifar10_sample(num_train=64)
    mae = tiny_mae(
        augmenter=keras_ssl.augment.ImageAugmenter(
            crop_scale=(1.0, 1.0), flip=False, jitter_strength=0, grayscale_probability=0
        )
    )
    mae.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = mae.fit(x, batch_size=16, epochs=6, verbose=0).history
    assert history["loss"][-1] < 0.85 * history["loss"][0]
    assert history["psnr"][-1] > history["psnr"][0]


def test_reconstruct_pastes_visible_patches_and_marks_the_hidden_ones():
    (x, _), _ = cifar10_sample(num_train=3)
    out = tiny_mae().reconstruct(x)
    mask = out["mask"]
    assert mask.shape == (3, 32, 32, 1) and mask.mean() == pytest.approx(0.75)
    visible = np.broadcast_to(mask == 0, out["inputs"].shape)
    np.testing.assert_allclose(out["reconstructions"][visible], out["inputs"][visible], atol=1e-6)
    assert np.all(out["corrupted"][~visible] == 0.5)


@pytest.mark.large
@pytest.mark.savedmodel
def test_the_pretrained_vit_exports_reloads_and_fine_tunes(tmp_path):
    (x, y), _ = cifar10_sample(num_train=16)
    mae = tiny_mae()
    mae.fit(x, batch_size=8, epochs=1, verbose=0)
    restored = keras_ssl.load(keras_ssl.export(mae, tmp_path / "vit"))
    np.testing.assert_allclose(restored.predict(x / 255.0, verbose=0), mae.predict(x, verbose=0), atol=1e-4)
    classifier = keras.Sequential([keras.Input((32, 32, 3)), restored, keras.layers.Dense(10)])
    classifier.compile(keras.optimizers.AdamW(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.array(w) for w in restored.trainable_weights]
    classifier.fit(x.astype("float32") / 255.0, y, epochs=1, verbose=0)
    assert any(not np.allclose(b, np.array(w)) for b, w in zip(before, restored.trainable_weights))


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="divisible by `patch_size`. Received: image_size=30, patch_size=4"):
        backbones.ViT("nano", image_size=30, patch_size=4)
    for ratio in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"`mask_ratio` must be in \(0, 1\). Received: mask_ratio={ratio}"):
            tiny_mae(mask_ratio=ratio)
    with pytest.raises(ValueError, match="leaves no visible patch out of 64"):
        tiny_mae(mask_ratio=0.999)
    with pytest.raises(ValueError, match="MAE needs a keras_ssl.backbones.ViT encoder"):
        methods.MAE(backbones.ConvNet((4,), input_shape=(32, 32, 3)))
    with pytest.raises(ValueError, match="`dim` must be divisible by `num_heads`"):
        backbones.ViT("nano", dim=30, num_heads=4)
    with pytest.raises(ValueError, match="`size` must be one of"):
        backbones.ViT("huge")
    (x, _), _ = cifar10_sample(num_train=4)
    with pytest.raises(
        ValueError, match=r"takes inputs of shape \(None, 32, 32, 3\). Received inputs of shape \(None, 16, 16, 3\)"
    ):
        tiny_mae().fit(x[:, :16, :16], batch_size=2, verbose=0)
