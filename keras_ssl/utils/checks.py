"""Value checks that must also run inside compiled code (TensorFlow graphs, JAX jit).

Backend-neutral layers call these; the backend is imported lazily, inside the
function, so importing this module loads none.
"""

import contextlib
import contextvars

import numpy as np

# True inside `host_callbacks_off()`: JAX traces get no host callback.
_HOST_CALLBACKS_OFF = contextvars.ContextVar("keras_ssl_host_callbacks_off", default=False)


@contextlib.contextmanager
def host_callbacks_off():
    """Inside this block, the checks add no host callback to JAX traces.

    JAX cannot serialize host callbacks, so a SavedModel export of a JAX model
    that holds a check fails with "serialization of host_callbacks is not yet
    implemented"; `keras_ssl.export` traces inside this block. The exported
    model then does not check (a TensorFlow-backend export keeps its
    `tf.debugging.Assert`). Checks of concrete arrays and TensorFlow graphs
    are unaffected.
    """
    token = _HOST_CALLBACKS_OFF.set(True)
    try:
        yield
    finally:
        _HOST_CALLBACKS_OFF.reset(token)


def _range_message(low, high, outside, vocabulary_size, name):
    return (
        f"Expected {name} in [0, {vocabulary_size}) (the vocabulary size is {vocabulary_size}). "
        f"Received ids in [{low}, {high}], {outside} of them outside: were they made with another tokenizer?"
    )


def _check_range(low, high, outside, vocabulary_size, name):
    low, high, outside = int(low), int(high), int(outside)
    if outside:
        raise ValueError(_range_message(low, high, outside, vocabulary_size, name))


def _check_concrete(ids, vocabulary_size, name):
    values = np.asarray(ids)
    if values.size:
        outside = int(np.count_nonzero((values < 0) | (values >= vocabulary_size)))
        _check_range(values.min(), values.max(), outside, vocabulary_size, name)


def assert_token_ids_in_range(ids, vocabulary_size, name="token ids"):
    """Raises a ValueError-like error when an id lies outside `[0, vocabulary_size)`; returns `ids`.

    An embedding lookup out of range returns NaN rows on JAX, zeros on
    TensorFlow GPUs and a raw `InvalidArgumentError` on TensorFlow CPUs; this
    check says instead which ids were received and what the vocabulary size
    is. Where it runs:

    - concrete arrays (NumPy, eager tensors): checked at once, `ValueError`;
    - TensorFlow graphs (`tf.function`, `fit`, `predict`): a
      `tf.debugging.Assert`, raised as `InvalidArgumentError` with the same
      text. XLA drops assertions, so under `jit_compile=True` the check is
      off (Keras compiles with XLA on TensorFlow only on GPUs);
    - JAX traces (`jit`, `fit`, `predict`): the minimum, maximum and count of
      bad ids (three reductions) go to a `jax.debug.callback` that raises;
      JAX reports it as a `JaxRuntimeError` whose message ends with the text.
      Keras's JAX `fit`/`predict`/`evaluate` detach the model's variables for
      the loop and do not reattach them when a step raises, so after this
      error inside one of them the model must be rebuilt or reloaded; check
      arrays first (`keras_ssl.data.check_token_ids`) to keep it. Inside
      `host_callbacks_off()` (SavedModel export) JAX traces are not checked.

    Returns `ids` (on TensorFlow graphs, a tensor that depends on the
    assertion, so it runs before the lookup that reads it).
    """
    import keras

    vocabulary_size = int(vocabulary_size)
    backend = keras.backend.backend()
    if isinstance(ids, (np.ndarray, list, tuple)):
        _check_concrete(ids, vocabulary_size, name)
        return ids
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.executing_eagerly():
            _check_concrete(np.asarray(ids), vocabulary_size, name)
            return ids
        ids = tf.convert_to_tensor(ids)
        bad = tf.logical_or(ids < 0, ids >= vocabulary_size)
        outside = tf.reduce_sum(tf.cast(bad, tf.int64))
        message = f"Expected {name} in [0, {vocabulary_size}) (the vocabulary size is {vocabulary_size}). Received ids"
        assertion = tf.debugging.Assert(
            tf.equal(outside, 0),
            [message, "in", tf.reduce_min(ids), "to", tf.reduce_max(ids), "and this many outside:", outside],
        )
        with tf.control_dependencies([assertion]):
            return tf.identity(ids)
    if backend == "jax":
        import functools

        import jax
        import jax.numpy as jnp

        if not isinstance(ids, jax.core.Tracer):
            _check_concrete(ids, vocabulary_size, name)
            return ids
        if _HOST_CALLBACKS_OFF.get():
            return ids
        info = jnp.iinfo(ids.dtype)
        # Scalars only leave the device; `initial` keeps empty batches (lengths 0) traceable.
        low, high = jnp.min(ids, initial=info.max), jnp.max(ids, initial=info.min)
        outside = jnp.sum((ids < 0) | (ids >= vocabulary_size))
        check = functools.partial(_check_range, vocabulary_size=vocabulary_size, name=name)
        jax.debug.callback(check, low, high, outside)
        return ids
    try:
        values = keras.ops.convert_to_numpy(ids)
    except Exception:  # a symbolic tensor of another backend: nothing to check yet
        return ids
    _check_concrete(values, vocabulary_size, name)
    return ids
