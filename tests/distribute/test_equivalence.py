"""Two replicas train exactly like one device with the same global batch, for every image method.

TensorFlow: `MirroredStrategy` over 2 logical CPU devices. JAX:
`keras.distribution.DataParallel` over 2 XLA host devices. Each method trains
two steps with deterministic views (`keras_ssl.testing.distributed`) in a
subprocess, since devices must be configured before the backend starts; the
loss, the encoder, the heads and every non-trainable state (teachers, queues,
centres, BatchNorm statistics) must match the single-device run within 1e-3
relative, and under TensorFlow every replica must hold the same teachers and
queues. The registry's runs are in the `large` suite; the default suite keeps
the checks of the harness and the errors.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_ssl import methods
from keras_ssl.testing import REPO_ROOT, shared_data_file

IMAGE_METHODS = methods.list_methods(data="images")


def run_equivalence(names):
    shared_data_file("cifar10/cifar10.npz")  # fail under CI / skip elsewhere before spawning
    backend = keras.backend.backend()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": backend}
    if backend == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    result = subprocess.run(
        [sys.executable, "-m", "keras_ssl.testing.distributed", backend, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(lines[-1][len("RESULTS ") :])


def check(name, result):
    single, multi = result["loss"]
    assert abs(single - multi) <= 1e-3 * abs(single), f"{name}: loss {single} on one device, {multi} on two"
    for group, difference in result["max_relative_difference"].items():
        assert difference <= 1e-3, f"{name}: {group} differs by {difference:.2e} (relative) from the single-device run"
    assert not result["replicas_differ"], f"{name}: replicas hold different copies of {result['replicas_differ']}"


@pytest.mark.large
def test_every_image_method_on_two_replicas_equals_one_device():
    if keras.backend.backend() not in ("tensorflow", "jax"):
        pytest.skip("distribution strategies are tested on TensorFlow and JAX")
    results = run_equivalence(IMAGE_METHODS)
    assert sorted(results) == sorted(IMAGE_METHODS)
    for name in IMAGE_METHODS:
        check(name, results[name])


def test_queue_state_is_checked():
    # The comparison must see the queue and teachers: a method whose state the harness ignored would pass vacuously.
    from keras_ssl.testing.distributed import make_method, weight_groups

    paths = [path for path, _ in weight_groups(make_method("moco"))["state"]]
    assert "queue/keys" in paths and any("stage1_conv1/kernel" in p for p in paths)  # queue and key encoder


def test_scaling_mistakes_get_clear_errors():
    if keras.backend.backend() not in ("tensorflow", "jax"):
        pytest.skip("distribution strategies are tested on TensorFlow and JAX")
    messages = run_equivalence(["--errors"])
    assert "must divide evenly over the 2 replicas" in messages["indivisible"], messages
    assert "e.g. 14 or 16" in messages["indivisible"]
    assert "needs at least 2 samples per replica" in messages["below_minimum"], messages
    assert "global batch of at least 4" in messages["below_minimum"]
    if keras.backend.backend() == "tensorflow":
        assert "was built outside `MirroredStrategy.scope()`" in messages["built_outside_scope"], messages
