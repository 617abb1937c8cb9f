"""One call that makes a training run reproducible on CPU, on every backend."""

import os
import sys


def set_deterministic(seed=0):
    """Seeds every random draw keras_ssl makes and turns on TensorFlow's op determinism.

    Seeds Python, NumPy and Keras (`keras.utils.set_random_seed`), so weight
    initialisation, the augmenters' and maskers' seed generators and the data
    shuffling (drawn from NumPy's generator) repeat; with TensorFlow in use
    (the backend, or tf.data input pipelines), `enable_op_determinism` makes
    its kernels and parallel input maps repeat too. Two runs in two processes
    then give identical weights on CPU (JAX's CPU kernels are deterministic
    already). On GPUs some kernels stay nondeterministic unless the backend is
    asked separately (e.g. XLA_FLAGS=--xla_gpu_deterministic_ops=true).
    """
    import keras

    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses (data workers) this process starts
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
