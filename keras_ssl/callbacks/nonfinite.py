"""Stopping at the first non-finite loss, with the step and the usual causes, before anything bad is saved."""

import math

import keras
import numpy as np

USUAL_CAUSES = (
    "Usual causes: a learning rate too high for the batch size, float16 without loss scaling (use "
    "mixed_bfloat16, or keep the default loss scaling), inputs holding NaN or infinity, or a collapsed "
    "representation divided by its zero norm in a custom loss."
)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or weight."""


def non_finite_names(named_arrays):
    """The names of the floating-point arrays in `(name, array)` pairs that hold NaN or infinity."""
    return [
        name
        for name, array in named_arrays
        if np.issubdtype(np.asarray(array).dtype, np.floating) and not np.all(np.isfinite(array))
    ]


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteError` at the first step whose loss is NaN or infinite, naming the step.

    Keras's `TerminateOnNaN` sets `stop_training`, after which a
    `save_best_only` checkpoint may still save the broken weights and the
    run ends as if it had succeeded. Raising stops everything at once, and the
    last good backup of `BackupAndRestore` stays as it was. `Method.fit` adds
    this callback unless one is given.

    The weights are checked too, at every epoch end: XLA's fast min/max lets a
    ReLU turn NaN activations into zeros, so NaN weights can leave the loss
    finite (`BackupAndRestore` checks them before every backup as well).
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(np.asarray(loss))
        if not math.isfinite(value):
            raise NonFiniteError(
                f"Training stopped at epoch {self._epoch + 1}, batch {batch + 1}: the loss is {value}. " + USUAL_CAUSES
            )
