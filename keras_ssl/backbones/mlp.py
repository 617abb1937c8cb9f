"""A multilayer-perceptron encoder for vectors (tabular data, embeddings)."""

import keras
from keras import layers

from keras_ssl.backbones.validation import check_positive


def MLP(input_dim, hidden_dims=(256, 256), output_dim=128, batch_norm=True, name="mlp"):
    """Dense -> (BatchNorm) -> ReLU blocks, then a linear output layer.

    Args:
        input_dim: length of each input vector.
        hidden_dims: units of each hidden layer.
        output_dim: size of the feature vector returned.
        batch_norm: put BatchNormalization after each hidden Dense layer.
        name: model name.
    """
    check_positive("input_dim", input_dim)
    check_positive("output_dim", output_dim)
    inputs = keras.Input(shape=(int(input_dim),), name="features")
    x = inputs
    for i, units in enumerate(hidden_dims):
        check_positive("hidden_dims", units)
        x = layers.Dense(int(units), use_bias=not batch_norm, name=f"dense{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"dense{i + 1}_bn")(x)
        x = layers.Activation("relu", name=f"dense{i + 1}_relu")(x)
    outputs = layers.Dense(int(output_dim), name="output")(x)
    return keras.Model(inputs, outputs, name=name)
