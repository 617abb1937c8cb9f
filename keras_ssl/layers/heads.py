"""Projection and prediction heads, described as data.

A head is a list of `(units, batch_norm, activation)` tuples, one per Dense
layer; `mlp_head` turns it into a `keras.Sequential`.
"""

import keras
from keras import layers


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
