"""`keras-ssl evaluate`: kNN and linear-probe accuracy of an image encoder on labelled images."""

import json
import os

import numpy as np

from keras_ssl.cli import UsageError
from keras_ssl.cli.arrays import (
    TEST_PAIRS,
    TRAIN_PAIRS,
    labelled_folder,
    labelled_pair,
    match_channels,
    npz_keys,
    resize_images,
    stratified_split,
)

DEFAULT_FOLDER_TEST_FRACTION = 0.2
SPLIT_SEED = 0


def encoder_input(encoder, image_size):
    """`(size or None, channels or None)` the images must have: the encoder's, or --image-size for an open one."""
    shape = getattr(encoder, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0]
    height, width, channels = (tuple(shape)[1:] + (None, None, None))[:3] if shape else (None, None, None)
    if height is not None and height == width:
        if image_size is not None and image_size != height:
            raise UsageError(f"The encoder takes {height}x{width} images. Received: --image-size {image_size}")
        return height, channels
    return image_size, channels


def _check(path, what):
    if not os.path.exists(os.path.expanduser(path)):
        raise UsageError(f"{what}: expected an .npz file or a labelled folder. Received: {path!r} (no such path)")
    return os.path.expanduser(path)


def load_labelled(args, size, channels):
    """`((x_train, y_train), (x_test, y_test), description)` from --data / --test-data / --test-fraction.

    Labels come back as they were stored (ints for .npz, class names for folders); the caller maps them to ids.
    """
    data_path = _check(args.data, "--data")
    test_path = _check(args.test_data, "--test-data") if args.test_data else None
    if os.path.isdir(data_path):
        if size is None:
            raise UsageError("The encoder accepts any image size: pass --image-size to read the folder at one.")
        x, y = labelled_folder(data_path, size, channels or 3)
        # Folders come class by class: a random order keeps --train-size and --linear-size subsets balanced.
        order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
        x, y = x[order], y[order]
        if test_path is None:
            train, test = stratified_split(y, args.test_fraction or DEFAULT_FOLDER_TEST_FRACTION, SPLIT_SEED)
            split = f"{len(test)} held out (--test-fraction {args.test_fraction or DEFAULT_FOLDER_TEST_FRACTION})"
            return (x[train], y[train]), (x[test], y[test]), f"{args.data}: a labelled folder, {split}"
        if args.test_fraction:
            raise UsageError("Pass either --test-data or --test-fraction, not both.")
        return (x, y), _test_split(test_path, size, channels), f"{args.data}: a labelled folder; test: {args.test_data}"
    if not data_path.endswith(".npz"):
        raise UsageError(f"--data: expected an .npz file or a labelled folder. Received: {args.data!r}")
    found = labelled_pair(data_path, TRAIN_PAIRS)
    if found is None:
        raise ValueError(
            f"Expected {data_path} to hold labelled images: x_train/y_train, images/labels or x/y. Received arrays "
            f"{npz_keys(data_path)}"
        )
    x, y, keys = found
    if test_path is not None:
        if args.test_fraction:
            raise UsageError("Pass either --test-data or --test-fraction, not both.")
        return (x, y), _test_split(test_path, size, channels), f"{args.data} [{keys}]; test: {args.test_data}"
    test = labelled_pair(data_path, TEST_PAIRS[:1])
    if test is not None:
        if args.test_fraction:
            raise UsageError(f"{args.data} has a test split (x_test/y_test): --test-fraction applies to data without.")
        return (x, y), test[:2], f"{args.data} [{keys}, x_test/y_test]"
    if not args.test_fraction:
        raise UsageError(f"{args.data} has no test split (x_test/y_test): pass --test-data FILE or --test-fraction F.")
    train, held = stratified_split(y, args.test_fraction, SPLIT_SEED)
    description = f"{args.data} [{keys}], {len(held)} held out (--test-fraction {args.test_fraction})"
    return (x[train], y[train]), (x[held], y[held]), description


def _test_split(path, size, channels):
    if os.path.isdir(path):
        if size is None:
            raise UsageError("The encoder accepts any image size: pass --image-size to read the folder at one.")
        return labelled_folder(path, size, channels or 3)
    if not path.endswith(".npz"):
        raise UsageError(f"--test-data: expected an .npz file or a labelled folder. Received: {path!r}")
    found = labelled_pair(path, TEST_PAIRS)
    if found is None:
        raise ValueError(
            f"Expected {path} to hold labelled images (x_test/y_test, images/labels, x/y or x_train/y_train). "
            f"Received arrays {npz_keys(path)}"
        )
    return found[:2]


def prepare_images(images, size, channels, name):
    """Checked images with the encoder's channels and size."""
    from keras_ssl import data

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) grayscale
    images = data.check_images(images, name=name)
    images = match_channels(images, channels)
    return resize_images(images, size) if size is not None else images


def run(args):
    from keras_ssl import evaluation
    from keras_ssl.presets import load

    encoder = load(args.model, trainable=False)
    size, channels = encoder_input(encoder, args.image_size)
    (x_train, y_train), (x_test, y_test), description = load_labelled(args, size, channels)
    x_train = prepare_images(x_train[: args.train_size], size, channels, "training images")
    y_train = y_train[: args.train_size]
    x_test = prepare_images(x_test, size, channels, "test images")
    classes, ids = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    train_ids, test_ids = ids[: len(y_train)], ids[len(y_train) :]
    linear = min(args.linear_size, len(x_train))
    results = {
        "model": args.model,
        "data": args.data,
        "test_data": args.test_data,
        "split": description,
        "image_size": None if size is None else int(size),
        "num_classes": int(len(classes)),
        "knn": evaluation.knn_accuracy(
            encoder, x_train, train_ids, x_test, test_ids, k=args.k, temperature=args.temperature
        ),
        "linear_probe": evaluation.linear_probe(
            encoder, x_train[:linear], train_ids[:linear], x_test, test_ids, max_iter=300
        ),
        "k": args.k,
        "temperature": args.temperature,
        "train_size": int(len(x_train)),
        "test_size": int(len(x_test)),
        "linear_size": int(linear),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0
