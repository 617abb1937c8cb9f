import keras
import numpy as np
import pytest

from keras_ssl import backbones, methods
from keras_ssl.methods.deepcluster import kmeans, pca_whiten
from keras_ssl.testing import cifar10_sample


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(size=(30, 2)) for c in centres])
    return points, np.repeat(np.arange(3), 30)


def test_kmeans_recovers_separated_blobs():
    points, truth = blobs()
    _, labels, _ = kmeans(points, 3, seed=1)
    # Same partition up to a permutation of cluster ids.
    for cluster in range(3):
        assert len(set(truth[labels == cluster])) == 1
    assert sorted(np.bincount(labels)) == [30, 30, 30]


def test_kmeans_reinitialises_an_empty_cluster():
    points, truth = blobs()
    # Centroid 2 starts far from every point, so its cluster is empty after the first assignment.
    init = [[0.0, 0.0], [10.0, 5.0], [1000.0, 1000.0]]
    _, labels, reinitialised = kmeans(points, 3, iterations=30, init=init)
    assert reinitialised >= 1
    assert np.all(np.bincount(labels, minlength=3) > 0)
    for cluster in range(3):
        assert len(set(truth[labels == cluster])) == 1


def test_kmeans_needs_enough_points():
    with pytest.raises(ValueError, match="at least k=5 points"):
        kmeans(np.zeros((3, 2)), 5)


def test_pca_whiten_gives_unit_rows_of_the_requested_size():
    rng = np.random.default_rng(0)
    out = pca_whiten(rng.normal(size=(50, 10)) * np.arange(1, 11), dim=4)
    assert out.shape == (50, 4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_deepcluster_reclusters_every_epoch_and_reweights_clusters():
    (x, _), _ = cifar10_sample(num_train=16)
    method = methods.DeepCluster(backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)), num_clusters=4, pca_dim=4)
    method.compile(optimizer=keras.optimizers.SGD(0.05))
    calls = []
    original = method.recluster

    def spy(images, seed=0):
        labels = original(images, seed)
        calls.append(labels)
        return labels

    method.recluster = spy
    history = method.fit(x, batch_size=8, epochs=2, verbose=0)
    assert len(calls) == 2 and all(labels.shape == (16,) for labels in calls)
    assert all(np.isfinite(history.history["loss"]))
    weights = np.array(method.cluster_weights)
    counts = np.bincount(calls[-1], minlength=4)
    np.testing.assert_allclose(weights[counts > 0] * counts[counts > 0], 16 / 4, rtol=1e-5)


def test_deepcluster_refuses_what_it_cannot_cluster():
    import tensorflow as tf

    method = methods.DeepCluster(backbones.ConvNet(filters=(4,), input_shape=(32, 32, 3)), num_clusters=8)
    (x, _), _ = cifar10_sample(num_train=4)
    with pytest.raises(ValueError, match="at least num_clusters=8 images"):
        method.fit(x, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="in-memory image array"):
        method.fit(tf.data.Dataset.from_tensor_slices(x).batch(2), verbose=0)
