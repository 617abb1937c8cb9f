"""TensorFlow training step: a GradientTape around the method's loss."""


def _total_loss(method, images, training):
    loss, logs = method.compute_ssl_loss(images, training=training)
    if method.losses:  # weight regularisers of the networks
        loss = loss + sum(method.losses)
    return loss, logs


def train_step(method, data):
    import tensorflow as tf

    images = method.unpack_batch(data)
    with tf.GradientTape() as tape:
        loss, logs = _total_loss(method, images, training=True)
        scaled_loss = method.optimizer.scale_loss(loss)
    variables = method.trainable_variables
    grads = tape.gradient(scaled_loss, variables)
    method.optimizer.apply(grads, variables)
    method.after_optimizer_step()
    return method.update_trackers(loss, logs)


def test_step(method, data):
    loss, logs = _total_loss(method, method.unpack_batch(data), training=False)
    return method.update_trackers(loss, logs)
