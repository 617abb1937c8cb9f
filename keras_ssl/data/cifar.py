"""CIFAR-10 as a NumPy .npz file (the format of ../shared/data and of `np.savez`).

For the official `cifar-10-python.tar.gz`, use `keras.datasets.cifar10.load_data()`:
Keras reads its pickled batches with a restricted unpickler, so keras_ssl
carries no reader of its own.
"""

import os
import zipfile
import zlib

import numpy as np

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = len(CIFAR10_LABELS)
_IMAGE_SHAPE = (32, 32, 3)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def check_labels(labels, count, source, num_classes=NUM_CLASSES):
    """Flat uint8 class ids in [0, num_classes), one per image; `(N, 1)` labels are flattened."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (count,):
        raise ValueError(f"{source}: expected labels of shape ({count},). Received: {labels.shape}")
    if count and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{source}: expected integer labels. Received: dtype {labels.dtype}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{source}: expected labels in 0..{num_classes - 1}. Received: values in {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.uint8)


def _split(archive, x_key, y_key, path):
    try:
        x, y = archive[x_key], archive[y_key]
    except ValueError as error:  # object arrays with allow_pickle=False
        raise ValueError(f"{path!r}: could not load {x_key!r}/{y_key!r} without pickle: {error}") from error
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise ValueError(
            f"{path!r}: could not read {x_key!r}/{y_key!r}; the file is truncated or corrupt "
            f"({type(error).__name__}: {error})"
        ) from error
    if x.dtype != np.uint8:
        raise ValueError(f"{path!r}: expected {x_key!r} of dtype uint8. Received: {x.dtype}")
    if x.ndim != 4 or x.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(f"{path!r}: expected {x_key!r} of shape (N, 32, 32, 3). Received: {x.shape}")
    return x, check_labels(y, x.shape[0], f"{path!r} key {y_key!r}")


def load_cifar10_npz(path):
    """`((x_train, y_train), (x_test, y_test))` from a CIFAR-10 .npz, read with `allow_pickle=False`.

    The file must hold `x_train`/`x_test` (uint8, (N, 32, 32, 3), NHWC RGB)
    and `y_train`/`y_test` (integer labels 0..9, shape (N,) or (N, 1)); other
    keys are ignored. Labels come back flat, as uint8.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is not a readable .npz, a key is missing, or an
            array has the wrong shape, dtype or label range.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"CIFAR-10 npz file not found: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Expected a CIFAR-10 .npz file. Received a directory: {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"could not read CIFAR-10 npz file {path!r}: expected a NumPy .npz archive "
            f"({type(error).__name__}: {error})"
        ) from error
    if isinstance(archive, np.ndarray):
        raise ValueError(f"{path!r}: expected a .npz archive with keys {list(_NPZ_KEYS)}, found a single np.save array")
    with archive:
        missing = [k for k in _NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(
                f"{path!r}: missing key(s) {missing}; expected keys {list(_NPZ_KEYS)}. "
                f"Received: {sorted(archive.files)}"
            )
        return _split(archive, "x_train", "y_train", path), _split(archive, "x_test", "y_test", path)
