"""Projection and prediction heads, described as data.

A head is a list of `(units, batch_norm, activation)` tuples, one per Dense
layer; `mlp_head` turns it into a `keras.Sequential`.
"""

import keras
from keras import layers, ops

from keras_ssl.losses.normalize import l2_normalize


def mlp_head(spec, name="head"):
    """Builds a Sequential MLP from `[(units, batch_norm, activation), ...]`."""
    if not spec:
        raise ValueError(f"A head needs at least one layer. Received: spec={spec!r}")
    stack = []
    for i, (units, batch_norm, activation) in enumerate(spec):
        stack.append(layers.Dense(int(units), use_bias=not batch_norm, name=f"{name}_dense{i + 1}"))
        if batch_norm:
            stack.append(layers.BatchNormalization(name=f"{name}_bn{i + 1}"))
        if activation:
            stack.append(layers.Activation(activation, name=f"{name}_act{i + 1}"))
    return keras.Sequential(stack, name=name)


def simclr_projection_head(hidden_dim, output_dim=128):
    """SimCLR's g(.): "a MLP with one hidden layer" (Chen et al., 2020, sec. 2.1).

    Dense -> BatchNorm -> ReLU -> Dense, as in the paper's CIFAR code.
    """
    return mlp_head([(hidden_dim, True, "relu"), (output_dim, False, None)], name="projection_head")


@keras.saving.register_keras_serializable(package="keras_ssl")
class PrototypeLayer(layers.Layer):
    """A bias-free Dense layer whose weight columns are L2-normalised (weight norm, g = 1).

    DINO's last layer: "a weight normalized fully connected layer with K
    dimensions" (Caron et al., 2021); each output is a cosine to a prototype.
    """

    def __init__(self, num_prototypes, **kwargs):
        super().__init__(**kwargs)
        self.num_prototypes = int(num_prototypes)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.num_prototypes), initializer="glorot_uniform", name="kernel"
        )

    def call(self, x):
        kernel = l2_normalize(self.kernel, axis=0)  # unit columns: each output is a cosine
        return ops.matmul(x, ops.cast(kernel, x.dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_prototypes)

    def get_config(self):
        return {**super().get_config(), "num_prototypes": self.num_prototypes}


@keras.saving.register_keras_serializable(package="keras_ssl")
class L2Normalize(layers.Layer):
    """Scales each row to unit L2 norm (DINO's bottleneck normalisation)."""

    def call(self, x):
        return l2_normalize(x)


def dino_projector(hidden_dim, bottleneck_dim, name="dino_projector"):
    """DINO's head up to its prototypes: 3-layer GELU MLP -> L2-normalised bottleneck.

    The full head is this followed by `PrototypeLayer(num_prototypes)`; DINO
    keeps the two apart because it monitors the bottleneck.
    """
    stack = [
        layers.Dense(hidden_dim, activation="gelu", name=f"{name}_dense1"),
        layers.Dense(hidden_dim, activation="gelu", name=f"{name}_dense2"),
        layers.Dense(bottleneck_dim, name=f"{name}_bottleneck"),
        L2Normalize(name=f"{name}_normalize"),
    ]
    return keras.Sequential(stack, name=name)
