"""The base class of every self-supervised method.

A method is a `keras.Model` whose training step augments a batch of unlabelled
inputs, runs its networks and returns a loss. Subclasses write only that part,
`compute_ssl_loss`, in backend-neutral `keras.ops`; the gradient step itself
lives once per backend in `keras_ssl.trainers`.
"""

import warnings

import keras
from keras import ops

from keras_ssl import trainers
from keras_ssl.losses.normalize import l2_normalize


def shapes_match(a, b):
    """True when two shapes (batch axis excluded) have the same rank and agree wherever both are known."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def embedding_std(z):
    """Mean per-dimension std of L2-normalised embeddings (a collapse indicator).

    About 1/sqrt(dim) for well-spread embeddings, and 0 when every input maps
    to the same point (Chen & He, 2021, sec. 4.1).
    """
    z = l2_normalize(ops.cast(z, "float32"))
    return ops.mean(ops.std(z, axis=0))


class Method(keras.Model):
    """Base class: holds the encoder and augmenter and owns the training step.

    Subclasses implement `compute_ssl_loss(images, training)` returning
    `(loss, extra_logs)` and, when they have heads, `build_heads(feature_dim)`,
    which they call at the end of `__init__` so every variable (heads,
    teachers, queues) exists before any training or tracing.
    `method.encoder` is the network to reuse downstream; calling the method
    (or `predict`) returns the encoder's features.

    Attributes:
        min_batch_size: the smallest batch the loss is defined for.
        input_kind: "images" (NHWC in [0, 1] or uint8), "vectors" (rank 2) or
            "tokens" (rank-2 int ids).
        warns_on_collapse: whether `fit` adds `CollapseWarning` (joint-embedding
            methods collapse; reconstruction objectives cannot).
        logged_metrics: names of the values `compute_ssl_loss` reports, logged
            as running means by `fit`.
    """

    min_batch_size = 1
    logged_metrics = ("embedding_std",)
    input_kind = "images"
    warns_on_collapse = True

    def __init__(self, encoder, augmenter=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(augmenter, dict):
            augmenter = keras.saving.deserialize_keras_object(augmenter)
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`encoder` must be a keras.Model. Received: {type(encoder).__name__}")
        self.encoder = encoder
        self.augmenter = augmenter
        self._given_augmenter = augmenter is not None
        self._default_optimizer = False
        self.planned_steps = None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = [keras.metrics.Mean(name=name) for name in self.logged_metrics]

    # --- what a subclass writes -------------------------------------------------

    def compute_ssl_loss(self, images, training=True):
        """Returns `(loss, {name: value})` for one batch of raw images."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_ssl_loss().")

    def build_heads(self, feature_dim):
        """Creates the variables of the method's heads (projectors, predictors)."""

    def default_augmenter(self, image_size):
        """The method's paper recipe for images of side `image_size`."""
        return None

    def after_optimizer_step(self):
        """Runs after every optimizer step (momentum teachers, queues)."""

    def unpack_batch(self, data):
        """What `compute_ssl_loss` receives: the images of `images` or `(images, labels, ...)`."""
        return data[0] if isinstance(data, (tuple, list)) else data

    # --- Keras plumbing ------------------------------------------------------------

    @property
    def feature_dim(self):
        return self.encoder.output_shape[-1]

    @property
    def embedding_dim(self):
        """Size of the embeddings whose spread `embedding_std` measures."""
        return getattr(self, "projection_dim", self.feature_dim)

    def build(self, input_shape):
        expected = tuple(self.encoder.input_shape[1:])
        received = tuple(input_shape[1:])
        if not shapes_match(expected, received):
            raise ValueError(
                f"{type(self).__name__}'s encoder takes inputs of shape {(None, *expected)}. "
                f"Received inputs of shape {(None, *received)}."
            )
        # Only the augmenter waits for the input: its recipe depends on the image size.
        if self.augmenter is None:
            self.augmenter = self.default_augmenter(input_shape[1] or 32)
        self.built = True

    def call(self, images, training=False):
        from keras_ssl.augment import to_unit_float

        return self.encoder(to_unit_float(images), training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.trackers]

    def update_trackers(self, loss, logs):
        """Updates the running means; returns the logs `fit` shows."""
        self.loss_tracker.update_state(loss)
        for tracker in self.trackers:
            if tracker.name in logs:
                tracker.update_state(logs[tracker.name])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, *args):
        # TensorFlow calls train_step(data); JAX calls train_step(state, data).
        return trainers.get_trainer().train_step(self, *args)

    def test_step(self, *args):
        return trainers.get_trainer().test_step(self, *args)

    def compile(self, optimizer=None, learning_rate=1e-3, weight_decay=1e-4, warmup_fraction=0.1, **kwargs):
        """Compiles with AdamW and a linear-warmup + cosine schedule by default.

        With `optimizer=None`, `fit` builds AdamW(`learning_rate`,
        `weight_decay`) whose rate warms up over the first `warmup_fraction`
        of the steps and then follows a cosine to zero over the run; biases
        and normalisation parameters are excluded from weight decay. Any
        Keras optimizer may be passed instead. Other arguments go to
        `keras.Model.compile` (e.g. `jit_compile`).
        """
        if not 0 <= warmup_fraction < 1:
            raise ValueError(f"`warmup_fraction` must be in [0, 1). Received: {warmup_fraction}")
        self._default_optimizer = optimizer is None
        self._schedule_args = dict(
            learning_rate=learning_rate, weight_decay=weight_decay, warmup_fraction=warmup_fraction
        )
        if optimizer is None:
            optimizer = self._make_optimizer(learning_rate)
        super().compile(optimizer=optimizer, **kwargs)

    def _make_optimizer(self, learning_rate):
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=self._schedule_args["weight_decay"]
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def _schedule_for(self, total_steps):
        args = self._schedule_args
        warmup = int(args["warmup_fraction"] * total_steps)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else args["learning_rate"],
            decay_steps=max(1, total_steps - warmup),
            warmup_target=args["learning_rate"] if warmup else None,
            warmup_steps=warmup,
        )

    def fit(self, x=None, y=None, batch_size=None, epochs=1, shuffle=True, **kwargs):
        """Pretrains on unlabelled images; labels (`y`) are ignored.

        `x` may be a NumPy array (uint8 [0, 255] or float [0, 1], NHWC), a
        batched `tf.data.Dataset` (of images or `(images, labels)`), the name
        of a TFDS dataset (see `keras_ssl.data.tfds_images`), or a
        `keras.utils.PyDataset`. Array batches drop the remainder so every
        step sees a full batch.
        """
        from keras_ssl import data
        from keras_ssl.evaluation.callbacks import CollapseWarning

        if not self.compiled:
            self.compile()
        x, steps, image_shape = data.prepare_pretraining_data(
            x,
            batch_size=batch_size,
            min_batch_size=self.min_batch_size,
            method_name=type(self).__name__,
            shuffle=shuffle,
            input_kind=self.input_kind,
        )
        if not self.built:
            if image_shape is None:  # a PyDataset: look at its first batch
                first = self.unpack_batch(x[0])
                image_shape = tuple((first[0] if isinstance(first, tuple) else first).shape[1:])
            self.build((None, *image_shape))
        per_epoch = kwargs.get("steps_per_epoch") or steps
        # Momentum schedules (BYOL, DINO) run over the planned steps of this fit.
        self.planned_steps = int(per_epoch) * epochs if per_epoch else None
        if self._default_optimizer:
            # Each fit gets its own warmup + cosine schedule over its own steps (a
            # second fit would otherwise continue at the previous schedule's end, 0).
            if self.planned_steps:
                self.optimizer = self._make_optimizer(self._schedule_for(self.planned_steps))
            else:
                warnings.warn("Unknown steps per epoch: training with a constant learning rate.", stacklevel=2)
                self.optimizer = self._make_optimizer(self._schedule_args["learning_rate"])
            self.train_function = None  # the compiled step closes over the optimizer
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if self.warns_on_collapse and not any(isinstance(c, CollapseWarning) for c in callbacks):
            callbacks.append(CollapseWarning())
        # Shuffling is done by the data prepared above (Keras would warn it ignores it).
        return super().fit(x, epochs=epochs, shuffle=False, callbacks=callbacks, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            augmenter=keras.saving.serialize_keras_object(self.augmenter) if self._given_augmenter else None,
        )
        return config
