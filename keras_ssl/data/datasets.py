"""Turns what users pass to `fit` into batches a method can train on.

TensorFlow is imported lazily, only when a tf.data, TFDS, folder or TFRecord
input is given.
"""

import glob
import os

import keras
import numpy as np

from keras_ssl.data.arrays import ArrayBatches, check_images, check_token_ids, check_vectors
from keras_ssl.data.folders import TFRECORD_SUFFIXES, image_folder, tfrecord_images
from keras_ssl.utils import replicas

DEFAULT_BATCH_SIZE = 256
TFDS_PREFIX = "tfds:"


def _is_tf_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def _batch_too_small(method_name, min_batch_size, received):
    return ValueError(
        f"{method_name} needs at least {min_batch_size} images per batch "
        f"(each image's views need other images as negatives). Received: {received}"
    )


def check_replica_batch(batch_size, num_replicas, min_batch_size, method_name):
    """Raises unless a global batch splits evenly over the replicas into batches the method can train on."""
    if num_replicas <= 1 or batch_size is None:
        return
    if batch_size % num_replicas:
        lower, upper = batch_size - batch_size % num_replicas, batch_size + num_replicas - batch_size % num_replicas
        raise ValueError(
            f"The global batch ({batch_size}) must divide evenly over the {num_replicas} replicas. "
            f"Use a multiple of {num_replicas}, e.g. {lower or upper} or {upper}."
        )
    if batch_size // num_replicas < min_batch_size:
        raise ValueError(
            f"{method_name} needs at least {min_batch_size} samples per replica, but a global batch of {batch_size} "
            f"over {num_replicas} replicas gives {batch_size // num_replicas}. Use a global batch of at least "
            f"{min_batch_size * num_replicas}."
        )


def first_batch_shape(data):
    """The shape of the first batch's inputs (images of `images` or `(images, ...)`)."""
    if _is_tf_dataset(data):
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        return tuple(spec.shape)
    first = data[0]
    first = first[0] if isinstance(first, (tuple, list)) else first
    return tuple(np.shape(first))


def tfds_images(name, split="train", data_dir=None, batch_size=DEFAULT_BATCH_SIZE, download=False, shuffle=True):
    """Batched images (labels dropped) of a TensorFlow Datasets dataset.

    With `download=False` (the default) nothing is fetched: the dataset must
    already be prepared under `data_dir`, so this works offline.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = tfds.load(name, split=split, data_dir=data_dir, download=download, shuffle_files=shuffle)
    ds = ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(10 * batch_size)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def is_resumable(x):
    """True for an input with the resumable-input protocol (`image_folder`, `tfrecord_images`).

    Such an input has `steps_per_epoch`, `batch_size`, `input_shape` and
    `fit_input(start_epoch, first_step, end_epoch)`, the batched
    `tf.data.Dataset` of those epochs in an order fixed by `(seed, epoch)`.
    """
    return callable(getattr(x, "fit_input", None)) and hasattr(x, "steps_per_epoch") and hasattr(x, "input_shape")


def _is_tfrecord_path(path):
    name = os.path.basename(path).lower()
    return any(suffix in name for suffix in TFRECORD_SUFFIXES)  # also "train.tfrecord-00000-of-00010"


def resolve_input_string(x, image_size=None, batch_size=None, shuffle=True, seed=None, channels=3):
    """The input a string names: a folder of images, TFRecord files, or a TFDS dataset.

    - an existing directory: `image_folder(x, image_size, ...)`;
    - a file or glob whose name contains ".tfrecord" or ".tfrec":
      `tfrecord_images(x, image_size, ...)`;
    - "tfds:NAME" (e.g. "tfds:imagenet2012_subset/10pct"), or a bare name
      without a path separator or extension (e.g. "cifar10"): `tfds_images`.

    Folders and TFRecords need `image_size`: `Method.fit` passes its
    encoder's input size when the encoder fixes one. Anything else that looks
    like a path is a ValueError.
    """
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if x.startswith(TFDS_PREFIX):
        return tfds_images(x[len(TFDS_PREFIX) :], batch_size=batch_size, shuffle=shuffle)
    path = os.path.expanduser(x)
    is_folder, is_tfrecord = os.path.isdir(path), _is_tfrecord_path(path)
    if is_folder or is_tfrecord:
        if image_size is None:
            reader = "image_folder" if is_folder else "tfrecord_images"
            raise ValueError(
                f"Reading images from {x!r} needs an image size, and the encoder accepts any size. Pass "
                f"`keras_ssl.data.{reader}({x!r}, image_size=...)` instead of the string. Received: image_size=None"
            )
        kwargs = dict(batch_size=batch_size, shuffle=shuffle, seed=seed, channels=channels)
        if is_folder:
            return image_folder(path, image_size, **kwargs)
        return tfrecord_images(path, image_size, **kwargs)
    extension = os.path.splitext(x)[1] and ":" not in x  # "cifar10:3.0.2" is a TFDS name and version
    if not x or os.sep in x or "/" in x or x.startswith((".", "~")) or extension or glob.has_magic(x):
        raise ValueError(
            "Expected a folder of images, TFRecord files (*.tfrecord, *.tfrec), or a TFDS dataset name "
            f"('cifar10', or '{TFDS_PREFIX}NAME'). Received: {x!r}, which is none of these (no such directory)"
        )
    return tfds_images(x, batch_size=batch_size, shuffle=shuffle)


def _check_first_batch(values, input_kind):
    """Checks the values of a dataset's first batch as the array checks would (never clips)."""
    name = "the dataset's first batch"
    if input_kind == "vectors":
        check_vectors(values, name=name)
    elif input_kind == "tokens":
        check_token_ids(values, name=name)
    else:
        if not (values.dtype == np.uint8 or np.issubdtype(values.dtype, np.floating)):
            values = values.astype("float32")  # bfloat16 is not a NumPy floating type
        check_images(values, name=name)


def _check_tf_dataset(ds, min_batch_size, method_name, input_kind="images", num_replicas=1):
    import tensorflow as tf

    spec = ds.element_spec
    if isinstance(spec, (tuple, list)):
        spec = spec[0]
    if isinstance(spec, dict):
        raise ValueError(
            "Expected a dataset of images or (images, labels). Received a dataset of dicts with keys "
            f"{sorted(spec)}: map it to the image tensor first."
        )
    shape = tuple(spec.shape)
    if input_kind == "vectors":
        if len(shape) != 2:
            raise ValueError(f"Expected batches of vectors of shape (batch, features). Received element shape {shape}")
        if not (spec.dtype.is_floating or spec.dtype.is_integer):
            raise ValueError(f"Expected numeric vectors. Received: dtype={spec.dtype.name}")
    elif input_kind == "tokens":
        if len(shape) != 2 or shape[1] is None:
            raise ValueError(
                "Expected batches of token ids of shape (batch, length) with a fixed length. "
                f"Received element shape {shape}"
            )
        if not spec.dtype.is_integer:
            raise ValueError(f"Expected integer token ids. Received: dtype={spec.dtype.name}")
    elif len(shape) == 3:
        raise ValueError(
            "Expected a batched dataset of (batch, height, width, channels). "
            f"Received element shape {shape}: call .batch() on it."
        )
    elif len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(f"Expected batches of shape (batch, height, width, 1 or 3). Received element shape {shape}")
    if input_kind == "images" and spec.dtype not in (tf.uint8, tf.float16, tf.bfloat16, tf.float32, tf.float64):
        raise ValueError(
            f"Expected uint8 images in [0, 255] or float images in [0, 1]. Received: dtype={spec.dtype.name}"
        )
    # The first batch tells what the spec cannot: the values (floats outside [0, 1], NaN), and the batch
    # size when it is not static (no drop_remainder). Reading it costs one batch of the pipeline.
    first = next(iter(ds.take(1)), None)
    if first is None:
        raise ValueError("The dataset is empty (0 batches). Received: an empty tf.data.Dataset")
    first = first[0] if isinstance(first, (tuple, list)) else first
    _check_first_batch(np.asarray(first), input_kind)
    batch = int(first.shape[0])
    if batch < min_batch_size:
        raise _batch_too_small(method_name, min_batch_size, f"batch size {batch}")
    check_replica_batch(batch, num_replicas, min_batch_size, method_name)
    cardinality = int(ds.cardinality())
    steps = cardinality if cardinality > 0 else None
    return steps, shape[1:]


def prepare_pretraining_data(
    x,
    batch_size=None,
    min_batch_size=1,
    method_name="This method",
    shuffle=True,
    seed=None,
    input_kind="images",
    row_indices=False,
    num_replicas=1,
    image_size=None,
    channels=3,
):
    """Validates pretraining input; returns `(data_for_fit, steps_per_epoch, input_shape)`.

    `input_kind` is "images" (NHWC, uint8 or float in [0, 1]), "vectors"
    (rank 2, finite numbers) or "tokens" (rank 2, integer ids). Arrays become
    `ArrayBatches` (yielding `(inputs, rows)` with `row_indices`). A string
    names a folder, TFRecord files or a TFDS dataset (`resolve_input_string`,
    with `image_size` and `channels`, which `Method.fit` takes from its
    encoder's input shape when it fixes them). A folder or TFRecord input is
    returned as it is (`is_resumable`): the caller asks it for
    `fit_input(start_epoch, first_step, end_epoch)`. A tf.data dataset's
    first batch is read and its values checked. The global batch must split
    evenly over `num_replicas` into per-replica batches of at least
    `min_batch_size`. `input_shape` is None when only a batch can tell.
    """
    if x is None:
        raise ValueError("Expected training images. Received: x=None")
    if isinstance(x, os.PathLike):
        x = os.fspath(x)
    if isinstance(x, str):
        if input_kind != "images":
            raise ValueError(f"{method_name} trains on {input_kind}, not on images named by a string. Received: {x!r}")
        x = resolve_input_string(
            x, image_size=image_size, batch_size=batch_size, shuffle=shuffle, seed=seed, channels=channels
        )
        batch_size = None
    if is_resumable(x):
        if input_kind != "images":
            raise ValueError(f"{method_name} trains on {input_kind}. Received: {type(x).__name__} (images)")
        if batch_size is not None and batch_size != x.batch_size:
            raise ValueError(
                f"The batch size of a folder or TFRecord input is set when it is built. Received: batch_size="
                f"{batch_size} for an input of batch_size={x.batch_size}"
            )
        if row_indices:
            raise ValueError(f"{method_name} needs an in-memory array. Received: {type(x).__name__}")
        if x.batch_size < min_batch_size:
            raise _batch_too_small(method_name, min_batch_size, f"batch_size={x.batch_size}")
        check_replica_batch(x.batch_size, num_replicas, min_batch_size, method_name)
        return x, x.steps_per_epoch, tuple(x.input_shape)
    if _is_tf_dataset(x):
        if batch_size is not None:
            raise ValueError("Do not pass `batch_size` with a tf.data.Dataset: batch the dataset instead.")
        if row_indices:
            raise ValueError(f"{method_name} needs an in-memory array. Received: a tf.data.Dataset")
        steps, shape = _check_tf_dataset(x, min_batch_size, method_name, input_kind, num_replicas)
        return x, steps, shape
    if isinstance(x, keras.utils.PyDataset):
        if row_indices:
            raise ValueError(f"{method_name} needs an in-memory array. Received: a PyDataset")
        return x, len(x), None
    if isinstance(x, (tuple, list)) and len(x) == 2 and not np.isscalar(x[0]):
        x = x[0]  # (images, labels): labels are not used for pretraining
    check = {"vectors": check_vectors, "tokens": check_token_ids}.get(input_kind, check_images)
    images = check(x)
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
    if batch_size < min_batch_size:
        raise _batch_too_small(method_name, min_batch_size, f"batch_size={batch_size}")
    if len(images) < min_batch_size:
        raise _batch_too_small(method_name, min_batch_size, f"{len(images)} image(s) in total")
    batch_size = min(batch_size, len(images))
    check_replica_batch(batch_size, num_replicas, min_batch_size, method_name)
    batches = ArrayBatches(
        images, batch_size, shuffle=shuffle, seed=seed, row_indices=row_indices, process_shard=replicas.process_shard()
    )
    return batches, len(batches), images.shape[1:]


def positioned(data, epoch, first_step, end_epoch, steps_per_epoch):
    """`(x, steps_per_epoch)` for a `fit` over epochs [epoch, end_epoch) that starts at batch `first_step`.

    `first_step > 0` (a resumed epoch) is only asked for one epoch. Arrays and
    keras_ssl's file inputs draw each epoch's order from (seed, epoch), so the
    batches are those an uninterrupted run would see. A user's tf.data.Dataset
    or PyDataset skips the batches already trained on, which repeats the
    uninterrupted run only when its order does not change between epochs (or
    is seeded per epoch).
    """
    if first_step and end_epoch != epoch + 1:
        raise ValueError(
            f"A resumed epoch is trained on its own. Received: epochs {epoch}..{end_epoch}, step {first_step}"
        )
    if hasattr(data, "fit_input"):
        return data.fit_input(epoch, first_step, end_epoch), steps_per_epoch - first_step
    if hasattr(data, "set_position"):
        data.set_position(epoch, first_step)
        return data, None  # Keras takes its length
    if _is_tf_dataset(data):
        steps = None if steps_per_epoch is None else steps_per_epoch - first_step
        return (data.skip(first_step) if first_step else data), steps
    return (_Skipped(data, first_step) if first_step else data), None


def limit_steps(data, steps_per_epoch):
    """Makes `data` serve only `steps_per_epoch` batches per epoch (`fit(steps_per_epoch=...)`)."""
    if steps_per_epoch is None or not hasattr(data, "steps_per_epoch"):
        return
    available = data.steps_per_epoch
    if steps_per_epoch > available:
        raise ValueError(
            f"steps_per_epoch={steps_per_epoch} asks for more batches than an epoch of this input holds "
            f"({available}). Received: steps_per_epoch={steps_per_epoch}"
        )
    if isinstance(data, ArrayBatches):
        data.step_limit = steps_per_epoch
    else:
        data.steps_per_epoch = steps_per_epoch


class _Skipped(keras.utils.PyDataset):
    """A user's PyDataset without its first `skip` batches (for a resumed epoch)."""

    def __init__(self, dataset, skip):
        super().__init__()
        self.dataset, self.skip = dataset, skip

    def __len__(self):
        return len(self.dataset) - self.skip

    def __getitem__(self, index):
        return self.dataset[index + self.skip]
