"""Similarity-weighted k-nearest-neighbour accuracy (Wu et al., 2018).

The standard monitor of SSL runs (as in lightly and solo-learn): features are
L2-normalised, each test sample's k most similar training samples vote for
their class with weight exp(similarity / temperature).
"""

import numpy as np
from keras import ops

from keras_ssl.losses.normalize import l2_normalize
from keras_ssl.trainers.inference import extract_features


def _unit_rows(features):
    return ops.convert_to_numpy(l2_normalize(ops.convert_to_tensor(np.asarray(features, dtype="float32"))))


def _labels(y, name):
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(f"Expected `{name}` to be non-negative integer class ids. Received: dtype={y.dtype}")
    return y.astype("int64")


def knn_predict(train_features, train_labels, test_features, k=200, temperature=0.1, num_classes=None, chunk=512):
    """Predicted class of each test feature vector; features need not be normalised."""
    train, test = _unit_rows(train_features), _unit_rows(test_features)
    labels = _labels(train_labels, "train_labels")
    if len(train) != len(labels):
        raise ValueError(
            f"Expected one label per training sample. Received: {len(train)} samples, {len(labels)} labels"
        )
    num_classes = num_classes or int(labels.max()) + 1
    k = min(k, len(train))
    predictions = []
    for start in range(0, len(test), chunk):
        sims = test[start : start + chunk] @ train.T  # (c, N_train)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (c, k)
        weights = np.exp(np.take_along_axis(sims, top, axis=1) / temperature)  # (c, k)
        votes = np.zeros((len(top), num_classes), dtype="float64")
        np.add.at(votes, (np.arange(len(top))[:, None], labels[top]), weights)
        predictions.append(np.argmax(votes, axis=1))
    return np.concatenate(predictions)


def knn_accuracy(encoder, train_images, train_labels, test_images, test_labels, k=200, temperature=0.1, batch_size=512):
    """Top-1 accuracy in [0, 1] of a weighted kNN classifier on the encoder's features.

    Args:
        encoder: a Keras model mapping images to feature vectors.
        train_images, test_images: uint8 [0, 255] or float [0, 1] NHWC arrays.
        train_labels, test_labels: integer class ids.
        k: neighbours that vote (200 as in Wu et al.).
        temperature: softness of the exp(similarity / temperature) weights.
    """
    test_y = _labels(test_labels, "test_labels")
    train_f = extract_features(encoder, train_images, batch_size)
    test_f = extract_features(encoder, test_images, batch_size)
    if len(test_f) != len(test_y):
        raise ValueError(f"Expected one label per test image. Received: {len(test_f)} images, {len(test_y)} labels")
    predicted = knn_predict(train_f, train_labels, test_f, k=k, temperature=temperature)
    return float(np.mean(predicted == test_y))
