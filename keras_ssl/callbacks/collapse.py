"""A warning when a joint-embedding method collapses."""

import math
import warnings

import keras


class CollapseWarning(keras.callbacks.Callback):
    """Warns once when a method's embeddings collapse.

    Healthy L2-normalised embeddings of dimension d have a per-dimension std
    near 1/sqrt(d); a collapsed method maps every input to (nearly) one point
    and the std falls towards 0. The warning fires the first epoch the logged
    `embedding_std` drops below `fraction / sqrt(d)`. Added by `Method.fit`.
    """

    def __init__(self, fraction=0.1):
        super().__init__()
        self.fraction = fraction
        self.warned = False

    def on_epoch_end(self, epoch, logs=None):
        std = (logs or {}).get("embedding_std")
        if self.warned or std is None:
            return
        dim = getattr(self.model, "embedding_dim", None)
        threshold = self.fraction / math.sqrt(dim) if dim else 0.0
        if float(std) < threshold:
            self.warned = True
            warnings.warn(
                f"{type(self.model).__name__} may have collapsed at epoch {epoch + 1}: embedding_std={float(std):.2e} "
                f"(healthy is about 1/sqrt({dim})={1 / math.sqrt(dim):.3f}). Check the learning rate, batch size, "
                "augmentation strength and, for BYOL/SimSiam, the predictor.",
                RuntimeWarning,
                stacklevel=2,
            )
