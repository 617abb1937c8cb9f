"""Encoder features of an image array, computed in batches."""

import keras
import numpy as np

from keras_ssl.data.arrays import check_images


class _ScaledBatches(keras.utils.PyDataset):
    """Batches of an image array as float32 in [0, 1], converted one batch at a time."""

    def __init__(self, images, batch_size):
        super().__init__()
        self.images, self.batch_size = images, batch_size
        self.scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        batch = self.images[index * self.batch_size : (index + 1) * self.batch_size]
        return batch.astype("float32") * self.scale


def extract_features(encoder, images, batch_size=512):
    """Runs `encoder` (inference mode) over uint8 or [0, 1] float images; returns float32 NumPy features."""
    x = check_images(images)
    return np.asarray(encoder.predict(_ScaledBatches(x, batch_size), verbose=0), dtype="float32")


def l2_normalize(features, eps=1e-12):
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), eps)
