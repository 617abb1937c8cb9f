"""Reconstruction terms: per-element errors, PSNR and the Gaussian KL of a VAE."""

import math

from keras import ops

RECONSTRUCTION_LOSSES = ("mse", "mae", "bce")


def reconstruction_error(target, prediction, kind="mse"):
    """Per-element error between `target` and `prediction`, same shape as both.

    "mse": squared error; "mae": absolute error; "bce": binary cross-entropy
    of a prediction in (0, 1) against a target in [0, 1] (images).
    """
    target = ops.cast(target, "float32")
    prediction = ops.cast(prediction, "float32")
    if kind == "mse":
        return ops.square(prediction - target)
    if kind == "mae":
        return ops.abs(prediction - target)
    if kind == "bce":
        p = ops.clip(prediction, 1e-7, 1.0 - 1e-7)
        return -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
    raise ValueError(f"`loss` must be one of {list(RECONSTRUCTION_LOSSES)}. Received: {kind!r}")


def psnr(target, prediction, max_value=1.0):
    """Mean over the batch of each sample's peak signal-to-noise ratio, in dB.

    PSNR = 10 log10(max_value^2 / MSE), MSE over all of a sample's elements;
    an exact reconstruction is capped at 100 dB.
    """
    target = ops.cast(target, "float32")
    prediction = ops.cast(prediction, "float32")
    axes = tuple(range(1, len(target.shape)))
    return psnr_from_mse(ops.mean(ops.square(prediction - target), axis=axes), max_value)


def psnr_from_mse(mse, max_value=1.0):
    """Mean of 10 log10(max_value^2 / mse) over per-sample MSEs (an exact match counts as 100 dB)."""
    return ops.mean(10.0 * ops.log(max_value**2 / ops.maximum(ops.cast(mse, "float32"), 1e-10)) / math.log(10.0))


def kl_divergence(mean, log_variance):
    """KL(N(mean, exp(log_variance)) || N(0, I)) per sample, summed over dimensions.

    The closed form of Kingma & Welling (2014), appendix B:
    -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    mean = ops.cast(mean, "float32")
    log_variance = ops.cast(log_variance, "float32")
    return -0.5 * ops.sum(1.0 + log_variance - ops.square(mean) - ops.exp(log_variance), axis=-1)
