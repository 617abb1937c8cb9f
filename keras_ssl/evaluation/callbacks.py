"""Callbacks that measure representation quality while a method trains."""

import keras

from keras_ssl.evaluation.knn import knn_accuracy


class KNNMonitor(keras.callbacks.Callback):
    """Adds `knn_accuracy` (test top-1 of a weighted kNN) to the logs every `every` epochs.

    Uses `model.encoder` of the method being fit. The values are also kept in
    `self.history` as `(epoch, accuracy)` pairs. `Method.fit` runs it before
    the callbacks that record logs (TensorBoard, CSVLogger), so they see it.
    """

    adds_logs = True

    def __init__(
        self, train_images, train_labels, test_images, test_labels, k=200, temperature=0.1, every=1, batch_size=512
    ):
        super().__init__()
        self.train_images, self.train_labels = train_images, train_labels
        self.test_images, self.test_labels = test_images, test_labels
        self.k, self.temperature, self.every, self.batch_size = k, temperature, max(1, int(every)), batch_size
        self.history = []

    def accuracy(self):
        return knn_accuracy(
            self.model.encoder,
            self.train_images,
            self.train_labels,
            self.test_images,
            self.test_labels,
            k=self.k,
            temperature=self.temperature,
            batch_size=self.batch_size,
        )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        accuracy = self.accuracy()
        self.history.append((epoch + 1, accuracy))
        if logs is not None:
            logs["knn_accuracy"] = accuracy
