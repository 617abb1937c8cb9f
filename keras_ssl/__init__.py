"""keras_ssl: self-supervised pretraining for Keras 3 (TensorFlow, JAX and torch backends).

Subpackages and the top-level functions load on first use (PEP 562), so
`import keras_ssl` and the `keras-ssl` command start without importing Keras
or a backend; `keras_ssl.methods`, `keras_ssl.load(...)` and the rest import
what they need when touched.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "augment",
    "backbones",
    "bundle",
    "callbacks",
    "data",
    "evaluation",
    "layers",
    "losses",
    "methods",
    "presets",
    "trainers",
    "utils",
)
_FUNCTIONS = {
    "export": "keras_ssl.bundle",
    "get_preset": "keras_ssl.presets",
    "list_presets": "keras_ssl.presets",
    "list_recipes": "keras_ssl.presets",
    "load": "keras_ssl.presets",
    "load_tokenizer": "keras_ssl.presets",
    "set_deterministic": "keras_ssl.utils.determinism",
}

__all__ = [*_SUBPACKAGES, *_FUNCTIONS, "__version__"]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_ssl.{name}")
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'keras_ssl' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
