"""Numerically safe L2 normalisation: the one implementation the losses, heads, queues and evaluation share."""

from keras import ops


def l2_normalize(z, axis=-1):
    """`z` scaled to unit L2 norm along `axis`; all-zero vectors stay zero, NaN stays NaN.

    Each vector is first divided by its largest magnitude, so the sum of
    squares can neither overflow (|z| > ~1e19) nor underflow (|z| < ~1e-19)
    in float32. The result does not depend on that per-vector scale, so
    stopping its gradient is exact. All-zero vectors (a collapsed projection)
    get a zero output and a zero, not NaN, gradient. A vector holding NaN or
    infinity comes out as NaN: non-finite values are never hidden, so
    training stops on them instead of learning from zeros.
    """
    scale = ops.max(ops.abs(z), axis=axis, keepdims=True)
    nonzero = ops.not_equal(scale, 0.0)  # True for NaN, so NaN propagates
    u = ops.where(nonzero, z / ops.stop_gradient(ops.where(nonzero, scale, 1.0)), 1.0)
    u = u * ops.rsqrt(ops.sum(ops.square(u), axis=axis, keepdims=True))
    return ops.where(nonzero, u, 0.0)
