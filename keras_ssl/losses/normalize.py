"""Numerically safe L2 normalisation shared by the losses."""

from keras import ops


def l2_normalize(z):
    """Rows of `z` scaled to unit L2 norm; all-zero rows stay zero.

    Each row is first divided by its largest magnitude, so the sum of squares
    can neither overflow (|z| > ~1e19) nor underflow (|z| < ~1e-19) in float32.
    The result does not depend on that per-row scale, so stopping its gradient
    is exact. All-zero rows (a collapsed projection) get a zero output and a
    zero, not NaN, gradient.
    """
    scale = ops.max(ops.abs(z), axis=1, keepdims=True)
    nonzero = scale > 0
    u = ops.where(nonzero, z / ops.stop_gradient(ops.where(nonzero, scale, 1.0)), 1.0)
    u = u * ops.rsqrt(ops.sum(ops.square(u), axis=1, keepdims=True))
    return ops.where(nonzero, u, 0.0)
