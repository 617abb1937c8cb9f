"""Self-supervised losses: pure keras.ops functions plus Loss wrappers."""

from keras_ssl.losses.nt_xent import NTXent, nt_xent

__all__ = ["NTXent", "nt_xent"]
