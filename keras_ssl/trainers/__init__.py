"""The backend-specific half of the training step, written once per backend.

Each module exposes `train_step` and `test_step` taking the method first.
They are imported lazily so that importing keras_ssl never imports a backend
the user is not running.
"""

import importlib

import keras

_SUPPORTED = ("tensorflow", "jax", "torch")


def get_trainer():
    backend = keras.backend.backend()
    if backend not in _SUPPORTED:
        raise NotImplementedError(
            f"keras_ssl trains with the {' or '.join(_SUPPORTED)} backend. Received: KERAS_BACKEND={backend}"
        )
    return importlib.import_module(f"keras_ssl.trainers.{backend}")
