"""Trains a method on one device and on two replicas, and reports how far apart the two runs end.

The reference for every distributed run is the single-device run with the same
global batch. Views are deterministic (`FixedViews`), so the two runs see the
same inputs and any difference comes from the distribution itself. Devices
must be configured before the backend starts, so this runs as its own process:

    python -m keras_ssl.testing.distributed tensorflow simclr moco ...   # 2 logical CPU devices
    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \
        python -m keras_ssl.testing.distributed jax simclr moco ...

It prints one JSON object: per method, both runs' losses, the largest relative
difference of every weight group, and whether the replicas' copies of the
teachers, queues and centres are identical (TensorFlow).
"""

import json
import sys

import numpy as np

from keras_ssl.testing import TINY_METHOD_KWARGS

# The tests' tiny configurations; MoCo's queue holds 64 keys here.
METHOD_KWARGS = {**TINY_METHOD_KWARGS, "moco": {**TINY_METHOD_KWARGS["moco"], "queue_size": 64}}
# How many views each method's augmenter returns (None: one tensor, not a list).
NUM_VIEWS = {"deepcluster": 1, "mae": None, "autoencoder": None, "denoising_autoencoder": None, "vae": None}
GLOBAL_BATCH, NUM_IMAGES = 16, 32


def fixed_views_class():
    import keras
    from keras import ops

    from keras_ssl.augment import to_unit_float

    class FixedViews(keras.layers.Layer):
        """Deterministic views: the image, its mirror image, its upside-down image, ... (or one mirrored tensor)."""

        def __init__(self, num_views=2, **kwargs):
            super().__init__(dtype="float32", **kwargs)
            self.num_views = num_views

        def call(self, images, training=True):
            x = to_unit_float(images)
            views = [x, x[:, :, ::-1], x[:, ::-1], 1.0 - x][: self.num_views or 1]
            return views if self.num_views else ops.flip(x, axis=2)

    return FixedViews


def make_method(name):
    import keras

    from keras_ssl import backbones, methods

    if name == "mae":
        encoder = backbones.ViT("nano", image_size=32, dim=16, depth=1, num_heads=2)
    else:
        # BatchNorm in the encoder: the runs agree only if its statistics are global. One stage, so no max
        # pooling: TensorFlow's max-pooling gradient picks among near-equal activations by float noise that
        # depends on the per-replica batch, which would blur the comparison (docs/scaling.md).
        encoder = backbones.ConvNet(filters=(8,), input_shape=(32, 32, 3))
    method = methods.get_method(name)(
        encoder, augmenter=fixed_views_class()(NUM_VIEWS.get(name, 2)), **METHOD_KWARGS.get(name, {})
    )
    method.compile(optimizer=keras.optimizers.SGD(0.02))  # small steps: no chaotic amplification of round-off
    return method


def train(name, images, scope):
    import keras

    keras.utils.set_random_seed(0)
    with scope():
        method = make_method(name)
        history = method.fit(images, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return method, float(history.history["loss"][0])


def weight_groups(method):
    """name -> list of arrays: the encoder, the other trainable weights, and every non-trainable state."""
    trainable_ids = {id(v) for v in method.trainable_variables}
    encoder_ids = {id(v) for v in method.encoder.weights}
    groups = {"encoder": [], "heads": [], "state": []}
    for variable in method.weights:
        group = "encoder" if id(variable) in encoder_ids else "heads" if id(variable) in trainable_ids else "state"
        groups[group].append((variable.path, np.array(variable)))
    return groups


def max_relative_difference(a, b):
    """The largest |a - b| over a group of weights, relative to the group's largest |a|.

    Relative to the group, not to each variable: a BatchNorm beta of 0.01 that
    moves by 1e-5 is a change of 1e-5 in the model, not 0.1%.
    """
    pairs = [(x.astype("float64"), y.astype("float64")) for (_, x), (_, y) in zip(a, b) if x.size]
    if not pairs:
        return 0.0
    scale = max(max(float(np.max(np.abs(x))) for x, _ in pairs), 1e-12)
    return max(float(np.max(np.abs(x - y))) for x, y in pairs) / scale


def replicas_identical(method):
    """TensorFlow: whether every mirrored non-trainable variable holds one value on all replicas."""
    different = []
    for variable in method.non_trainable_variables:
        values = getattr(variable.value, "values", None)
        if values is not None and len(values) > 1:
            first = np.array(values[0])
            if any(not np.array_equal(first, np.array(v)) for v in values[1:]):
                different.append(variable.path)
    return different


def multi_replica_scope(backend):
    """A context in which new methods train on two replicas."""
    import contextlib

    import keras

    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
        return strategy.scope
    devices = keras.distribution.list_devices()[:2]
    assert len(devices) == 2, f"expected 2 devices, found {devices}"

    @contextlib.contextmanager
    def scope():
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)

    return scope


def errors(backend):
    """The messages of the mistakes a user makes when scaling out (each must be a clear error)."""
    import keras

    from keras_ssl.testing import cifar10_sample

    (images, _), _ = cifar10_sample(num_train=NUM_IMAGES)
    scope = multi_replica_scope(backend)
    messages = {}

    def attempt(key, action):
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the message is what the test reads
            messages[key] = f"{type(error).__name__}: {error}"
        else:
            messages[key] = None

    def fit(batch_size, build_outside=False):
        keras.utils.set_random_seed(0)
        method = make_method("simclr") if build_outside else None  # variables on one device
        with scope():
            method = method or make_method("simclr")
            method.fit(images, batch_size=batch_size, epochs=1, verbose=0)

    attempt("indivisible", lambda: fit(15))
    attempt("below_minimum", lambda: fit(2))
    if backend == "tensorflow":
        attempt("built_outside_scope", lambda: fit(16, build_outside=True))
    return messages


def main(backend, names):
    import contextlib

    from keras_ssl.testing import cifar10_sample

    (images, _), _ = cifar10_sample(num_train=NUM_IMAGES)
    multi_scope = multi_replica_scope(backend)
    results = {}
    for name in names:
        single, single_loss = train(name, images, contextlib.nullcontext)
        multi, multi_loss = train(name, images, multi_scope)
        a, b = weight_groups(single), weight_groups(multi)
        results[name] = {
            "loss": [single_loss, multi_loss],
            "max_relative_difference": {group: max_relative_difference(a[group], b[group]) for group in a},
            "replicas_differ": replicas_identical(multi) if backend == "tensorflow" else [],
            "state": [path for path, _ in a["state"]],
        }
    return results


if __name__ == "__main__":
    backend, names = sys.argv[1], sys.argv[2:]
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    print("RESULTS " + json.dumps(errors(backend) if names == ["--errors"] else main(backend, names)))
