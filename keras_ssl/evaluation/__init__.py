"""Measuring representations: kNN, linear probe, monitors."""

from keras_ssl.evaluation.callbacks import CollapseWarning, KNNMonitor
from keras_ssl.evaluation.features import extract_features
from keras_ssl.evaluation.knn import knn_accuracy, knn_predict
from keras_ssl.evaluation.linear import linear_probe

__all__ = ["CollapseWarning", "KNNMonitor", "extract_features", "knn_accuracy", "knn_predict", "linear_probe"]
