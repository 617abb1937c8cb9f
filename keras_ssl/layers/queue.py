"""A first-in-first-out queue of feature vectors (MoCo's dictionary of negatives)."""

import keras
from keras import ops

from keras_ssl.losses.normalize import l2_normalize


@keras.saving.register_keras_serializable(package="keras_ssl")
class FeatureQueue(keras.layers.Layer):
    """Holds the `size` most recent keys of dimension `dim` as non-trainable state.

    The queue and its write position are Keras variables, so they are saved
    and restored with the method's weights and update inside the compiled
    train step on every backend. Initialised with random unit vectors, as in
    MoCo.
    """

    def __init__(self, size, dim, **kwargs):
        super().__init__(**kwargs)
        if size < 1 or dim < 1:
            raise ValueError(f"`size` and `dim` must be positive. Received: size={size}, dim={dim}")
        self.size, self.dim = int(size), int(dim)
        self.keys = self.add_weight(
            shape=(self.size, self.dim), initializer="random_normal", trainable=False, name="keys"
        )
        self.keys.assign(l2_normalize(self.keys))
        self.position = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="position")
        self.built = True

    def push(self, keys):
        """Writes a batch of keys over the oldest ones (wrapping around)."""
        n = keys.shape[0]
        if n is not None and n > self.size:
            raise ValueError(f"Cannot push {n} keys into a queue of size {self.size}.")
        rows = (self.position + ops.arange(ops.shape(keys)[0], dtype="int32")) % self.size
        self.keys.assign(
            ops.scatter_update(self.keys, rows[:, None], ops.cast(ops.stop_gradient(keys), self.keys.dtype))
        )
        self.position.assign((self.position + ops.shape(keys)[0]) % self.size)

    def call(self, inputs=None):
        return ops.convert_to_tensor(self.keys)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "dim": self.dim}
