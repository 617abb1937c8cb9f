"""argparse `type=` helpers: a value out of range is a usage error (exit code 2) that says what was expected.

No framework is imported here, so `keras-ssl --help` and argument errors stay instant.
"""

import argparse
import math

BACKBONES = ("resnet18", "resnet34", "resnet50", "convnet", "vit-nano", "vit-tiny", "vit-small")
APPLICATIONS_PREFIX = "keras.applications."
STEMS = ("cifar", "imagenet")
DISTRIBUTE = ("auto", "none", "mirrored", "multi-worker", "data-parallel")


def _number(text, kind, what):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}. Received: {text!r}") from None


def backbone(text):
    """A built-in backbone name or `keras.applications.<Constructor>` (looked up when the backbone is built)."""
    if text in BACKBONES:
        return text
    constructor = text.removeprefix(APPLICATIONS_PREFIX)
    if text.startswith(APPLICATIONS_PREFIX) and constructor.isidentifier() and constructor[:1].isupper():
        return text
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(BACKBONES)} or keras.applications.NAME (e.g. "
        f"keras.applications.MobileNetV3Small). Received: {text!r}"
    )


def positive_int(text):
    """An int >= 1 (epochs, batch size, steps, k, image size)."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (1 or more). Received: {text}")
    return value


def non_negative_int(text):
    """An int >= 0 (a seed)."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0. Received: {text}")
    return value


def positive_float(text):
    """A finite float > 0 (learning rate, width, temperature)."""
    value = _number(text, float, "a positive number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0. Received: {text}")
    return value


def fraction(text):
    """A float strictly between 0 and 1 (a test split's share)."""
    value = _number(text, float, "a number between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1. Received: {text}")
    return value


def save_frequency(text):
    """'epoch' or a positive number of steps (`--checkpoint-every`)."""
    if text == "epoch":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'epoch' or a positive number of steps. Received: {text!r}"
        ) from None


def shape(text):
    """A comma-separated input shape: positive ints, or "none" for an open size ("32,32,3", "none,none,3", "128")."""
    parts = [part.strip().lower() for part in text.split(",")]
    try:
        dims = tuple(None if part == "none" else int(part) for part in parts)
    except ValueError:
        dims = ()
    if not dims or any(d is not None and d < 1 for d in dims):
        raise argparse.ArgumentTypeError(
            f"expected positive sizes separated by commas, 'none' for an open one (e.g. 32,32,3). Received: {text!r}"
        )
    return dims
