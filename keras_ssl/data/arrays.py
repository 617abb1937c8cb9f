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
            hint = " (they look like [0, 255] pixels: pass uint8 or divide by 255)" if hi > 1.0 and hi <= 255.0 else ""
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


def check_token_ids(token_ids, name="token_ids"):
    """Checks a (num_sequences, length) array of non-negative integer ids; returns it as int32."""
    x = np.asarray(token_ids)
    if x.ndim != 2:
        raise ValueError(f"Expected `{name}` of rank 2 (num_sequences, length). Received: shape={x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` is empty. Received: shape={x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"Expected integer `{name}`. Received: dtype={x.dtype}")
    if x.min() < 0:
        raise ValueError(f"Token ids must be >= 0. Received a minimum of {int(x.min())}")
    return x.astype("int32", copy=False)


def to_float_images(images):
    """Checked images as float32 in [0, 1] (uint8 is divided by 255)."""
    x = check_images(images)
    return x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32", copy=False)


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled full batches of an in-memory array, reshuffled every epoch.

    The last partial batch is dropped, so contrastive losses always see
    `batch_size` images (a batch of one has no negatives).
    """

    def __init__(self, images, batch_size, shuffle=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(images))
        self.on_epoch_end()

    def __len__(self):
        return len(self.images) // self.batch_size

    def rows(self, index):
        """The sorted array rows of batch `index` in the current epoch's order."""
        if index >= len(self):
            raise IndexError(f"Batch {index} out of range for {len(self)} batches.")
        return np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])

    def __getitem__(self, index):
        return self.images[self.rows(index)]

    def on_epoch_end(self):
        if self.shuffle:
            self._rng.shuffle(self._order)
