"""keras_ssl: self-supervised pretraining for Keras 3 (TensorFlow and JAX backends)."""

__version__ = "0.1.0"

from keras_ssl import augment, backbones, data, evaluation, layers, losses, methods
from keras_ssl.export import export, load

__all__ = ["augment", "backbones", "data", "evaluation", "export", "layers", "load", "losses", "methods", "__version__"]
