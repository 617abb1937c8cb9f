"""Every registered method: trains two steps on real data, round-trips its config.

Tests are generated from the method registry, so a new method needs no new
test code here, only an entry in `keras_ssl.testing.TINY_METHOD_KWARGS` when its constructor needs
more than an encoder.
"""

import keras
import numpy as np
import pytest

from keras_ssl import backbones, methods
from keras_ssl.testing import (
    TINY_METHOD_KWARGS,
    cifar10_sample,
    shared_data_file,
    tensorboard_tags,
    weights_changed,
    weights_snapshot,
)

METHOD_KWARGS = TINY_METHOD_KWARGS


def tiny_encoder():
    # Spatial size left open: DINO feeds smaller local crops.
    return backbones.ConvNet(filters=(4, 8), input_shape=(None, None, 3))


# Methods whose encoder must be of a kind, or of a fixed size (decoders mirror it).
ENCODERS = {
    "autoencoder": lambda: backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)),
    "denoising_autoencoder": lambda: backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)),
    "vae": lambda: backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)),
    "mae": lambda: backbones.ViT("nano", image_size=32, dim=16, depth=1, num_heads=2),
    "masked_lm": lambda: backbones.TransformerEncoder(60, "tiny", max_length=16, dim=16, num_heads=2),
}


def real_inputs(method, n):
    """`(data for fit, the same data as the encoder takes it)`: CIFAR-10 images, or WikiText-2 token ids."""
    if method.input_kind == "tokens":
        with open(shared_data_file("wikitext-2/wiki.valid.tokens"), encoding="utf-8") as f:
            words = f.read(20000).split()
        # Word ids by first appearance, 5.. (0-4 are the special tokens), capped to the tiny vocabulary.
        index = {}
        ids = np.array([min(5 + index.setdefault(w, len(index)), 59) for w in words[: n * 14]], "int32").reshape(n, 14)
        ids = np.concatenate([np.full((n, 1), 2), ids, np.full((n, 1), 3)], axis=1).astype("int32")  # [CLS] ... [SEP]
        return ids, ids
    (x, _), _ = cifar10_sample(num_train=n)
    return x, x.astype("float32") / 255.0


# Every registered Keras method (Word2Vec is trained by gensim; tests/methods/test_word2vec.py covers it).
KERAS_METHODS = [name for name in methods.list_methods() if issubclass(methods.get_method(name), methods.Method)]


@pytest.fixture(params=KERAS_METHODS)
def method(request):
    cls = methods.get_method(request.param)
    return cls(ENCODERS.get(request.param, tiny_encoder)(), **METHOD_KWARGS.get(request.param, {}))


def test_two_steps_finite_loss_and_encoder_changes(method, tmp_path):
    x, _ = real_inputs(method, 16)
    method.compile(optimizer=keras.optimizers.SGD(0.1))
    method.build((None, *x.shape[1:]))
    before = weights_snapshot(method.encoder)
    board = keras.callbacks.TensorBoard(tmp_path)
    history = method.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[board])
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["embedding_std"][0] <= 1.0
    assert weights_changed(before, method.encoder)
    # TensorBoard records every logged metric of every method, and the learning rate.
    assert tensorboard_tags(tmp_path) >= {f"epoch_{name}" for name in history.history} | {"epoch_learning_rate"}


def test_config_round_trip(method):
    config = keras.saving.serialize_keras_object(method)
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(restored) is type(method)
    assert restored.get_config() == method.get_config()
    assert restored.encoder.count_params() == method.encoder.count_params()


def test_predict_returns_encoder_features(method):
    x, encoder_x = real_inputs(method, 4)
    features = method.predict(x, verbose=0)
    expected = method.encoder.predict(encoder_x, verbose=0)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_default_schedule_warms_up_then_decays():
    (x, _), _ = cifar10_sample(num_train=16)
    method = methods.SimCLR(tiny_encoder(), projection_dim=8)
    method.compile(learning_rate=0.01, warmup_fraction=0.5)
    method.fit(x, batch_size=4, epochs=1, verbose=0)  # 4 steps: 2 warm-up, 2 cosine
    schedule = method.optimizer._learning_rate
    rates = [float(schedule(step)) for step in range(5)]
    assert rates[0] == 0.0 and rates[2] == pytest.approx(0.01)
    assert rates[4] < rates[3] < rates[2]


def test_steps_per_epoch_caps_an_epoch_of_arrays():
    (x, _), _ = cifar10_sample(num_train=32)
    method = methods.SimCLR(tiny_encoder(), projection_dim=8)
    method.fit(x, batch_size=8, epochs=2, steps_per_epoch=1, verbose=0)  # 4 batches per epoch, capped at 1
    assert int(keras.ops.convert_to_numpy(method.optimizer.iterations)) == 2
    with pytest.raises(ValueError, match=r"steps_per_epoch=5 asks for more batches than an epoch of this input holds"):
        method.fit(x, batch_size=8, steps_per_epoch=5, verbose=0)
