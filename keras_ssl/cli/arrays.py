"""Images and labels from .npz files and labelled folders, resized for an encoder (the CLI's data plumbing)."""

import os

import numpy as np

TRAIN_PAIRS = (("x_train", "y_train"), ("images", "labels"), ("x", "y"))
TEST_PAIRS = (("x_test", "y_test"), ("images", "labels"), ("x", "y"), ("x_train", "y_train"))


def open_npz(path):
    """The NpzFile of `path`, read without pickle; a clear ValueError for anything else."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"Expected a NumPy .npz archive. Received: {path}, which cannot be read ({error})") from None
    if not hasattr(archive, "files"):
        raise ValueError(f"Expected an .npz archive of arrays. Received: {path}, a single array (np.save)")
    return archive


def npz_array_shapes(archive):
    """`{name: shape}` of an .npz's arrays, from their headers (nothing is loaded)."""
    shapes = {}
    for name in archive.files:
        with archive.zip.open(f"{name}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shapes[name] = read(f)[0]
    return shapes


def load_npz_images(path):
    """`(key, images)`: `x_train` if present, else `images`, else the only 4-D array of the .npz."""
    with open_npz(path) as archive:
        shapes = npz_array_shapes(archive)
        candidates = [key for key in ("x_train", "images") if key in shapes]
        if not candidates:
            candidates = [key for key, shape in shapes.items() if len(shape) == 4]
            if len(candidates) != 1:
                raise ValueError(
                    f"Expected an .npz holding images of shape (N, H, W, C): x_train, images, or a single 4-D "
                    f"array. Received: {path} with arrays {shapes}"
                )
        key = candidates[0]
        return key, archive[key]


def labelled_pair(path, pairs):
    """`(images, labels, "x_key/y_key")` of the first `(images key, labels key)` of `pairs` the .npz holds, or None."""
    with open_npz(path) as archive:
        for x_key, y_key in pairs:
            if x_key in archive.files and y_key in archive.files:
                images, labels = archive[x_key], archive[y_key]
                return images, check_labels(labels, len(images), f"{path}[{y_key}]"), f"{x_key}/{y_key}"
    return None


def npz_keys(path):
    with open_npz(path) as archive:
        return sorted(archive.files)


def check_labels(labels, count, source):
    """Flat integer class ids, one per image (`(N, 1)` is flattened)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (count,):
        raise ValueError(f"{source}: expected one label per image, shape ({count},). Received: shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ValueError(f"{source}: expected integer class ids. Received: dtype {labels.dtype}")
    return labels.astype(np.int64)


def resize_images(images, size, batch_size=256):
    """Images (NHWC) with their central square resized to `size` (antialiased bilinear); the dtype is kept."""
    from keras import ops

    if images.shape[1:3] == (size, size):
        return images
    parts = []
    for start in range(0, len(images), batch_size):
        batch = ops.image.resize(
            images[start : start + batch_size].astype("float32"),
            (size, size),
            interpolation="bilinear",
            antialias=True,
            crop_to_aspect_ratio=True,
        )
        parts.append(ops.convert_to_numpy(batch))
    resized = np.concatenate(parts)
    if images.dtype == np.uint8:
        return np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return np.clip(resized, 0.0, 1.0).astype(images.dtype)


def match_channels(images, channels):
    """Grayscale -> RGB by repetition, RGB -> grayscale by luminance (ITU-R 601), as an encoder expects."""
    have = images.shape[-1]
    if channels is None or have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have == 3 and channels == 1:
        gray = images.astype("float32") @ np.array([0.299, 0.587, 0.114], dtype="float32")
        gray = np.round(gray) if images.dtype == np.uint8 else gray
        return gray[..., None].astype(images.dtype)
    raise ValueError(f"Expected images with 1 or 3 channels for a {channels}-channel encoder. Received: {have}")


def labelled_folder(directory, image_size, channels=3):
    """`(images, class names per image)` of a folder with one subfolder per class (images at any depth below it).

    Each class is read by its own `keras_ssl.data.image_folder` (sorted, unshuffled), so a file that fails to
    decode can only be replaced by an image of the same class.
    """
    from keras_ssl import data

    directory = os.path.abspath(os.path.expanduser(directory))
    entries = sorted(e for e in os.listdir(directory) if not e.startswith("."))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    loose = [e for e in entries if e.lower().endswith(data.IMAGE_EXTENSIONS)]
    if not classes or loose:
        raise ValueError(
            f"Expected a labelled folder: one subfolder of images per class. Received: {directory} with "
            f"{len(classes)} subfolder(s) and {len(loose)} image(s) directly inside it"
        )
    images, names = [], []
    for name in classes:
        reader = data.image_folder(
            os.path.join(directory, name), image_size, batch_size=1, shuffle=False, channels=channels
        )
        batches = reader.dataset(0).unbatch().batch(256)
        images += [np.asarray(batch) for batch in batches.as_numpy_iterator()]
        names += [name] * reader.num_images
    return np.concatenate(images), np.array(names)


def stratified_split(labels, fraction, seed=0):
    """`(train rows, test rows)`: `fraction` of each class (at least one image of a class of two or more) held out."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        held = min(len(rows) - 1, max(1, round(fraction * len(rows)))) if len(rows) > 1 else 0
        test.append(rows[:held])
        train.append(rows[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))  # the data's own order
