"""Callbacks that measure representation quality while a method trains."""

import math
import warnings

import keras

from keras_ssl.evaluation.knn import knn_accuracy


class KNNMonitor(keras.callbacks.Callback):
    """Adds `knn_accuracy` (test top-1 of a weighted kNN) to the logs every `every` epochs.

    Uses `model.encoder` of the method being fit. The values are also kept in
    `self.history` as `(epoch, accuracy)` pairs.
    """

    def __init__(self, train_images, train_labels, test_images, test_labels, k=200, temperature=0.1, every=1, batch_size=512):
        super().__init__()
        self.train_images, self.train_labels = train_images, train_labels
        self.test_images, self.test_labels = test_images, test_labels
        self.k, self.temperature, self.every, self.batch_size = k, temperature, max(1, int(every)), batch_size
        self.history = []

    def accuracy(self):
        return knn_accuracy(
            self.model.encoder, self.train_images, self.train_labels, self.test_images, self.test_labels,
            k=self.k, temperature=self.temperature, batch_size=self.batch_size,
        )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        accuracy = self.accuracy()
        self.history.append((epoch + 1, accuracy))
        if logs is not None:
            logs["knn_accuracy"] = accuracy


class CollapseWarning(keras.callbacks.Callback):
    """Warns once when a method's embeddings collapse.

    Healthy L2-normalised embeddings of dimension d have a per-dimension std
    near 1/sqrt(d); a collapsed method maps every input to (nearly) one point
    and the std falls towards 0. The warning fires the first epoch the logged
    `embedding_std` drops below `fraction / sqrt(d)`. Added by `Method.fit`.
    """

    def __init__(self, fraction=0.1):
        super().__init__()
        self.fraction = fraction
        self.warned = False

    def on_epoch_end(self, epoch, logs=None):
        std = (logs or {}).get("embedding_std")
        if self.warned or std is None:
            return
        dim = getattr(self.model, "embedding_dim", None)
        threshold = self.fraction / math.sqrt(dim) if dim else 0.0
        if float(std) < threshold:
            self.warned = True
            warnings.warn(
                f"{type(self.model).__name__} may have collapsed at epoch {epoch + 1}: embedding_std={float(std):.2e} "
                f"(healthy is about 1/sqrt({dim})={1 / math.sqrt(dim):.3f}). Check the learning rate, batch size, "
                "augmentation strength and, for BYOL/SimSiam, the predictor.",
                RuntimeWarning,
                stacklevel=2,
            )
