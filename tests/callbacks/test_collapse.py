import warnings

import keras
import numpy as np

from keras_ssl import augment, callbacks, methods
from keras_ssl.testing import cifar10_sample


def constant_encoder():
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones")(pooled))


def test_a_collapsed_method_warns_exactly_once():
    (x, _), _ = cifar10_sample(num_train=8)
    identity = augment.ImageAugmenter(
        crop_scale=(1, 1), crop_ratio=(1, 1), flip=False, jitter_strength=0, grayscale_probability=0
    )
    method = methods.SimCLR(
        constant_encoder(), augmenter=augment.MultiViewAugmenter([identity, identity]), projection_dim=4
    )
    method.compile(optimizer=keras.optimizers.SGD(0.0))  # nothing moves: it stays collapsed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = method.fit(x, batch_size=4, epochs=3, verbose=0)
    collapse = [w for w in caught if "collapsed" in str(w.message)]
    assert len(collapse) == 1 and issubclass(collapse[0].category, RuntimeWarning)
    assert max(history.history["embedding_std"]) < 1e-4


def test_a_healthy_std_does_not_warn():
    callback = callbacks.CollapseWarning()
    callback.set_model(type("M", (), {"embedding_dim": 16})())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_epoch_end(0, {"embedding_std": 1 / np.sqrt(16)})
    assert not callback.warned
