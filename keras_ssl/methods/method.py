"""The base class of every self-supervised method.

A method is a `keras.Model` whose training step augments a batch of unlabelled
inputs, runs its networks and returns a loss. Subclasses write only that part,
`compute_ssl_loss`, in backend-neutral `keras.ops`, and *declare* the rest
(momentum teachers, input checks, per-epoch work) through the hooks below; the
gradient step itself lives once per backend in `keras_ssl.trainers`.
"""

import contextlib
import warnings

import keras
from keras import ops

from keras_ssl import data as data_lib
from keras_ssl import trainers
from keras_ssl.augment import to_unit_float
from keras_ssl.callbacks import BackupAndRestore, CollapseWarning, TerminateOnNonFinite
from keras_ssl.callbacks.backup import run_fingerprint
from keras_ssl.layers.ema import ema_value, momentum_schedule
from keras_ssl.losses.normalize import l2_normalize
from keras_ssl.trainers import distribution
from keras_ssl.utils import replicas


def shapes_match(a, b):
    """True when two shapes (batch axis excluded) have the same rank and agree wherever both are known."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def embedding_std(z):
    """Mean per-dimension std of L2-normalised embeddings (a collapse indicator).

    About 1/sqrt(dim) for well-spread embeddings, and 0 when every input maps
    to the same point (Chen & He, 2021, sec. 4.1). Under a multi-replica
    strategy it is measured over the global batch.
    """
    z = l2_normalize(ops.cast(replicas.gather(z), "float32"))
    return ops.mean(ops.std(z, axis=0))


class Method(keras.Model):
    """Base class: holds the encoder and augmenter and owns the training step.

    Subclasses implement `compute_ssl_loss(images, training)` returning
    `(loss, extra_logs)` and, when they have heads, `build_heads(feature_dim)`,
    which they call at the end of `__init__` so every variable (heads,
    teachers, queues) exists before any training or tracing.
    `method.encoder` is the network to reuse downstream; calling the method
    (or `predict`) returns the encoder's features.

    Hooks a subclass may override:
        momentum_pairs: `(online, teacher)` networks; the base class updates
            each teacher as an EMA of its online network after every
            optimizer step, with momentum `self.momentum` following
            `momentum_schedule` ("cosine" rises to 1 over each fit's steps,
            "constant" keeps it).
        check_inputs(x): validates or converts what `fit` was given.
        begin_epoch(epoch, data): work at the start of each epoch (DeepCluster
            re-clusters here).
        unpack_batch(data): what `compute_ssl_loss` receives from a batch.
        embedding_dim: the size of the embeddings `embedding_std` measures.

    Attributes:
        min_batch_size: the smallest batch (per replica) the loss is defined for.
        input_kind: "images" (NHWC in [0, 1] or uint8), "vectors" (rank 2) or
            "tokens" (rank-2 int ids).
        warns_on_collapse: whether `fit` adds `CollapseWarning` (joint-embedding
            methods collapse; reconstruction objectives cannot).
        logged_metrics: names of the values `compute_ssl_loss` reports, logged
            as running means by `fit`.
        batch_row_indices: whether batches of in-memory arrays carry the rows
            they were drawn from, `(images, rows)`, for per-sample state.

    Args:
        encoder: the backbone to pretrain.
        augmenter: the view generator; default: the method's paper recipe.
        sync_batchnorm: BatchNorm statistics over the global batch when the
            TensorFlow strategy has more than one replica (SimCLR's "global
            BN"). None: on whenever there is more than one replica; False:
            per-replica statistics. JAX's SPMD steps are global by
            construction, so it changes nothing there.
    """

    min_batch_size = 1
    logged_metrics = ("embedding_std",)
    input_kind = "images"
    warns_on_collapse = True
    batch_row_indices = False
    momentum_schedule = "cosine"

    def __init__(self, encoder, augmenter=None, sync_batchnorm=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if isinstance(augmenter, dict):
            augmenter = keras.saving.deserialize_keras_object(augmenter)
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`encoder` must be a keras.Model. Received: {type(encoder).__name__}")
        if sync_batchnorm not in (None, True, False):
            raise ValueError(f"`sync_batchnorm` must be None, True or False. Received: {sync_batchnorm!r}")
        self.encoder = encoder
        self.augmenter = augmenter
        self.sync_batchnorm = sync_batchnorm
        self._given_augmenter = augmenter is not None
        self._default_optimizer = False
        self.planned_steps = None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.trackers = [keras.metrics.Mean(name=name) for name in self.logged_metrics]
        # Where this fit's momentum schedule starts and how long it runs, as variables, so the compiled
        # step reads the current fit's values and a resumed run restores them with the weights.
        self.schedule_start = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="schedule_start"
        )
        self.schedule_steps = self.add_weight(
            shape=(), dtype="int32", initializer="ones", trainable=False, name="schedule_steps"
        )

    # --- what a subclass writes -------------------------------------------------

    def compute_ssl_loss(self, images, training=True):
        """Returns `(loss, {name: value})` for one batch of raw images."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_ssl_loss().")

    def build_heads(self, feature_dim):
        """Creates the variables of the method's heads (projectors, predictors, teachers)."""

    def default_augmenter(self, image_size):
        """The method's paper recipe for images of side `image_size`."""
        return None

    @property
    def momentum_pairs(self):
        """`(online, teacher)` network pairs whose teachers follow an EMA of their online networks."""
        return ()

    def after_optimizer_step(self):
        """Runs after every optimizer step, after the teachers' update (queues, centres)."""

    def check_inputs(self, x):
        """Validates `fit`'s input before batching; returns what to batch (default: unchanged)."""
        return x

    def begin_epoch(self, epoch, data):
        """Runs at the start of every epoch with the prepared training data."""

    def unpack_batch(self, data):
        """What `compute_ssl_loss` receives: the images of `images` or `(images, labels, ...)`."""
        return data[0] if isinstance(data, (tuple, list)) else data

    # --- Keras plumbing ------------------------------------------------------------

    @property
    def feature_dim(self):
        return self.encoder.output_shape[-1]

    @property
    def embedding_dim(self):
        """Size of the embeddings whose spread `embedding_std` measures (default: the encoder's features)."""
        return self.feature_dim

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
        # TensorFlow and torch call train_step(data); JAX calls train_step(state, data).
        return trainers.get_trainer().train_step(self, *args)

    def test_step(self, *args):
        return trainers.get_trainer().test_step(self, *args)

    # --- momentum teachers -----------------------------------------------------------

    def teacher_momentum(self):
        """The EMA momentum for the current step: `self.momentum`, or its cosine rise to 1 over this fit."""
        if self.momentum_schedule == "constant":
            return ops.convert_to_tensor(self.momentum, "float32")
        step = ops.cast(self.optimizer.iterations, "int32") - self.schedule_start
        return momentum_schedule(step, self.schedule_steps, base=self.momentum)

    def update_teachers(self):
        """teacher <- m * teacher + (1 - m) * online for every declared pair (called by the trainers)."""
        pairs = self.momentum_pairs
        if pairs:
            momentum = self.teacher_momentum()
            for online, teacher in pairs:
                # Every replica holds the same online weights after the all-reduced update, so each
                # updates its own copy of the teacher locally and the copies stay identical.
                for t, s in zip(teacher.weights, online.weights):
                    t.assign(ema_value(t, s, momentum))
        self.after_optimizer_step()

    # --- compile and fit ---------------------------------------------------------------

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
        if self.dtype_policy.name == "mixed_float16":
            # As Keras's compile does: float16 gradients underflow without loss scaling.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
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

    def _plan(self, steps_per_epoch, epochs, initial_epoch):
        """Sizes this fit's learning-rate and momentum schedules; returns the planned steps."""
        self.planned_steps = int(steps_per_epoch) * (epochs - initial_epoch) if steps_per_epoch else None
        if self._default_optimizer:
            # Each fit gets its own warmup + cosine schedule over its own steps (a
            # second fit would otherwise continue at the previous schedule's end, 0).
            if self.planned_steps:
                rate = self._schedule_for(self.planned_steps)
            else:
                warnings.warn("Unknown steps per epoch: training with a constant learning rate.", stacklevel=3)
                rate = self._schedule_args["learning_rate"]
            with replicas.scope(self):  # a strategy's optimizer variables must be mirrored
                self.optimizer = self._make_optimizer(rate)
            self.train_function = None  # the compiled step closes over the optimizer
        self.schedule_start.assign(int(ops.convert_to_numpy(self.optimizer.iterations)))
        self.schedule_steps.assign(max(1, self.planned_steps or 1))
        return self.planned_steps

    def fit(self, x=None, y=None, batch_size=None, epochs=1, shuffle=True, callbacks=None, initial_epoch=0, **kwargs):
        """Pretrains on unlabelled inputs; labels (`y`) are ignored.

        `x` may be a NumPy array (uint8 [0, 255] or float [0, 1], NHWC), a
        batched `tf.data.Dataset` (of images or `(images, labels)`), a folder
        or TFRecord input (`keras_ssl.data.image_folder`, `tfrecord_images`),
        a string naming one of those or a TFDS dataset (see
        `keras_ssl.data.resolve_input_string`; a folder is read at the
        encoder's input size when it fixes one), or a
        `keras.utils.PyDataset`. Array batches drop the remainder so every
        step sees a full batch; `batch_size` is the global batch, split over
        the replicas of a distribution. Arrays, folders and TFRecords serve
        every epoch in the order their seed fixes for it.

        With a `keras_ssl.callbacks.BackupAndRestore` among the callbacks,
        the run resumes from its latest backup at the exact step: the
        interrupted epoch continues with the batches it had not trained on.
        Training stops with `NonFiniteError` at the first NaN or infinite loss.
        """
        if not self.compiled:
            self.compile()
        replicas.check_strategy(self)
        x = self.check_inputs(x)
        num_replicas = replicas.replica_count(self)
        encoder_shape = tuple(self.encoder.input_shape) if self.input_kind == "images" else ()
        fixed_size = len(encoder_shape) == 4 and encoder_shape[1] == encoder_shape[2] and encoder_shape[1]
        data, steps, input_shape = data_lib.prepare_pretraining_data(
            x,
            batch_size=batch_size,
            min_batch_size=self.min_batch_size,
            method_name=type(self).__name__,
            shuffle=shuffle,
            input_kind=self.input_kind,
            row_indices=self.batch_row_indices,
            num_replicas=num_replicas,
            image_size=fixed_size or None,  # a folder or TFRecords named by a string is read at this size
            channels=encoder_shape[-1] if encoder_shape and encoder_shape[-1] in (1, 3) else 3,
        )
        data_lib.limit_steps(data, kwargs.get("steps_per_epoch"))
        if not self.built:
            self.build((None, *(input_shape or data_lib.first_batch_shape(data)[1:])))
        steps = kwargs.pop("steps_per_epoch", None) or steps
        self._plan(steps, epochs, initial_epoch)
        with replicas.scope(self):
            self.optimizer.build(self.trainable_variables)  # its variables exist before a backup is restored

        callbacks = list(callbacks or [])
        backup = next((c for c in callbacks if isinstance(c, BackupAndRestore)), None)
        start_epoch, first_step = initial_epoch, 0
        if backup is not None:
            if not steps:
                raise ValueError("BackupAndRestore needs to know the steps per epoch: pass `steps_per_epoch`.")
            samples = len(data.images) if isinstance(data, data_lib.ArrayBatches) else getattr(data, "num_images", None)
            fingerprint = run_fingerprint(self, getattr(data, "batch_size", batch_size), num_replicas, samples)
            position = backup.attach(self, fingerprint, steps, getattr(data, "seed", None))
            if position is not None:
                start_epoch, first_step = position
                if hasattr(data, "seed") and backup.data_seed is not None:
                    data.seed = backup.data_seed  # the interrupted run's shuffling continues
        # Callbacks that add to the logs (kNN accuracy) run before those that record them (TensorBoard, CSV,
        # checkpoints), whatever order the user listed them in.
        callbacks = [c for c in callbacks if getattr(c, "adds_logs", False)] + [
            c for c in callbacks if not getattr(c, "adds_logs", False)
        ]
        if not any(isinstance(c, TerminateOnNonFinite) for c in callbacks):
            callbacks.insert(0, TerminateOnNonFinite())  # before any callback that could save what a NaN broke
        callbacks.insert(0, _EpochStart(self, data, resume=(start_epoch, first_step)))
        if self.warns_on_collapse and not any(isinstance(c, CollapseWarning) for c in callbacks):
            callbacks.append(CollapseWarning())

        # An interrupted epoch is finished by a fit of its remaining batches, then the full epochs follow.
        segments = []
        if first_step and start_epoch < epochs:
            segments.append((start_epoch, start_epoch + 1, first_step))
            start_epoch += 1
        if start_epoch < epochs:
            segments.append((start_epoch, epochs, 0))
        history = None
        with self._batchnorm_synchronised(num_replicas):
            for begin, end, skip in segments:
                x_fit, steps_fit = data_lib.positioned(data, begin, skip, end, steps)
                try:
                    # Shuffling is done by the data prepared above (Keras would warn it ignores it).
                    part = super().fit(
                        x_fit,
                        epochs=end,
                        initial_epoch=begin,
                        steps_per_epoch=steps_fit,
                        shuffle=False,
                        callbacks=callbacks,
                        **kwargs,
                    )
                except Exception as error:
                    lost = distribution.lost_worker_error(error) if replicas.process_count(self) > 1 else None
                    if lost is None:
                        raise
                    raise lost from error
                history = part if history is None else _merge_histories(history, part)
                if self.stop_training:
                    break
        if backup is not None:
            history = _with_earlier_epochs(history, backup, initial_epoch)
            if not self.stop_training:
                backup.finish()
        return history

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's TensorFlow trainer averages the first batch over replicas to build the model symbolically,
        # which fails under MultiWorkerMirroredStrategy ("Attempt to convert a value (PerReplica...)"). A method
        # is built, and its optimizer too, before Keras's fit starts, and it compiles no loss or metrics, so
        # there is nothing to build from a batch.
        if self.built and self.optimizer.built and self._compile_loss is None and self._compile_metrics is None:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @contextlib.contextmanager
    def _batchnorm_synchronised(self, num_replicas):
        """Global BatchNorm statistics for the duration of a multi-replica fit (the saved config stays portable)."""
        enabled = num_replicas > 1 and self.sync_batchnorm is not False
        if not enabled:
            yield
            return
        replicas.sync_batchnorm(self, True)
        self.train_function = None
        try:
            yield
        finally:
            replicas.sync_batchnorm(self, False)
            self.train_function = None

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            augmenter=keras.saving.serialize_keras_object(self.augmenter) if self._given_augmenter else None,
            sync_batchnorm=self.sync_batchnorm,
        )
        return config


class _EpochStart(keras.callbacks.Callback):
    """Tells the data which epoch begins and calls the method's `begin_epoch` hook.

    First in the callback list, so the others see its effect. A resumed epoch
    keeps the position and the per-epoch state (pseudo-labels) it was restored
    with.
    """

    def __init__(self, method, data, resume):
        super().__init__()
        self.method, self.data, self.resume = method, data, resume

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.resume[0] and self.resume[1]:
            return
        if hasattr(self.data, "set_position"):
            self.data.set_position(epoch, 0)
        self.method.begin_epoch(epoch, self.data)


def _merge_histories(first, second):
    """One History for a run trained in segments (an interrupted epoch, then the rest)."""
    for key, values in second.history.items():
        first.history.setdefault(key, []).extend(values)
    first.epoch.extend(second.epoch)
    return first


def _with_earlier_epochs(history, backup, initial_epoch):
    """Puts the logs of the epochs trained before an interruption in front of this run's."""
    if history is None:  # the backup was already at the end: nothing left to train
        history = keras.callbacks.History()
        history.history, history.epoch = {}, []
        first = initial_epoch + len(backup.epoch_logs())
        for logs in backup.epoch_logs():
            for key in logs:
                history.history.setdefault(key, [])
    else:
        first = history.epoch[0] if history.epoch else initial_epoch
    earlier = backup.epoch_logs()[: max(0, first - initial_epoch)]
    if not earlier:
        return history
    for key in history.history:
        history.history[key] = [logs.get(key, float("nan")) for logs in earlier] + history.history[key]
    history.epoch = list(range(initial_epoch, initial_epoch + len(earlier))) + history.epoch
    return history
