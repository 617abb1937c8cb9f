"""TensorFlow training step: a GradientTape around the method's loss.

Under `tf.distribute` every replica runs this step on its slice of the global
batch and the strategy sums the replicas' gradients. As in Keras's own
trainer, the loss is scaled by 1 / replicas before differentiation, so the sum
is the gradient of the global-batch loss; losses that method code computes on
gathered (global) tensors get the right share from the all-gather's gradient
(see `replicas.gather`). Trackers see the unscaled loss.
"""


def _total_loss(method, inputs, training):
    loss, logs = method.compute_ssl_loss(inputs, training=training)
    if method.losses:  # weight regularisers of the networks
        loss = loss + sum(method.losses)
    return loss, logs


def _per_replica(loss):
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss * (1.0 / replicas)


def train_step(method, data):
    import tensorflow as tf

    inputs = method.unpack_batch(data)
    with tf.GradientTape() as tape:
        loss, logs = _total_loss(method, inputs, training=True)
        scaled_loss = method.optimizer.scale_loss(_per_replica(loss))
    variables = method.trainable_variables
    grads = tape.gradient(scaled_loss, variables)
    method.optimizer.apply(grads, variables)
    method.update_teachers()
    return _reducible(method.update_trackers(loss, logs))


def test_step(method, data):
    loss, logs = _total_loss(method, method.unpack_batch(data), training=False)
    return _reducible(method.update_trackers(loss, logs))


def _reducible(logs):
    """Logs Keras can average over workers.

    Keras's TensorFlow trainer averages a MultiWorkerMirroredStrategy step's
    outputs with `strategy.reduce("MEAN", value, axis=0)`, which fails on
    scalars ("Invalid reduction dimension 0 for input with 0 dimensions");
    one-element vectors reduce to the same scalar.
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if not (multi_worker and strategy.extended._in_multi_worker_mode()):
        return logs
    return {name: tf.reshape(value, (1,)) for name, value in logs.items()}
