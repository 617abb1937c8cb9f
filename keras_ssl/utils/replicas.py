"""Cross-replica helpers, so method code keeps its paper's global-batch semantics under any strategy.

Method files call these and never a strategy API. Under JAX (`keras.distribution`,
SPMD) and torch a step already sees the global batch, so `gather` and `mean` are
the identity there; under `tf.distribute` each replica runs the step on its
slice of the batch and these functions exchange what the paper computes over
the whole batch. TensorFlow is imported only when it is the running backend.
"""

import contextlib

import keras


def _tf_replica_context():
    """The TensorFlow replica context when a step runs on more than one replica, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def gather(x):
    """`x` of every replica, concatenated along the batch axis in replica order (the global batch).

    TensorFlow's all-gather sums the incoming gradients over replicas and hands
    each replica the slice of its own rows, so a loss over gathered rows, scaled
    by 1 / replicas like every loss here, gives each replica exactly its share of
    the single-device gradient.
    """
    context = _tf_replica_context()
    return x if context is None else context.all_gather(x, axis=0)


def mean(x):
    """The mean of `x` over replicas (for statistics of equal-sized per-replica batches)."""
    context = _tf_replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.MEAN, x)


def per_sample(draw, shape):
    """`draw(shape)` for this replica's rows of the global batch: random values a single device would draw.

    `draw` takes a shape whose first axis is the batch (e.g. `lambda s:
    keras.random.uniform(s, seed=generator)`). Under a multi-replica
    TensorFlow strategy every replica draws the values of the whole global
    batch (its seed generator is mirrored, so all draw the same) and keeps its
    own slice: per-sample noise, masks and dropout-like choices then equal the
    single-device run's and differ between replicas, instead of repeating the
    same draws on every replica. Elsewhere it is just `draw(shape)`.
    """
    context = _tf_replica_context()
    if context is None:
        return draw(shape)
    import tensorflow as tf

    local = shape[0]
    values = draw((local * context.num_replicas_in_sync, *shape[1:]))
    start = tf.cast(context.replica_id_in_sync_group, "int32") * local
    return values[start : start + local]


def in_replica_step():
    """Whether the code runs inside one replica's step of a multi-replica TensorFlow strategy."""
    return _tf_replica_context() is not None


def replica_count(model=None):
    """How many replicas split each global batch: the strategy's (TensorFlow) or the distribution's (JAX)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = model.distribute_strategy if model is not None else tf.distribute.get_strategy()
        return int(strategy.num_replicas_in_sync)
    if backend == "jax":
        distribution = keras.distribution.distribution()
        if isinstance(distribution, keras.distribution.DataParallel):
            return int(distribution.device_mesh.devices.size)
    return 1


def process_shard():
    """`(this process, processes)` when every process feeds its own slice of each global batch (JAX multi-process).

    A JAX run over several processes takes each process's rows of the global
    batch from that process; TensorFlow's MultiWorkerMirroredStrategy shards
    the input itself, so there (and on one process) this is `(0, 1)`.
    """
    if keras.backend.backend() == "jax":
        import jax

        if jax.process_count() > 1:
            return jax.process_index(), jax.process_count()
    return 0, 1


def process_count(model=None):
    """How many processes (workers) the run spans."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = model.distribute_strategy if model is not None else tf.distribute.get_strategy()
        return int(getattr(strategy.extended, "_num_workers", 1))
    if backend == "jax":
        import jax

        return int(jax.process_count())
    return 1


def scope(model):
    """The context in which `model`'s new variables (a fresh optimizer) must be created: its strategy's scope."""
    if keras.backend.backend() == "tensorflow" and getattr(model, "_distribute_strategy", None) is not None:
        return model.distribute_strategy.scope()
    return contextlib.nullcontext()


def check_strategy(model):
    """Raises a clear error when `model` is fitted under a TensorFlow strategy its variables were not built in."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return
    current = tf.distribute.get_strategy()
    built_in = getattr(model, "_distribute_strategy", None)
    if built_in is not current:
        raise ValueError(
            f"{type(model).__name__} was built outside `{type(current).__name__}.scope()` but is fitted inside it: "
            "its variables live on one device, so the strategy cannot mirror them. Create the method (encoder "
            "included) inside `with strategy.scope():` and call fit there too."
        )


def sync_batchnorm(model, enabled):
    """Makes every BatchNormalization layer under `model` compute global-batch statistics (TensorFlow).

    Keras's `synchronized=True` all-reduces the moments across replicas. Under
    JAX's SPMD the statistics are global already, and torch trains on one
    device, so only TensorFlow needs it. Returns how many layers were set.
    """
    if keras.backend.backend() != "tensorflow":
        return 0
    count = 0
    for layer in _sublayers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = bool(enabled)
            count += 1
    return count


def _sublayers(layer, seen=None):
    seen = set() if seen is None else seen
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        if id(sub) not in seen:
            seen.add(id(sub))
            yield sub
