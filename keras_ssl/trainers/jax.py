"""JAX training step: stateless, with `jax.value_and_grad` over the method's loss.

Keras hands the step its state as four lists of arrays (trainable,
non-trainable, optimizer and metric variables). The method's backend-neutral
code runs inside a `StatelessScope` that maps each Keras variable to its
array, and the scope's writes (BatchNorm statistics, random-seed state, EMA
teachers, metric totals) become the new state.
"""

import keras


def _mapping(method, trainable, non_trainable, optimizer_vars=None):
    """Pairs each Keras variable of the method (and optimizer) with its array."""
    pairs = list(zip(method.trainable_variables, trainable)) + list(zip(method.non_trainable_variables, non_trainable))
    if optimizer_vars is not None:
        pairs += list(zip(method.optimizer.variables, optimizer_vars))
    return pairs


def _updated(variables, values, scope):
    out = []
    for v, old in zip(variables, values):
        value = scope.get_current_value(v)
        out.append(old if value is None else value)
    return out


def train_step(method, state, data):
    import jax

    trainable, non_trainable, optimizer_vars, metrics_vars = state
    inputs = method.unpack_batch(data)
    opt = method.optimizer

    def loss_fn(trainable, non_trainable):
        mapping = _mapping(method, trainable, non_trainable, optimizer_vars)
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            loss, logs = method.compute_ssl_loss(inputs, training=True)
            loss = _with_regularisation(method, loss)
            scaled_loss = opt.scale_loss(loss)
        return scaled_loss, (loss, logs, _updated(method.non_trainable_variables, non_trainable, scope))

    (_, (loss, logs, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, non_trainable)
    trainable, optimizer_vars = opt.stateless_apply(optimizer_vars, grads, trainable)

    # The hook sees the updated weights and step count (momentum schedules read it).
    with keras.StatelessScope(state_mapping=_mapping(method, trainable, non_trainable, optimizer_vars)) as scope:
        method.update_teachers()
    non_trainable = _updated(method.non_trainable_variables, non_trainable, scope)

    logs, metrics_vars = _update_metrics(method, metrics_vars, loss, logs)
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def test_step(method, state, data):
    trainable, non_trainable, metrics_vars = state
    with keras.StatelessScope(state_mapping=_mapping(method, trainable, non_trainable), collect_losses=True) as scope:
        loss, logs = method.compute_ssl_loss(method.unpack_batch(data), training=False)
        loss = _with_regularisation(method, loss)
    logs, metrics_vars = _update_metrics(method, metrics_vars, loss, logs)
    return logs, (trainable, _updated(method.non_trainable_variables, non_trainable, scope), metrics_vars)


def _with_regularisation(method, loss):
    # In the scope, `losses` holds this pass's `add_loss` terms and the weight regularisers evaluated on the
    # scope's arrays (differentiable); `scope.losses` alone would miss the regularisers.
    losses = method.losses
    return loss + sum(losses) if losses else loss


def _update_metrics(method, metrics_vars, loss, logs):
    with keras.StatelessScope(state_mapping=list(zip(method.metrics_variables, metrics_vars))) as scope:
        logs = method.update_trackers(loss, logs)
    return logs, _updated(method.metrics_variables, metrics_vars, scope)
