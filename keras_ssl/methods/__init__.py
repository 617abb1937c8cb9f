"""Self-supervised methods: keras.Model subclasses trained with `fit` (and Word2Vec, trained by gensim).

The classes load on first use (PEP 562), so listing the methods
(`list_methods()`, `keras-ssl list`) does not import Keras.
"""

import importlib

from keras_ssl.methods.registry import BUILTIN_METHODS, get_method, list_methods, register_method

_CLASSES = {
    "Autoencoder": "autoencoder",
    "BYOL": "byol",
    "BarlowTwins": "redundancy",
    "DINO": "dino",
    "DeepCluster": "deepcluster",
    "DenoisingAutoencoder": "autoencoder",
    "MAE": "mae",
    "MaskedLM": "masked_lm",
    "Method": "method",
    "MoCo": "moco",
    "ReconstructionMethod": "autoencoder",
    "SimCLR": "simclr",
    "SimSiam": "simsiam",
    "VICReg": "redundancy",
    "VariationalAutoencoder": "autoencoder",
    "Word2Vec": "word2vec",
    "embedding_std": "method",
}

__all__ = [*_CLASSES, "get_method", "list_methods", "register_method", "import_all"]


def import_all():
    """Imports every built-in method, so each is registered with Keras's serialisation."""
    for module in sorted({module for module, _ in BUILTIN_METHODS.values()}):
        importlib.import_module(module)


def __getattr__(name):
    if name in _CLASSES:
        value = getattr(importlib.import_module(f"keras_ssl.methods.{_CLASSES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_ssl.methods' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
