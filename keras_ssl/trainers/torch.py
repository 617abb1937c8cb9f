"""PyTorch training step: eager autograd, as in Keras's own torch trainer.

The method's loss runs eagerly with autograd recording; `loss.backward()`
fills each trainable variable's `.grad` and `optimizer.apply` updates the
weights. The EMA teachers, queues and trackers then update under
`torch.no_grad()`: they are state, not part of the graph. Torch trains on one
device here, so no replica scaling applies (see `utils.replicas`).
"""


def _total_loss(method, inputs, training):
    loss, logs = method.compute_ssl_loss(inputs, training=training)
    if method.losses:  # weight regularisers of the networks
        loss = loss + sum(method.losses)
    return loss, logs


def train_step(method, data):
    import torch

    inputs = method.unpack_batch(data)
    variables = method.trainable_variables
    # `.grad` accumulates across backward passes: clear the previous step's (Keras's trainer calls `zero_grad()`;
    # this clears exactly the variables the optimizer updates, whatever torch's module registration holds).
    for v in variables:
        v.value.grad = None
    loss, logs = _total_loss(method, inputs, training=True)
    method.optimizer.scale_loss(loss).backward()
    grads = [v.value.grad for v in variables]
    with torch.no_grad():
        method.optimizer.apply(grads, variables)
        method.update_teachers()
        return method.update_trackers(loss.detach(), _detached(logs))


def test_step(method, data):
    import torch

    with torch.no_grad():
        loss, logs = _total_loss(method, method.unpack_batch(data), training=False)
        return method.update_trackers(loss, logs)


def _detached(logs):
    return {name: value.detach() if hasattr(value, "detach") else value for name, value in logs.items()}
