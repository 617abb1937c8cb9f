"""Self-supervised methods: keras.Model subclasses trained with `fit`."""

from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import get_method, list_methods, register_method
from keras_ssl.methods.simclr import SimCLR

__all__ = ["Method", "SimCLR", "embedding_std", "get_method", "list_methods", "register_method"]
