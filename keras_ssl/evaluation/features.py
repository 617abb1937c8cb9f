"""Encoder features of an image array, computed in batches."""

import numpy as np

from keras_ssl.data.arrays import check_images


def extract_features(encoder, images, batch_size=512):
    """Runs `encoder` (inference mode) over uint8 or [0, 1] float images; returns float32 NumPy features."""
    x = check_images(images)
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    chunks = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].astype("float32") * scale
        chunks.append(np.asarray(encoder.predict_on_batch(batch), dtype="float32"))
    return np.concatenate(chunks, axis=0)


def l2_normalize(features, eps=1e-12):
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), eps)
