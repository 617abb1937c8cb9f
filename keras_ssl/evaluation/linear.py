"""Linear probe: a logistic regression on frozen encoder features."""

import numpy as np

from keras_ssl.trainers.inference import extract_features


def linear_probe(
    encoder, train_images, train_labels, test_images, test_labels, regularization=1.0, max_iter=1000, batch_size=512
):
    """Test accuracy in [0, 1] of a multinomial logistic regression on frozen features.

    Features are standardised with the training set's statistics, then
    scikit-learn's L-BFGS solver fits the classifier (`regularization` is its
    inverse strength `C`).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_f = extract_features(encoder, train_images, batch_size)
    test_f = extract_features(encoder, test_images, batch_size)
    scaler = StandardScaler().fit(train_f)
    classifier = LogisticRegression(C=regularization, max_iter=max_iter)
    classifier.fit(scaler.transform(train_f), np.asarray(train_labels).reshape(-1))
    return float(classifier.score(scaler.transform(test_f), np.asarray(test_labels).reshape(-1)))
