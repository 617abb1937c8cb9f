"""Name -> method class, so tests, the CLI and the zoo can find every method."""

_METHODS = {}


def register_method(name):
    """Class decorator: registers a Method subclass under `name` (and as serialisable)."""
    import keras

    def decorate(cls):
        if name in _METHODS:
            raise ValueError(f"A method named {name!r} is already registered: {_METHODS[name].__name__}")
        _METHODS[name] = keras.saving.register_keras_serializable(package="keras_ssl")(cls)
        return cls

    return decorate


def get_method(name):
    """Returns the method class registered under `name`."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}. Available: {sorted(_METHODS)}") from None


def list_methods():
    return sorted(_METHODS)
