"""Tests for keras_ssl.evaluation: weighted kNN, linear probe, feature extraction."""

import itertools

import numpy as np
import pytest

from keras_ssl.backbones import ConvNet
from keras_ssl.evaluation import extract_features, knn_accuracy, knn_predict, linear_probe


def reference_knn(train, labels, test, k, temperature):
    """Brute force: cosine similarities, the k most similar, exp(sim / T)-weighted votes."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    num_classes = labels.max() + 1
    predictions = []
    for query in test:
        sims = np.array([query @ row for row in train])
        nearest = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[labels[j]] += np.exp(sims[j] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.array(predictions)


def random_problem(seed, num_train=40, num_test=15, dim=8, classes=4):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(num_train, dim)).astype("float32")
    labels = rng.integers(0, classes, size=num_train)
    test = rng.normal(size=(num_test, dim)).astype("float32")
    return train, labels, test


def test_knn_predict_matches_brute_force():
    for k, (seed, temperature) in itertools.product((1, 3, 10, 40), [(0, 0.05), (1, 0.1), (2, 0.5), (3, 1.0)]):
        train, labels, test = random_problem(seed + 10 * k)
        got = knn_predict(train, labels, test, k=k, temperature=temperature)
        want = reference_knn(train.astype("float64"), labels, test.astype("float64"), k, temperature)
        np.testing.assert_array_equal(got, want, err_msg=f"k={k}, temperature={temperature}")


def test_temperature_changes_the_vote():
    # One very close neighbour of class 0 against two farther ones of class 1:
    # a sharp temperature trusts the close one, a flat one counts heads.
    train = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]], dtype="float32")
    labels = np.array([0, 1, 1])
    test = np.array([[1.0, 0.05]], dtype="float32")
    assert knn_predict(train, labels, test, k=3, temperature=0.05)[0] == 0
    assert knn_predict(train, labels, test, k=3, temperature=10.0)[0] == 1
    np.testing.assert_array_equal(
        knn_predict(train, labels, test, k=3, temperature=0.05), reference_knn(train, labels, test, 3, 0.05)
    )


def test_knn_ignores_feature_norms_and_chunking():
    train, labels, test = random_problem(5)
    base = knn_predict(train, labels, test, k=5, temperature=0.1)
    scaled = knn_predict(train * 7.0, labels, test * 0.01, k=5, temperature=0.1)
    chunked = knn_predict(train, labels, test, k=5, temperature=0.1, chunk=4)
    np.testing.assert_array_equal(scaled, base)
    np.testing.assert_array_equal(chunked, base)
    assert base.shape == (15,)
    # Labels may come as a column vector.
    np.testing.assert_array_equal(knn_predict(train, labels.reshape(-1, 1), test, k=5, temperature=0.1), base)


def test_knn_perfect_on_separated_clusters():
    rng = np.random.default_rng(6)
    centres = np.eye(3, 16) * 10.0
    train_labels = np.repeat(np.arange(3), 10)
    test_labels = np.repeat(np.arange(3), 4)
    train = centres[train_labels] + rng.normal(scale=0.5, size=(30, 16))
    test = centres[test_labels] + rng.normal(scale=0.5, size=(12, 16))
    predicted = knn_predict(train, train_labels, test, k=5, temperature=0.1)
    np.testing.assert_array_equal(predicted, test_labels)


def test_k_larger_than_bank():
    train, labels, test = random_problem(7, num_train=6)
    big = knn_predict(train, labels, test, k=200, temperature=0.5)
    np.testing.assert_array_equal(big, knn_predict(train, labels, test, k=6, temperature=0.5))
    np.testing.assert_array_equal(big, reference_knn(train, labels, test, 6, 0.5))


def test_knn_label_errors():
    train, labels, test = random_problem(8)
    with pytest.raises(ValueError, match="Received"):
        knn_predict(train, labels[:-1], test)
    with pytest.raises(ValueError, match="integer"):
        knn_predict(train, labels.astype("float32"), test)
    with pytest.raises(ValueError, match="integer"):
        knn_predict(train, labels - 5, test)


# --------------------------------------------------------------------------
# With a real (tiny, untrained) encoder on bright vs dark images
# --------------------------------------------------------------------------


def bright_or_dark(n, seed):
    """uint8 8x8 grayscale images: class 1 bright, class 0 dark, textured noise in both."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    low = np.where(labels == 1, 170, 10)[:, None, None, None]
    images = (low + rng.integers(0, 76, size=(n, 8, 8, 1))).astype("uint8")
    return images, labels


@pytest.fixture
def encoder():
    return ConvNet(filters=(4, 8), input_shape=(8, 8, 1))


def test_extract_features_uint8_equals_float(encoder):
    images, _ = bright_or_dark(6, seed=0)
    from_uint8 = extract_features(encoder, images)
    from_float = extract_features(encoder, images.astype("float32") / 255.0)
    assert from_uint8.shape == (6, 8) and from_uint8.dtype == np.float32
    np.testing.assert_allclose(from_uint8, from_float, rtol=1e-5, atol=1e-6)
    # Batching does not change the result (4 + 2 images).
    np.testing.assert_allclose(extract_features(encoder, images, batch_size=4), from_uint8, rtol=1e-5, atol=1e-6)
    # Different images, different features.
    assert not np.allclose(from_uint8[0], from_uint8[1])


def test_extract_features_rejects_bad_images(encoder):
    with pytest.raises(ValueError, match="Received"):
        extract_features(encoder, np.full((2, 8, 8, 1), 2.0, dtype="float32"))
    with pytest.raises(ValueError, match="Received"):
        extract_features(encoder, np.zeros((2, 8, 8), dtype="uint8"))


def test_knn_accuracy_and_linear_probe_on_separable_classes(encoder):
    train_x, train_y = bright_or_dark(16, seed=1)
    test_x, test_y = bright_or_dark(8, seed=2)
    knn = knn_accuracy(encoder, train_x, train_y, test_x, test_y, k=5, temperature=0.1, batch_size=8)
    probe = linear_probe(encoder, train_x, train_y, test_x, test_y, batch_size=8)
    for accuracy in (knn, probe):
        assert isinstance(accuracy, float)
        assert 0.0 <= accuracy <= 1.0
        assert accuracy >= 0.875  # chance is 0.5
    # Inverted test labels: every right answer becomes a wrong one.
    inverted = knn_accuracy(encoder, train_x, train_y, test_x, 1 - test_y, k=5, temperature=0.1, batch_size=8)
    assert inverted == pytest.approx(1.0 - knn)
    with pytest.raises(ValueError, match="Received"):
        knn_accuracy(encoder, train_x, train_y, test_x, test_y[:-1], batch_size=8)


def test_knn_accuracy_reaches_tensorboard_whatever_the_callback_order(tmp_path):
    import keras

    from keras_ssl import backbones, evaluation, methods
    from keras_ssl.testing import cifar10_sample, tensorboard_tags

    (x, y), (x_test, y_test) = cifar10_sample(num_train=16, num_test=8)
    board = keras.callbacks.TensorBoard(tmp_path)  # listed first: it still sees what KNNMonitor adds
    monitor = evaluation.KNNMonitor(x, y, x_test, y_test, k=5)
    method = methods.SimCLR(backbones.ConvNet(filters=(4,), input_shape=(32, 32, 3)), projection_dim=8)
    method.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[board, monitor])
    assert "epoch_knn_accuracy" in tensorboard_tags(tmp_path)
