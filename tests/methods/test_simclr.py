import keras
import numpy as np
import pytest

from keras_ssl import augment, backbones, evaluation, methods
from keras_ssl.testing import cifar10_sample


def tiny_simclr(**kwargs):
    encoder = backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3))
    return methods.SimCLR(encoder, projection_dim=8, hidden_dim=16, **kwargs)


def test_simclr_fits_float_images_and_tf_data():
    import tensorflow as tf

    (x, _), _ = cifar10_sample(num_train=16)
    method = tiny_simclr()
    method.compile(optimizer=keras.optimizers.SGD(0.05))
    history = method.fit(x.astype("float32") / 255.0, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(8, drop_remainder=True)
    history = method.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_simclr_fits_a_tfds_dataset_offline():
    import tensorflow_datasets as tfds

    method = tiny_simclr()
    method.compile(optimizer=keras.optimizers.SGD(0.05))
    # mock_data serves generated examples with cifar10's real feature spec, no download.
    with tfds.testing.mock_data(num_examples=16):
        history = method.fit("cifar10", batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_loss_is_ln_of_negatives_when_views_are_identical_and_features_constant():
    # With a constant encoder output every similarity is 1, so the NT-Xent of
    # each anchor is log(2N - 1): a check of the whole pipeline's arithmetic.
    (x, _), _ = cifar10_sample(num_train=8)
    inputs = keras.Input((32, 32, 3))
    constant = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones")(
        keras.layers.GlobalAveragePooling2D()(inputs)
    )
    identity = augment.ImageAugmenter(
        crop_scale=(1, 1), crop_ratio=(1, 1), flip=False, jitter_strength=0, grayscale_probability=0
    )
    method = methods.SimCLR(
        keras.Model(inputs, constant), augmenter=augment.MultiViewAugmenter([identity, identity]), projection_dim=4
    )
    method.build((None, 32, 32, 3))
    method.projector.set_weights([np.eye(4, dtype="float32")[:, :4], *method.projector.get_weights()[1:]])
    loss, logs = method.compute_ssl_loss(keras.ops.convert_to_tensor(x), training=False)
    assert float(loss) == pytest.approx(np.log(2 * 8 - 1), rel=1e-4)
    assert float(logs["embedding_std"]) == pytest.approx(0.0, abs=1e-5)


def test_knn_monitor_logs_accuracy_every_epoch():
    (x, y), (xt, yt) = cifar10_sample(num_train=16, num_test=8)
    method = tiny_simclr()
    method.compile(optimizer=keras.optimizers.SGD(0.05))
    monitor = evaluation.KNNMonitor(x, y, xt, yt, k=5)
    history = method.fit(x, batch_size=8, epochs=2, verbose=0, callbacks=[monitor])
    assert [epoch for epoch, _ in monitor.history] == [1, 2]
    assert all(0.0 <= acc <= 1.0 for acc in history.history["knn_accuracy"])


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((4, 32, 32), "uint8"), "rank 4"),
        (np.zeros((4, 32, 32, 4), "uint8"), "1 or 3 channels"),
        (np.full((4, 32, 32, 3), 255.0, "float32"), r"\[0, 1\]"),
        (np.ones((4, 32, 32, 3), "uint8"), "cast to uint8"),
        (np.zeros((4, 32, 32, 3), "int64"), "dtype=int64"),
        (np.zeros((0, 32, 32, 3), "uint8"), "empty"),
    ],
)
def test_bad_images_are_refused_with_expected_and_received(images, match):
    with pytest.raises(ValueError, match=match):
        tiny_simclr().fit(images, batch_size=2, verbose=0)


def test_a_batch_of_one_is_refused():
    (x, _), _ = cifar10_sample(num_train=4)
    with pytest.raises(ValueError, match="at least 2 images per batch.*batch_size=1"):
        tiny_simclr().fit(x, batch_size=1, verbose=0)
    with pytest.raises(ValueError, match="at least 2 images per batch.*1 image"):
        tiny_simclr().fit(x[:1], verbose=0)


def test_bad_datasets_are_refused():
    import tensorflow as tf

    (x, _), _ = cifar10_sample(num_train=4)
    with pytest.raises(ValueError, match="empty"):
        tiny_simclr().fit(tf.data.Dataset.from_tensor_slices(x).batch(2).take(0), verbose=0)
    with pytest.raises(ValueError, match=r"call \.batch\(\)"):
        tiny_simclr().fit(tf.data.Dataset.from_tensor_slices(x), verbose=0)
    with pytest.raises(ValueError, match="at least 2 images per batch"):
        tiny_simclr().fit(tf.data.Dataset.from_tensor_slices(x).batch(1, drop_remainder=True), verbose=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        tiny_simclr(temperature=0)
    with pytest.raises(ValueError, match="keras.Model"):
        methods.SimCLR("resnet")
    with pytest.raises(ValueError, match="Unknown method 'simclrr'"):
        methods.get_method("simclrr")


@pytest.mark.large
def test_a_second_fit_trains_again_with_the_default_schedule():
    (x, _), _ = cifar10_sample(num_train=16)
    method = tiny_simclr()
    method.fit(x, batch_size=8, epochs=1, verbose=0)
    before = [np.array(v) for v in method.encoder.trainable_weights]
    method.fit(x, batch_size=8, epochs=1, verbose=0)
    after = [np.array(v) for v in method.encoder.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_fit_accepts_a_py_dataset_before_the_method_is_built():
    from keras_ssl import data

    (x, _), _ = cifar10_sample(num_train=16)
    method = tiny_simclr()
    history = method.fit(data.ArrayBatches(x, 8), epochs=1, verbose=0)
    assert method.built and np.isfinite(history.history["loss"][0])


def test_a_dataset_whose_batches_hold_one_image_is_refused():
    import tensorflow as tf

    (x, _), _ = cifar10_sample(num_train=4)
    with pytest.raises(ValueError, match="at least 2 images per batch.*batch size 1"):
        tiny_simclr().fit(tf.data.Dataset.from_tensor_slices(x).batch(1), verbose=0)
