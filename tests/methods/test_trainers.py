"""The backend halves of the training step (keras_ssl.trainers), on a toy method whose loss is known in closed form."""

import keras
import numpy as np
from keras import ops

from keras_ssl import methods

X = np.random.default_rng(0).random((8, 4), dtype="float32")


class MeanFeature(methods.Method):
    """Loss: the mean of the encoder's features, or of their squares (no augmentation: a known function of the weights).

    Not registered, so the registry-generated tests do not pick it up.
    """

    input_kind = "vectors"
    warns_on_collapse = False
    logged_metrics = ()

    def __init__(self, encoder, squared=False, **kwargs):
        super().__init__(encoder, **kwargs)
        self.squared = squared

    def compute_ssl_loss(self, inputs, training=True):
        features = self.encoder(inputs, training=training)
        return ops.mean(ops.square(features) if self.squared else features), {}


def dense_encoder(**kwargs):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False, name="dense", **kwargs)])


def test_the_step_adds_regularisation_and_tracks_the_unscaled_loss():
    encoder = dense_encoder(kernel_regularizer=keras.regularizers.L2(10.0))
    kernel = np.asarray(encoder.get_layer("dense").kernel)
    method = MeanFeature(encoder, squared=True)
    # A rate of 0 keeps the weights, so the logged loss is the loss at the initial weights; the loss scale
    # multiplies what is differentiated, never what is logged.
    method.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.0), initial_scale=1024.0))
    history = method.fit(X, batch_size=8, epochs=1, shuffle=False, verbose=0)
    expected = np.mean(np.square(X @ kernel)) + 10.0 * np.sum(np.square(kernel))
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_the_regularisers_gradient_reaches_the_weights():
    encoder = dense_encoder(kernel_regularizer=keras.regularizers.L2(0.5))
    before = np.asarray(encoder.get_layer("dense").kernel)
    method = MeanFeature(encoder)
    method.compile(optimizer=keras.optimizers.SGD(0.1))
    method.fit(X, batch_size=8, epochs=1, verbose=0)
    grad = np.repeat(X.mean(axis=0)[:, None], 3, axis=1) / 3.0 + 2 * 0.5 * before
    np.testing.assert_allclose(np.asarray(encoder.get_layer("dense").kernel), before - 0.1 * grad, atol=1e-6)


def test_gradients_do_not_accumulate_across_steps():
    # d mean(X @ W) / dW is the same at every step, so after two SGD steps W = W0 - 2 * lr * grad
    # (a gradient left over from the first step would make it 3 * lr * grad).
    encoder = dense_encoder()
    before = np.asarray(encoder.get_layer("dense").kernel)
    method = MeanFeature(encoder)
    method.compile(optimizer=keras.optimizers.SGD(0.5))
    method.fit(X, batch_size=4, epochs=1, shuffle=False, verbose=0)
    grad = np.repeat(X.mean(axis=0)[:, None], 3, axis=1) / 3.0
    np.testing.assert_allclose(np.asarray(encoder.get_layer("dense").kernel), before - 2 * 0.5 * grad, atol=1e-6)


def test_evaluate_runs_the_test_step():
    method = MeanFeature(dense_encoder())
    method.compile(optimizer=keras.optimizers.SGD(0.0))
    method.fit(X, batch_size=8, epochs=1, verbose=0)
    loss = method.evaluate(X, batch_size=8, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, np.mean(X @ np.asarray(method.encoder.get_layer("dense").kernel)), rtol=1e-5)
