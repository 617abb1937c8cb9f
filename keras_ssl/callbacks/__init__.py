"""Training callbacks that `Method.fit` adds or that long runs need."""

from keras_ssl.callbacks.collapse import CollapseWarning

__all__ = ["CollapseWarning"]
