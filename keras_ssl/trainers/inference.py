"""Encoder features of an image array, computed in batches by a separately compiled inference step.

It lives with the trainers (below the methods) because DeepCluster clusters
these features during training; `keras_ssl.evaluation` re-exports it.
"""

import keras
import numpy as np

from keras_ssl.data.arrays import check_images


class _Inference(keras.Model):
    """The encoder in inference mode, compiled on its own so the user's model keeps its compile state."""

    def __init__(self, encoder):
        super().__init__(name="inference")
        self.encoder = encoder

    def call(self, inputs):
        return self.encoder(inputs, training=False)


def extract_features(encoder, images, batch_size=512):
    """Runs `encoder` (inference mode) over uint8 or [0, 1] float images; returns float32 NumPy features."""
    x = check_images(images)
    run = _tensorflow_runner(encoder) if _under_tf_strategy() else _keras_runner(encoder)
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    # One batch at a time: only one float32 copy of a batch is alive, whatever the array size.
    features = [run(x[i : i + batch_size].astype("float32") * scale) for i in range(0, len(x), batch_size)]
    return np.concatenate([np.asarray(f, dtype="float32") for f in features])


def _keras_runner(encoder):
    runner = _Inference(encoder)
    # Keras leaves XLA off on CPU-only TensorFlow; XLA halves ViT inference time there (ResNets: no change).
    # torch.compile, though, spends minutes compiling what runs in seconds eagerly: torch stays eager.
    runner.compile(jit_compile=keras.backend.backend() != "torch")
    return runner.predict_on_batch


def _under_tf_strategy():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1


def _tensorflow_runner(encoder):
    """The encoder on one device inside a multi-replica strategy (DeepCluster clusters during a distributed fit).

    Keras's `predict_on_batch` under a MirroredStrategy hands every replica the
    whole batch and concatenates their outputs; a compiled call in the
    cross-replica context reads the mirrored weights once.
    """
    import tensorflow as tf

    return tf.function(lambda batch: encoder(batch, training=False), jit_compile=True, reduce_retracing=True)
