"""Name -> method class, so tests, the CLI and the zoo can find every method.

The built-in methods are listed here with their module, so `list_methods()`
answers without importing Keras (the `keras-ssl` command starts in well under
a second) and `get_method(name)` imports only the module it needs. The classes
themselves register with `@register_method(name)`, as user-defined methods do.
"""

import importlib

# name -> (module, the data it trains on: "images" arrays/folders, or "text" files)
BUILTIN_METHODS = {
    "autoencoder": ("keras_ssl.methods.autoencoder", "images"),
    "barlow_twins": ("keras_ssl.methods.redundancy", "images"),
    "byol": ("keras_ssl.methods.byol", "images"),
    "deepcluster": ("keras_ssl.methods.deepcluster", "images"),
    "denoising_autoencoder": ("keras_ssl.methods.autoencoder", "images"),
    "dino": ("keras_ssl.methods.dino", "images"),
    "mae": ("keras_ssl.methods.mae", "images"),
    "masked_lm": ("keras_ssl.methods.masked_lm", "text"),
    "moco": ("keras_ssl.methods.moco", "images"),
    "simclr": ("keras_ssl.methods.simclr", "images"),
    "simsiam": ("keras_ssl.methods.simsiam", "images"),
    "vae": ("keras_ssl.methods.autoencoder", "images"),
    "vicreg": ("keras_ssl.methods.redundancy", "images"),
    "word2vec": ("keras_ssl.methods.word2vec", "text"),
}
DATA_KINDS = ("images", "text")

_METHODS = {}


def register_method(name, data="images"):
    """Class decorator: registers a method class under `name`.

    Keras methods (`keras_ssl.methods.Method` subclasses) are also registered
    as Keras-serialisable under the `keras_ssl` package. `data` says what the
    method trains on ("images" or "text"); the CLI reads it.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"`data` must be one of {DATA_KINDS}. Received: {data!r}")

    def decorate(cls):
        if name in _METHODS:
            raise ValueError(f"A method named {name!r} is already registered: {_METHODS[name].__name__}")
        builtin = BUILTIN_METHODS.get(name)
        if builtin and cls.__module__ != builtin[0]:
            raise ValueError(f"{name!r} is the name of a built-in method ({builtin[0]}); choose another name.")
        import keras

        if issubclass(cls, keras.Model):
            cls = keras.saving.register_keras_serializable(package="keras_ssl")(cls)
        cls.registered_name, cls.data_kind = name, data
        _METHODS[name] = cls
        return cls

    return decorate


def get_method(name):
    """Returns the method class registered under `name` (importing a built-in one on first use)."""
    if name not in _METHODS and name in BUILTIN_METHODS:
        importlib.import_module(BUILTIN_METHODS[name][0])
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}. Available: {list_methods()}") from None


def list_methods(data=None):
    """Sorted names of the built-in and registered methods; `data="images"` or `"text"` keeps those trained on it."""
    kinds = {name: kind for name, (_, kind) in BUILTIN_METHODS.items()}
    kinds.update({name: cls.data_kind for name, cls in _METHODS.items()})
    return sorted(name for name, kind in kinds.items() if data is None or kind == data)
