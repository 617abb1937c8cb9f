"""Tests for keras_ssl.augment.image on a few real CIFAR-10 images.

All batches are (8, 32, 32, C) where possible: JAX compiles every eager
primitive once per shape, so reusing one shape keeps the suite fast.
"""

import keras
import numpy as np
import pytest

from keras_ssl.augment import (
    GaussianBlur,
    ImageAugmenter,
    MultiViewAugmenter,
    RandomApply,
    RandomResizedCrop,
    Solarize,
    simclr_augmenter,
)
from keras_ssl.testing import cifar10_sample

BATCH = 8


@pytest.fixture
def cifar_uint8():
    (x, _), _ = cifar10_sample(num_train=BATCH, num_test=1)
    assert x.shape == (BATCH, 32, 32, 3) and x.dtype == np.uint8
    return x


@pytest.fixture
def cifar_float(cifar_uint8):
    return cifar_uint8.astype("float32") / 255.0


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def assert_valid_view(view, shape):
    v = numpy(view)
    assert v.shape == shape
    assert v.dtype == np.float32
    assert np.all(np.isfinite(v))
    assert v.min() >= 0.0 and v.max() <= 1.0


def all_pairs_differ(batch, atol=1e-4):
    flat = batch.reshape(len(batch), -1)
    return all(not np.allclose(flat[i], flat[j], atol=atol) for i in range(len(flat)) for j in range(i + 1, len(flat)))


def ramp_images():
    """Channel 0 rises left to right, channel 1 top to bottom, both from 0 to 1."""
    ramp = np.linspace(0.0, 1.0, 32, dtype="float32")
    image = np.zeros((32, 32, 3), dtype="float32")
    image[:, :, 0] = ramp[None, :]
    image[:, :, 1] = ramp[:, None]
    return np.repeat(image[None], BATCH, axis=0)


# --------------------------------------------------------------------------
# Full recipes
# --------------------------------------------------------------------------


def test_simclr_views_shape_dtype_range(cifar_uint8, cifar_float):
    augmenter = simclr_augmenter(image_size=32, seed=1)
    assert augmenter.num_views == 2
    views = augmenter(cifar_uint8, training=True)
    assert len(views) == 2
    for view in views:
        assert_valid_view(view, cifar_uint8.shape)
        # Augmented, not passed through.
        assert not np.allclose(numpy(view), cifar_float, atol=1e-3)
    # Two draws of the same recipe on the same batch differ.
    assert not np.allclose(numpy(views[0]), numpy(views[1]), atol=1e-3)
    # ... and so does the next call.
    again = augmenter(cifar_uint8, training=True)
    assert not np.allclose(numpy(again[0]), numpy(views[0]), atol=1e-3)


def test_uint8_and_float_inputs_agree_under_equal_seeds(cifar_uint8, cifar_float):
    from_uint8 = ImageAugmenter(seed=7, blur_probability=0.5, solarize_probability=0.5)
    from_float = ImageAugmenter(seed=7, blur_probability=0.5, solarize_probability=0.5)
    a = numpy(from_uint8(cifar_uint8, training=True))
    b = numpy(from_float(cifar_float, training=True))
    assert_valid_view(a, cifar_uint8.shape)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # The seed matters: another seed gives another view.
    c = numpy(ImageAugmenter(seed=8, blur_probability=0.5, solarize_probability=0.5)(cifar_float, training=True))
    assert not np.allclose(a, c, atol=1e-3)


def test_augmenter_draws_per_image(cifar_float):
    same = np.repeat(cifar_float[:1], BATCH, axis=0)
    out = numpy(ImageAugmenter(seed=2)(same, training=True))
    assert_valid_view(out, same.shape)
    assert all_pairs_differ(out)


def test_output_size_option(cifar_uint8):
    augmenter = ImageAugmenter(size=(16, 16), seed=3)
    assert augmenter.compute_output_shape((BATCH, 32, 32, 3)) == (BATCH, 16, 16, 3)
    assert_valid_view(augmenter(cifar_uint8, training=True), (BATCH, 16, 16, 3))


def test_grayscale_images(cifar_uint8):
    gray = np.round(cifar_uint8.mean(axis=-1, keepdims=True)).astype("uint8")
    augmenter = ImageAugmenter(seed=4, blur_probability=0.5, solarize_probability=0.5)
    out = numpy(augmenter(gray, training=True))
    assert_valid_view(out, gray.shape)
    views = simclr_augmenter(seed=4)(gray, training=True)
    for view in views:
        assert_valid_view(view, gray.shape)
    assert not np.allclose(numpy(views[0]), numpy(views[1]), atol=1e-3)


# --------------------------------------------------------------------------
# RandomResizedCrop
# --------------------------------------------------------------------------


def test_crop_draws_a_box_per_image(cifar_float):
    same = np.repeat(cifar_float[3:4], BATCH, axis=0)
    out = numpy(RandomResizedCrop(seed=5)(same, training=True))
    assert out.shape == same.shape
    assert all_pairs_differ(out)


def test_crop_of_the_whole_image_is_identity(cifar_float):
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), seed=6)
    np.testing.assert_allclose(numpy(crop(cifar_float, training=True)), cifar_float, atol=1e-5)


def test_crop_resizes_to_size(cifar_float):
    # The whole image resampled to half size: each output pixel is the mean
    # of a 2x2 block (bilinear sampling exactly between four pixels).
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), size=(16, 16), seed=7)
    out = numpy(crop(cifar_float, training=True))
    assert out.shape == (BATCH, 16, 16, 3)
    expected = cifar_float.reshape(BATCH, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    random_crop = RandomResizedCrop(size=(16, 16), seed=8)
    assert numpy(random_crop(cifar_float, training=True)).shape == (BATCH, 16, 16, 3)
    assert random_crop.compute_output_shape((None, 32, 32, 3)) == (None, 16, 16, 3)


def test_crop_box_area_and_aspect_ratio():
    # Area 1/4 of the image with width / height = 2: the box spans
    # sqrt(0.5) of the width and sqrt(0.125) of the height.
    crop = RandomResizedCrop(scale=(0.25, 0.25), ratio=(2.0, 2.0), seed=9)
    out = numpy(crop(ramp_images(), training=True))
    width_span = out[:, :, -1, 0] - out[:, :, 0, 0]  # (B, rows)
    height_span = out[:, -1, :, 1] - out[:, 0, :, 1]  # (B, cols)
    np.testing.assert_allclose(width_span, np.sqrt(0.5), atol=0.01)
    np.testing.assert_allclose(height_span, np.sqrt(0.125), atol=0.01)
    # Boxes sit at different places in different images.
    assert len(np.unique(np.round(out[:, 0, 0, 0], 4))) > 1


# --------------------------------------------------------------------------
# GaussianBlur, Solarize, RandomApply
# --------------------------------------------------------------------------


def reference_blur(images, sigma, kernel_size):
    half = kernel_size // 2
    taps = np.arange(-half, half + 1, dtype="float64")
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    out = images.astype("float64")
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode="reflect")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(j, j + size), axis=axis) for j, w in enumerate(weights))
    return out


def test_blur_filters(cifar_float):
    # sigma fixed at 1: equal to a float64 separable Gaussian with reflected borders.
    blur = GaussianBlur(sigma=(1.0, 1.0), kernel_size=5, seed=0)
    out = numpy(blur(cifar_float, training=True))
    np.testing.assert_allclose(out, reference_blur(cifar_float, 1.0, 5), atol=1e-5)
    # A constant image stays constant (default 3-tap kernel at 32 pixels).
    constant = np.full((BATCH, 32, 32, 3), 0.3, dtype="float32")
    np.testing.assert_allclose(numpy(GaussianBlur(seed=1)(constant, training=True)), 0.3, atol=1e-6)
    # Noise is smoothed: lower variance, same mean.
    noise = np.random.default_rng(0).uniform(size=(BATCH, 32, 32, 3)).astype("float32")
    smoothed = numpy(GaussianBlur(sigma=(1.0, 2.0), kernel_size=5, seed=2)(noise, training=True))
    assert smoothed.var() < 0.3 * noise.var()
    assert abs(smoothed.mean() - noise.mean()) < 0.01


def test_blur_sigma_is_drawn_per_image():
    noise = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    same = np.repeat(noise, BATCH, axis=0)
    out = numpy(GaussianBlur(sigma=(0.3, 3.0), kernel_size=7, seed=3)(same, training=True))
    assert all_pairs_differ(out, atol=1e-5)
    # A tiny sigma puts all the weight on the centre tap.
    sharp = numpy(GaussianBlur(sigma=(1e-3, 1e-3), seed=4)(same, training=True))
    np.testing.assert_allclose(sharp, same, atol=1e-6)


def test_solarize_inverts_values_at_or_above_threshold():
    x = np.array([0.0, 0.25, 0.49, 0.5, 0.75, 1.0], dtype="float32").reshape(1, 1, 6, 1)
    out = numpy(Solarize()(x, training=True)).reshape(-1)
    np.testing.assert_allclose(out, [0.0, 0.25, 0.49, 0.5, 0.25, 0.0], atol=1e-7)
    high = numpy(Solarize(threshold=0.8)(x, training=True)).reshape(-1)
    np.testing.assert_allclose(high, [0.0, 0.25, 0.49, 0.5, 0.75, 0.0], atol=1e-7)


def test_random_apply_rates(cifar_float):
    solarized = numpy(Solarize()(cifar_float, training=True))
    never = numpy(RandomApply(Solarize(), 0.0, seed=0)(cifar_float, training=True))
    np.testing.assert_array_equal(never, cifar_float)
    always = numpy(RandomApply(Solarize(), 1.0, seed=0)(cifar_float, training=True))
    np.testing.assert_array_equal(always, solarized)
    # Rate 0.5: each image is either untouched or solarised, and both happen.
    half = numpy(RandomApply(Solarize(), 0.5, seed=1)(cifar_float, training=True))
    applied = [np.array_equal(half[i], solarized[i]) for i in range(BATCH)]
    kept = [np.array_equal(half[i], cifar_float[i]) for i in range(BATCH)]
    assert all(a != k for a, k in zip(applied, kept))
    assert 0 < sum(applied) < BATCH


# --------------------------------------------------------------------------
# Errors and serialisation
# --------------------------------------------------------------------------


def test_input_errors_name_expected_and_received(cifar_uint8):
    augmenter = ImageAugmenter(seed=0)
    with pytest.raises(ValueError, match=r"rank 4.*Received: shape=\(32, 32, 3\)"):
        augmenter(cifar_uint8[0], training=True)
    with pytest.raises(ValueError, match=r"1 \(grayscale\) or 3 \(RGB\).*Received: shape=\(2, 8, 8, 4\)"):
        augmenter(np.zeros((2, 8, 8, 4), dtype="uint8"), training=True)
    with pytest.raises(ValueError, match=r"uint8.*Received: dtype=int32"):
        augmenter(np.zeros((2, 8, 8, 3), dtype="int32"), training=True)


def test_constructor_argument_errors():
    with pytest.raises(ValueError, match="Received: scale"):
        RandomResizedCrop(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="Received: ratio"):
        RandomResizedCrop(ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="Received: kernel_size"):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="Received: sigma"):
        GaussianBlur(sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match="Received: rate"):
        RandomApply(Solarize(), 1.5)
    with pytest.raises(ValueError, match="Received: views"):
        MultiViewAugmenter([])


def round_trip(layer):
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer), safe_mode=True)


def test_image_augmenter_config_round_trip(cifar_uint8):
    original = ImageAugmenter(
        crop_scale=(0.2, 1.0),
        size=(16, 16),
        jitter_strength=0.3,
        blur_probability=0.5,
        solarize_probability=0.2,
        seed=11,
    )
    restored = round_trip(original)
    assert type(restored) is ImageAugmenter and restored is not original
    assert restored.get_config() == original.get_config()
    assert restored.size == (16, 16) and restored.blur is not None and restored.solarize is not None
    # Same seed, fresh state: the first views agree.
    np.testing.assert_allclose(
        numpy(restored(cifar_uint8, training=True)), numpy(original(cifar_uint8, training=True)), atol=1e-6
    )


def test_multi_view_augmenter_config_round_trip(cifar_uint8):
    original = simclr_augmenter(seed=12)
    restored = round_trip(original)
    assert type(restored) is MultiViewAugmenter
    assert restored.num_views == 2
    assert restored.get_config() == original.get_config()
    before = [numpy(v) for v in original(cifar_uint8, training=True)]
    after = [numpy(v) for v in restored(cifar_uint8, training=True)]
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, atol=1e-6)
    # Still two different views after the round trip.
    assert not np.allclose(after[0], after[1], atol=1e-3)


def test_multi_view_augmenter_with_distinct_recipes(cifar_uint8):
    views = MultiViewAugmenter([ImageAugmenter(seed=13), ImageAugmenter(size=(16, 16), seed=14)])
    restored = round_trip(views)
    shapes = [numpy(v).shape for v in restored(cifar_uint8, training=True)]
    assert shapes == [(BATCH, 32, 32, 3), (BATCH, 16, 16, 3)]
