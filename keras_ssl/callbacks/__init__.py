"""Training callbacks that `Method.fit` adds or that long runs need."""

from keras_ssl.callbacks.backup import BackupAndRestore, BackupMismatchError
from keras_ssl.callbacks.collapse import CollapseWarning
from keras_ssl.callbacks.nonfinite import NonFiniteError, TerminateOnNonFinite

__all__ = ["BackupAndRestore", "BackupMismatchError", "CollapseWarning", "NonFiniteError", "TerminateOnNonFinite"]
