"""Validation of image arrays and the batching of arrays for pretraining."""

import keras
import numpy as np


def check_images(images, name="images"):
    """Checks an NHWC image array eagerly; raises ValueError saying what is wrong.

    Accepted: uint8 in [0, 255] or float in [0, 1], rank 4, 1 or 3 channels.
    """
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(
            f"Expected `{name}` of rank 4 (num_images, height, width, channels). "
            f"Received: shape={x.shape}" + (" (add a channel axis for grayscale)" if x.ndim == 3 else "")
        )
    if x.shape[-1] not in (1, 3):
        raise ValueError(
            f"Expected `{name}` with 1 or 3 channels in the last axis (NHWC). "
            f"Received: shape={x.shape}" + (" (channels-first? transpose to NHWC)" if x.shape[1] in (1, 3) else "")
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty. Received: shape={x.shape}")
    if x.dtype == np.uint8:
        if x.max() <= 1:
            raise ValueError(
                f"`{name}` is uint8, read as [0, 255], but holds only 0 and 1: were float images in "
                "[0, 1] cast to uint8? Pass them as float32 instead. "
                f"Received: dtype=uint8, max={int(x.max())}"
            )
    elif np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"`{name}` contains NaN or infinite values.")
        if lo < 0.0 or hi > 1.0:
            hint = " (rescale them to [0, 1]; values are never clipped)"
            if lo >= 0.0 and hi <= 255.0:
                hint = " (they look like [0, 255] pixels: pass uint8 or divide by 255)"
            elif lo >= -1.0 and hi <= 1.0:
                hint = " (they look like [-1, 1]: map them with (x + 1) / 2)"
            raise ValueError(
                f"Expected float `{name}` in [0, 1]{hint}. Received: dtype={x.dtype}, range=[{lo:.4g}, {hi:.4g}]"
            )
    else:
        raise ValueError(f"Expected uint8 images in [0, 255] or float images in [0, 1]. Received: dtype={x.dtype}")
    return x


def check_vectors(vectors, name="inputs"):
    """Checks a (num_rows, features) array of finite numbers; returns it as float32."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"Expected `{name}` of rank 2 (num_rows, features). Received: shape={x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty. Received: shape={x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"Expected numeric `{name}`. Received: dtype={x.dtype}")
    x = x.astype("float32", copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return x


def check_token_ids(token_ids, name="token_ids", vocabulary_size=None, max_length=None):
    """Checks a (num_sequences, length) array of integer ids; returns it as int32.

    Ids must lie in [0, vocabulary_size) when a size is given (an embedding
    lookup out of range returns NaN on JAX and fails deep inside TensorFlow),
    and sequences may hold at most `max_length` tokens when that is given.
    """
    x = np.asarray(token_ids)
    if x.ndim != 2:
        raise ValueError(f"Expected `{name}` of rank 2 (num_sequences, length). Received: shape={x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` is empty. Received: shape={x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"Expected integer `{name}`. Received: dtype={x.dtype}")
    if max_length and x.shape[1] > max_length:
        raise ValueError(
            f"Expected sequences of at most {max_length} tokens (the encoder's maximum). Received: {x.shape[1]}"
        )
    low, high = int(x.min()), int(x.max())
    if low < 0 or (vocabulary_size is not None and high >= vocabulary_size):
        upper = f"{vocabulary_size}" if vocabulary_size is not None else "inf"
        raise ValueError(
            f"Token ids must lie in [0, {upper}). Received ids in [{low}, {high}] in `{name}` "
            "(ids index the vocabulary)"
        )
    return x.astype("int32", copy=False)


def to_float_images(images):
    """Checked images as float32 in [0, 1] (uint8 is divided by 255)."""
    x = check_images(images)
    return x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32", copy=False)


def draw_seed():
    """A seed for data shuffling drawn from NumPy's global generator, which `keras.utils.set_random_seed` seeds."""
    return int(np.random.randint(0, 2**31 - 1))


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled full batches of an in-memory array, in an order fixed by `(seed, epoch)`.

    The last partial batch is dropped, so contrastive losses always see
    `batch_size` images (a batch of one has no negatives). Epoch `e` visits the
    rows in the permutation drawn from `numpy.random.default_rng([seed, e])`,
    so the order does not depend on how many epochs ran before in this
    process: a resumed run, or another worker, draws the same batches.
    `Method.fit` tells it the epoch (`set_position`) as each epoch begins.

    Args:
        images: the array (its first axis indexes samples).
        batch_size: rows per batch.
        shuffle: draw a new permutation each epoch (else the array's order).
        seed: the shuffling seed; default: drawn from NumPy's global generator,
            so `keras.utils.set_random_seed` makes it reproducible.
        row_indices: yield `(images, rows)`, the rows each batch came from.
        process_shard: `(index, count)`: this process yields only its slice
            of each global batch (a JAX run over several processes).
    """

    def __init__(self, images, batch_size, shuffle=True, seed=None, row_indices=False, process_shard=(0, 1), **kwargs):
        super().__init__(**kwargs)
        self.process_shard = tuple(process_shard)
        if batch_size % self.process_shard[1]:
            raise ValueError(
                f"The global batch ({batch_size}) must divide evenly over the {self.process_shard[1]} processes. "
                f"Received: batch_size={batch_size}"
            )
        self.images = images
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = draw_seed() if seed is None else int(seed)
        self.row_indices = row_indices
        self.epoch, self.first_step = 0, 0
        self.step_limit = None  # fit(steps_per_epoch=N) trains the first N batches of each epoch's order
        self._orders = {}

    @property
    def steps_per_epoch(self):
        full = len(self.images) // self.batch_size
        return full if self.step_limit is None else min(full, self.step_limit)

    def __len__(self):
        return self.steps_per_epoch - self.first_step

    def set_position(self, epoch, first_step=0):
        """Serves epoch `epoch` from its batch `first_step` on (a resumed epoch skips what it already trained)."""
        if not 0 <= first_step < self.steps_per_epoch:
            raise ValueError(f"first_step must be in [0, {self.steps_per_epoch}). Received: {first_step}")
        self.epoch, self.first_step = int(epoch), int(first_step)

    def order(self, epoch):
        """The row order of epoch `epoch`."""
        if epoch not in self._orders:
            rows = np.arange(len(self.images))
            if self.shuffle:
                rows = np.random.default_rng([self.seed, epoch]).permutation(rows)
            self._orders = {epoch: rows}  # only the current epoch's order is kept
        return self._orders[epoch]

    def rows(self, index):
        """The sorted array rows of batch `index` (counted from `first_step`) of the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range for {len(self)} batches.")
        start = (index + self.first_step) * self.batch_size
        rows = np.sort(self.order(self.epoch)[start : start + self.batch_size])
        process, processes = self.process_shard
        local = self.batch_size // processes
        return rows[process * local : (process + 1) * local]

    def __getitem__(self, index):
        rows = self.rows(index)
        return (self.images[rows], rows.astype("int32")) if self.row_indices else self.images[rows]
