"""keras_ssl: self-supervised pretraining for Keras 3 (TensorFlow and JAX backends)."""

__version__ = "0.1.0"

from keras_ssl import augment, backbones, data, evaluation, layers, losses, methods, presets
from keras_ssl.export import export
from keras_ssl.presets import get_preset, list_presets, load

__all__ = [
    "augment",
    "backbones",
    "data",
    "evaluation",
    "export",
    "get_preset",
    "layers",
    "list_presets",
    "load",
    "losses",
    "methods",
    "presets",
    "__version__",
]
