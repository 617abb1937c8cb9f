"""InfoNCE with explicit or in-batch negatives (van den Oord et al., 2018; MoCo)."""

import keras
from keras import ops

from keras_ssl.losses.normalize import l2_normalize


def info_nce(query, positive_key, negative_keys=None, temperature=0.07):
    """Cross-entropy of each query's positive key against its negatives.

    Formula:
        q, k+, k- = l2_normalize(query, positive_key, negative_keys)
        l_i = -log( exp(q_i . k+_i / T) / (exp(q_i . k+_i / T) + sum_j exp(q_i . k-_j / T)) )
        loss = mean_i l_i

    With `negative_keys=None`, the other rows of `positive_key` are the
    negatives of each query (the in-batch form used by MoCo v3 and CLIP).
    Computed in float32.

    Args:
        query: (N, D) queries.
        positive_key: (N, D); row i is the positive of query i.
        negative_keys: (K, D) negatives shared by every query (a MoCo queue),
            or None.
        temperature: softmax temperature (> 0).
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive. Received: temperature={temperature}")
    if len(query.shape) != 2 or tuple(query.shape) != tuple(positive_key.shape):
        raise ValueError(
            "Expected `query` and `positive_key` of the same shape (batch, dim). "
            f"Received: {tuple(query.shape)} and {tuple(positive_key.shape)}"
        )
    q = l2_normalize(ops.cast(query, "float32"))
    k = l2_normalize(ops.cast(positive_key, "float32"))
    if negative_keys is None:
        if query.shape[0] is not None and query.shape[0] < 2:
            raise ValueError(f"In-batch negatives need at least 2 rows. Received: batch size {query.shape[0]}")
        logits = ops.matmul(q, ops.transpose(k)) / temperature  # (N, N): diagonal = positives
        labels = ops.arange(ops.shape(q)[0])
    else:
        if len(negative_keys.shape) != 2 or negative_keys.shape[1] != query.shape[1]:
            raise ValueError(
                f"Expected `negative_keys` of shape (num_negatives, {query.shape[1]}). "
                f"Received: {tuple(negative_keys.shape)}"
            )
        n = l2_normalize(ops.cast(negative_keys, "float32"))
        positive = ops.sum(q * k, axis=1, keepdims=True)  # (N, 1)
        logits = ops.concatenate([positive, ops.matmul(q, ops.transpose(n))], axis=1) / temperature  # (N, 1 + K)
        labels = ops.zeros((ops.shape(q)[0],), dtype="int32")
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="keras_ssl")
class InfoNCE(keras.losses.Loss):
    """`info_nce` as a Loss: call it with `(query, positive_key)`; negatives are in-batch."""

    def __init__(self, temperature=0.07, name="info_nce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, query, positive_key):
        return info_nce(query, positive_key, None, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
