"""Measuring representations: kNN, linear probe, monitors, reconstruction quality."""

from keras_ssl.evaluation.callbacks import KNNMonitor
from keras_ssl.evaluation.finetune import text_classifier
from keras_ssl.evaluation.knn import knn_accuracy, knn_predict
from keras_ssl.evaluation.linear import linear_probe
from keras_ssl.evaluation.reconstruction import ReconstructionGrid, reconstruction_psnr, save_reconstruction_grid
from keras_ssl.trainers.inference import extract_features

__all__ = [
    "KNNMonitor",
    "ReconstructionGrid",
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "reconstruction_psnr",
    "save_reconstruction_grid",
    "text_classifier",
]
