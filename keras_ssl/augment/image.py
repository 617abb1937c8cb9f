"""On-device image augmentation: view generators that run inside the train step.

Every layer here takes a batch (B, H, W, C) and draws its random parameters
per image, vectorised, so augmentation compiles into the training step with
the model (XLA on TensorFlow and JAX) instead of running per image on the CPU.
Keras's own preprocessing layers are used where their semantics match the
papers (flip, colour jitter, grayscale); what Keras lacks is written here:
RandomResizedCrop with per-image boxes, a Gaussian blur whose sigma is drawn
per image (Keras's `RandomGaussianBlur` draws one sigma per batch), a
probability wrapper and solarisation with the papers' fixed threshold.
"""

import contextlib
import math

import keras
from keras import layers, ops

from keras_ssl.utils import replicas

_FLOAT = "float32"


def to_unit_float(images):
    """Validates a batch of images and returns it as float32 in [0, 1].

    uint8 images are read as [0, 255]; float images must already be in [0, 1]
    (checked eagerly on arrays by `keras_ssl.data.check_images`).
    """
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(
            f"Expected a batch of images of rank 4 (batch, height, width, channels). Received: shape={shape}"
        )
    if shape[-1] not in (1, 3):
        raise ValueError(f"Expected 1 (grayscale) or 3 (RGB) channels in the last axis (NHWC). Received: shape={shape}")
    dtype = keras.backend.standardize_dtype(images.dtype)
    if dtype == "uint8":
        return ops.cast(images, _FLOAT) / 255.0
    if "float" not in dtype:
        raise ValueError(f"Expected uint8 images in [0, 255] or float images in [0, 1]. Received: dtype={dtype}")
    return ops.cast(images, _FLOAT)


@contextlib.contextmanager
def _float32_policy():
    """Layers created inside compute in float32 whatever the global mixed-precision policy."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _per_sample_uniform(shape, seed_generator, low=0.0, high=1.0):
    """Uniform draws, one row per image; under tf.distribute, this replica's rows of the global batch's draw."""
    return replicas.per_sample(lambda s: keras.random.uniform(s, low, high, seed=seed_generator), shape)


def _interpolation_matrix(start, extent, in_size, out_size):
    """Per-image bilinear resampling weights along one axis, shape (B, out_size, in_size).

    Output pixel i samples the input at `(start + (i + 0.5) / out_size * extent)
    * in_size - 0.5` (start and extent as fractions of the side); a tent kernel
    turns that coordinate into the two bilinear weights. Resizing a box is then
    two batched matmuls, which XLA compiles on every backend (unlike
    ImageProjectiveTransform on TensorFlow).
    """
    steps = (ops.arange(out_size, dtype=_FLOAT) + 0.5) / out_size  # (out,)
    source = (start[:, None] + steps[None, :] * extent[:, None]) * in_size - 0.5  # (B, out)
    source = ops.clip(source, 0.0, in_size - 1.0)
    grid = ops.arange(in_size, dtype=_FLOAT)  # (in,)
    return ops.relu(1.0 - ops.abs(source[:, :, None] - grid[None, None, :]))


class RandomResizedCrop(layers.Layer):
    """Crops a random box of each image and resizes it, as in Inception/SimCLR.

    Per image: an area fraction in `scale` and a log-uniform aspect ratio in
    `ratio` give a box; up to 10 tries are drawn at once and the first that
    fits is used (the whole image when none fits), then the box is resampled
    bilinearly to `size` (default: the input size).
    """

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), size=None, seed=None, **kwargs):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < low <= high <= 1. Received: scale={scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"`ratio` must satisfy 0 < low <= high. Received: ratio={ratio}")
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.size = None if size is None else tuple(int(s) for s in size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images):
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        tries = 10
        area = _per_sample_uniform((batch, tries), self.seed_generator, *self.scale)
        log_ratio = _per_sample_uniform(
            (batch, tries), self.seed_generator, math.log(self.ratio[0]), math.log(self.ratio[1])
        )
        aspect = ops.exp(log_ratio)
        # Box sides as fractions of the image sides.
        box_w = ops.sqrt(area * aspect * (height / width))
        box_h = ops.sqrt(area / aspect * (width / height))
        fits = ops.logical_and(box_w <= 1.0, box_h <= 1.0)
        first = ops.argmax(ops.cast(fits, "int32"), axis=1)[:, None]
        any_fits = ops.any(fits, axis=1)
        box_w = ops.where(any_fits, ops.take_along_axis(box_w, first, axis=1)[:, 0], 1.0)
        box_h = ops.where(any_fits, ops.take_along_axis(box_h, first, axis=1)[:, 0], 1.0)
        offsets = _per_sample_uniform((batch, 2), self.seed_generator)
        x0 = offsets[:, 0] * (1.0 - box_w)
        y0 = offsets[:, 1] * (1.0 - box_h)
        out_h, out_w = self.size or (height, width)
        rows = _interpolation_matrix(y0, box_h, height, out_h)  # (B, out_h, H)
        cols = _interpolation_matrix(x0, box_w, width, out_w)  # (B, out_w, W)
        crops = ops.einsum("bih,bhwc->biwc", rows, images)
        return ops.einsum("bjw,biwc->bijc", cols, crops)

    def compute_output_shape(self, input_shape):
        size = self.size or input_shape[1:3]
        return (input_shape[0], *size, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, ratio=self.ratio, size=self.size, seed=self.seed)
        return config


class RandomApply(layers.Layer):
    """Applies `layer` to each image independently with probability `rate`."""

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"`rate` must be a probability in [0, 1]. Received: rate={rate}")
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        self.layer = layer
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=True):
        changed = self.layer(images, training=training)
        draw = _per_sample_uniform((ops.shape(images)[0], 1, 1, 1), self.seed_generator)
        return ops.where(draw < self.rate, ops.cast(changed, images.dtype), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(layer=keras.saving.serialize_keras_object(self.layer), rate=self.rate, seed=self.seed)
        return config


class GaussianBlur(layers.Layer):
    """Separable Gaussian blur with a sigma drawn per image from `sigma`.

    `kernel_size` defaults to 10% of the image side (odd), as in SimCLR.
    """

    def __init__(self, sigma=(0.1, 2.0), kernel_size=None, seed=None, **kwargs):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"`sigma` must satisfy 0 < low <= high. Received: sigma={sigma}")
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"`kernel_size` must be a positive odd integer. Received: kernel_size={kernel_size}")
        self.sigma = tuple(float(s) for s in sigma)
        self.kernel_size = kernel_size
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _kernel_size(self, side):
        return self.kernel_size or max(3, (int(0.1 * side) // 2) * 2 + 1)

    def call(self, images, training=True):
        k = self._kernel_size(min(images.shape[1], images.shape[2]))
        half = k // 2
        sigma = _per_sample_uniform((ops.shape(images)[0], 1), self.seed_generator, *self.sigma)
        taps = ops.arange(-half, half + 1, dtype=_FLOAT)[None, :]
        weights = ops.exp(-(taps**2) / (2.0 * sigma**2))
        weights = weights / ops.sum(weights, axis=1, keepdims=True)  # (B, k)
        for axis in (1, 2):
            pad = [(0, 0)] * 4
            pad[axis] = (half, half)
            padded = ops.pad(images, pad, mode="reflect")
            size = images.shape[axis]
            blurred = 0.0
            for j in range(k):
                window = padded[:, j : j + size] if axis == 1 else padded[:, :, j : j + size]
                blurred = blurred + weights[:, j, None, None, None] * window
            images = blurred
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(sigma=self.sigma, kernel_size=self.kernel_size, seed=self.seed)
        return config


class Solarize(layers.Layer):
    """Inverts every pixel at or above `threshold` (images in [0, 1]), as in BYOL."""

    def __init__(self, threshold=0.5, **kwargs):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, images, training=True):
        return ops.where(images >= self.threshold, 1.0 - images, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold)
        return config


class ImageAugmenter(layers.Layer):
    """One view: crop -> flip -> colour jitter -> grayscale -> blur -> solarise.

    Takes uint8 [0, 255] or float [0, 1] NHWC batches with 1 or 3 channels and
    returns float32 views in [0, 1]. Colour jitter follows torchvision's
    `ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)` with strength `s` (brightness is
    additive, as in SimCLR's own TensorFlow code); saturation, hue and
    grayscale are skipped for 1-channel images.

    Args:
        crop_scale, crop_ratio: RandomResizedCrop's area and aspect ranges.
        size: output (height, width); default: the input size.
        flip: random horizontal flips.
        jitter_strength, jitter_probability: colour-jitter strength `s` and the
            chance each image is jittered (0 strength disables it).
        grayscale_probability: chance each image becomes grayscale.
        blur_probability, blur_sigma: chance and sigma range of Gaussian blur.
        solarize_probability: chance each image is solarised.
        seed: seed of every random draw (None: nondeterministic).
    """

    def __init__(
        self,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        size=None,
        flip=True,
        jitter_strength=0.5,
        jitter_probability=0.8,
        grayscale_probability=0.2,
        blur_probability=0.0,
        blur_sigma=(0.1, 2.0),
        solarize_probability=0.0,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.size = None if size is None else tuple(size)
        self.flip = bool(flip)
        self.jitter_strength = float(jitter_strength)
        self.jitter_probability = float(jitter_probability)
        self.grayscale_probability = float(grayscale_probability)
        self.blur_probability = float(blur_probability)
        self.blur_sigma = tuple(blur_sigma)
        self.solarize_probability = float(solarize_probability)
        self.seed = seed

        def sub_seed(i):
            return None if seed is None else seed + i

        # Built under a float32 policy: Keras's RandomColorJitter creates its inner brightness/contrast/saturation/
        # hue layers with the global policy, and their HSV round trip in float16 gives NaN (mixed_float16).
        with _float32_policy():
            s = self.jitter_strength
            self.crop = RandomResizedCrop(crop_scale, crop_ratio, size, seed=sub_seed(1))
            self.flipper = layers.RandomFlip("horizontal", seed=sub_seed(2), dtype=_FLOAT) if flip else None
            jitter = dict(value_range=(0, 1), seed=sub_seed(3), dtype=_FLOAT)
            self.rgb_jitter = self.gray_jitter = self.grayscale = None
            if s > 0 and self.jitter_probability > 0:
                brightness, contrast = 0.8 * s, 0.8 * s
                # Keras's saturation factor f scales by f / (1 - f): map [1 - x, 1 + x].
                sat = min(0.8 * s, 0.999)
                saturation = ((1 - sat) / (2 - sat), (1 + sat) / (2 + sat))
                hue = (0.0, min(0.4 * s, 1.0))  # Keras shifts by +-factor / 2
                self.rgb_jitter = RandomApply(
                    layers.RandomColorJitter(
                        brightness_factor=brightness,
                        contrast_factor=contrast,
                        saturation_factor=saturation,
                        hue_factor=hue,
                        **jitter,
                    ),
                    self.jitter_probability,
                    seed=sub_seed(4),
                )
                self.gray_jitter = RandomApply(
                    layers.RandomColorJitter(brightness_factor=brightness, contrast_factor=contrast, **jitter),
                    self.jitter_probability,
                    seed=sub_seed(5),
                )
            if self.grayscale_probability > 0:
                self.grayscale = layers.RandomGrayscale(self.grayscale_probability, seed=sub_seed(6), dtype=_FLOAT)
            self.blur = None
            if self.blur_probability > 0:
                self.blur = RandomApply(
                    GaussianBlur(blur_sigma, seed=sub_seed(7)), self.blur_probability, seed=sub_seed(8)
                )
            self.solarize = None
            if self.solarize_probability > 0:
                self.solarize = RandomApply(Solarize(), self.solarize_probability, seed=sub_seed(9))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=True):
        x = to_unit_float(images)
        rgb = x.shape[-1] == 3
        x = self.crop(x)
        if self.flipper is not None:
            x = self.flipper(x, training=True)
        jitter = self.rgb_jitter if rgb else self.gray_jitter
        if jitter is not None:
            x = ops.clip(jitter(x, training=True), 0.0, 1.0)
        if self.grayscale is not None and rgb:
            x = self.grayscale(x, training=True)
        if self.blur is not None:
            x = self.blur(x, training=True)
        if self.solarize is not None:
            x = self.solarize(x, training=True)
        return ops.clip(x, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return self.crop.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            crop_scale=self.crop_scale,
            crop_ratio=self.crop_ratio,
            size=self.size,
            flip=self.flip,
            jitter_strength=self.jitter_strength,
            jitter_probability=self.jitter_probability,
            grayscale_probability=self.grayscale_probability,
            blur_probability=self.blur_probability,
            blur_sigma=self.blur_sigma,
            solarize_probability=self.solarize_probability,
            seed=self.seed,
        )
        return config


class MultiViewAugmenter(layers.Layer):
    """Turns a batch into a list of views, one per view augmenter.

    The same augmenter may appear several times (SimCLR: two draws of one
    recipe); each call draws fresh random parameters.
    """

    def __init__(self, views, **kwargs):
        kwargs.setdefault("dtype", _FLOAT)
        super().__init__(**kwargs)
        if not views:
            raise ValueError(f"`views` must hold at least one augmenter. Received: views={views!r}")
        self.views = [keras.saving.deserialize_keras_object(v) if isinstance(v, dict) else v for v in views]

    def build(self, input_shape):
        self.built = True

    @property
    def num_views(self):
        return len(self.views)

    def call(self, images, training=True):
        return [view(images, training=True) for view in self.views]

    def get_config(self):
        config = super().get_config()
        config.update(views=[keras.saving.serialize_keras_object(v) for v in self.views])
        # A layer listed twice must come back as one layer, not two copies:
        # two copies with the same seed would draw identical views.
        sources = [next(i for i, u in enumerate(self.views) if u is v) for v in self.views]
        if sources != list(range(len(self.views))):
            config["view_sources"] = sources
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        sources = config.pop("view_sources", None)
        views = config.pop("views")
        if sources is not None:
            built = {}
            for s in sources:
                if s not in built:
                    v = views[s]
                    built[s] = keras.saving.deserialize_keras_object(v) if isinstance(v, dict) else v
            views = [built[s] for s in sources]
        return cls(views=views, **config)


for _cls in (RandomResizedCrop, RandomApply, GaussianBlur, Solarize, ImageAugmenter, MultiViewAugmenter):
    keras.saving.register_keras_serializable(package="keras_ssl")(_cls)


def _two_draws_of_one_view(name, image_size, seed, crop_scale, large_jitter_strength):
    """Two draws of one recipe: jitter (p=0.8, strength 0.5 on small images), grayscale 0.2, blur 0.5 above 64 px."""
    small = image_size <= 64
    view = ImageAugmenter(
        crop_scale=crop_scale,
        jitter_strength=0.5 if small else large_jitter_strength,
        jitter_probability=0.8,
        grayscale_probability=0.2,
        blur_probability=0.0 if small else 0.5,
        seed=seed,
        name=f"{name}_view",
    )
    return MultiViewAugmenter([view, view], name=f"{name}_augmenter")


def simclr_augmenter(image_size=32, seed=None):
    """SimCLR's two-view recipe (Chen et al., 2020, Appendix A).

    "random crop and resize (with random flip), color distortion, and Gaussian
    blur": crop scale (0.08, 1), colour jitter strength 0.5 for CIFAR-sized
    inputs and 1.0 for ImageNet-sized ones with probability 0.8, grayscale with
    probability 0.2, and blur with probability 0.5 only for images larger than
    64 pixels (the paper drops blur on CIFAR-10).
    """
    return _two_draws_of_one_view("simclr", image_size, seed, crop_scale=(0.08, 1.0), large_jitter_strength=1.0)


def byol_augmenter(image_size=32, seed=None):
    """BYOL's asymmetric pair (Grill et al., 2020, Table 6).

    Both views: crop (0.08, 1), flip, colour jitter with probability 0.8,
    grayscale 0.2. View 1 is always blurred and never solarised; view 2 is
    blurred with probability 0.1 and solarised with probability 0.2. Blur is
    dropped for images of 64 pixels or less, as lightly does for CIFAR-10.
    """
    small = image_size <= 64
    common = dict(crop_scale=(0.08, 1.0), jitter_strength=0.5, jitter_probability=0.8, grayscale_probability=0.2)
    first = ImageAugmenter(blur_probability=0.0 if small else 1.0, seed=seed, name="byol_view1", **common)
    second = ImageAugmenter(
        blur_probability=0.0 if small else 0.1,
        solarize_probability=0.2,
        seed=None if seed is None else seed + 100,
        name="byol_view2",
        **common,
    )
    return MultiViewAugmenter([first, second], name="byol_augmenter")


def moco_augmenter(image_size=32, seed=None):
    """MoCo v2's recipe (Chen et al., 2020b): SimCLR's, crop scale (0.2, 1), blur 0.5 on large images."""
    return _two_draws_of_one_view("moco", image_size, seed, crop_scale=(0.2, 1.0), large_jitter_strength=0.5)


def multicrop_augmenter(image_size=32, num_local=4, local_size=None, seed=None):
    """DINO's multi-crop: 2 global views at full size + `num_local` small local views.

    Global crops cover 40-100% of the image, local crops 5-40% and are resized
    to `local_size` (default: 3/7 of the image side, 96/224 as in the paper).
    Global view 1 is always blurred, global view 2 blurred with probability
    0.1 and solarised with 0.2, local views blurred with 0.5 (blur is dropped
    for images of 64 pixels or less).
    """
    small = image_size <= 64
    local_size = local_size or max(8, round(image_size * 96 / 224))
    common = dict(jitter_strength=0.5, jitter_probability=0.8, grayscale_probability=0.2)

    def sub_seed(i):
        return None if seed is None else seed + 100 * i

    global1 = ImageAugmenter(
        crop_scale=(0.4, 1.0), blur_probability=0.0 if small else 1.0, seed=sub_seed(1), name="dino_global1", **common
    )
    global2 = ImageAugmenter(
        crop_scale=(0.4, 1.0),
        blur_probability=0.0 if small else 0.1,
        solarize_probability=0.2,
        seed=sub_seed(2),
        name="dino_global2",
        **common,
    )
    local = ImageAugmenter(
        crop_scale=(0.05, 0.4),
        size=(local_size, local_size),
        blur_probability=0.0 if small else 0.5,
        seed=sub_seed(3),
        name="dino_local",
        **common,
    )
    return MultiViewAugmenter([global1, global2] + [local] * num_local, name="multicrop_augmenter")
