"""Negative cosine similarity with a stop-gradient (SimSiam, BYOL)."""

from keras import ops

from keras_ssl.losses.normalize import l2_normalize


def negative_cosine_similarity(p, z):
    """Minus the mean cosine similarity of matching rows, `z` treated as a constant.

    Formula (Chen & He, 2021, eq. 1):
        D(p, z) = -mean_i ( p_i / ||p_i|| . stopgrad(z_i) / ||z_i|| )

    BYOL's loss is `2 + 2 * negative_cosine_similarity(p, z)`, i.e. the mean
    squared distance of the normalised vectors.
    """
    if tuple(p.shape) != tuple(z.shape) or len(p.shape) != 2:
        raise ValueError(
            f"Expected `p` and `z` of the same shape (batch, dim). Received: {tuple(p.shape)} and {tuple(z.shape)}"
        )
    p = l2_normalize(ops.cast(p, "float32"))
    z = l2_normalize(ops.stop_gradient(ops.cast(z, "float32")))
    return -ops.mean(ops.sum(p * z, axis=1))
