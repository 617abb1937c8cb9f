"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""

import keras
from keras import ops

from keras_ssl.losses.normalize import l2_normalize


def nt_xent(z1, z2, temperature=0.5):
    """SimCLR's contrastive loss (Chen et al., 2020, eq. 1), averaged over 2N anchors.

    Formula:
        z = l2_normalize(concat([z1, z2]))               # (2N, D)
        s_ij = z_i . z_j / temperature                    # cosine similarities
        l_i = -s_{i,p(i)} + log sum_{j != i} exp(s_ij)    # p(i): the other view of i
        loss = mean_i l_i

    Each anchor's positive is the other view of the same image; the remaining
    2N - 2 views are its negatives, and self-similarities are excluded.
    Computed in float32 whatever the inputs' dtype.

    Args:
        z1, z2: (N, D) projections of the two views; row i of both comes from
            the same image. N must be at least 2.
        temperature: softmax temperature (> 0).

    Returns:
        A float32 scalar.
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
    if len(z1.shape) != 2 or tuple(z1.shape) != tuple(z2.shape):
        raise ValueError(
            f"Expected two (batch, dim) tensors of the same shape. Received: {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] is not None and z1.shape[0] < 2:
        raise ValueError(
            "NT-Xent needs at least 2 images per batch so that each view has negatives. "
            f"Received: batch size {z1.shape[0]}"
        )
    n = ops.shape(z1)[0]
    z = ops.concatenate([z1, z2], axis=0)
    z = l2_normalize(ops.cast(z, "float32"))  # (2N, D)
    logits = ops.matmul(z, ops.transpose(z)) / temperature  # (2N, 2N)
    # A large negative (not -inf) on the diagonal keeps the softmax finite.
    logits = logits - 1e9 * ops.eye(2 * n, dtype="float32")
    positives = ops.concatenate([ops.arange(n, 2 * n), ops.arange(0, n)], axis=0)
    losses = keras.losses.sparse_categorical_crossentropy(positives, logits, from_logits=True)
    return ops.mean(losses)


@keras.saving.register_keras_serializable(package="keras_ssl")
class NTXent(keras.losses.Loss):
    """`nt_xent` as a `keras.losses.Loss`: call it with `(z1, z2)`."""

    def __init__(self, temperature=0.5, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, z1, z2):
        return nt_xent(z1, z2, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
