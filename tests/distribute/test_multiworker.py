"""Two worker processes on 127.0.0.1 train like one process, and a dead worker ends the job quickly.

TensorFlow: MultiWorkerMirroredStrategy configured by TF_CONFIG. JAX:
`jax.distributed` with a coordinator (the KERAS_DISTRIBUTION_* variables), one
CPU device per process. The workers run `keras_ssl.testing.multiworker`,
which trains through `keras_ssl.trainers.distribution.distribution_scope`, as
`keras-ssl pretrain --distribute multi-worker` does.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_ssl.testing import REPO_ROOT, shared_data_file
from keras_ssl.testing.multiworker import free_ports

TIMEOUT = 300


@pytest.fixture(autouse=True)
def _distributed_backends():
    if keras.backend.backend() not in ("tensorflow", "jax"):
        pytest.skip("multi-worker runs use tf.distribute or keras.distribution")
    shared_data_file("cifar10/cifar10.npz")


def environment(index, ports):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    else:
        env.update(
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{ports[0]}",
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
    return env


def start(mode, output, env, *options):
    command = [sys.executable, "-m", "keras_ssl.testing.multiworker", mode, str(output), *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.large
def test_two_workers_end_with_the_weights_of_one_process(tmp_path):
    ports = free_ports(2)
    workers = [start("worker", tmp_path / f"w{i}.npz", environment(i, ports)) for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": keras.backend.backend()}
    single = subprocess.run(
        [sys.executable, "-m", "keras_ssl.testing.multiworker", "single", str(tmp_path / "one.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-3000:]
    for worker in workers:
        output, _ = worker.communicate(timeout=TIMEOUT)
        assert worker.returncode == 0, output[-4000:]
        assert "replicas=2 processes=2" in output
    one, w0, w1 = (np.load(tmp_path / f"{n}.npz") for n in ("one", "w0", "w1"))
    scale = max(float(np.max(np.abs(one[k]))) for k in one.files)
    for k in one.files:
        np.testing.assert_array_equal(w0[k], w1[k])  # the workers hold one model
        assert float(np.max(np.abs(one[k] - w0[k]))) <= 1e-3 * scale, k


@pytest.mark.large
def test_a_dead_worker_fails_the_other_quickly_and_is_named(tmp_path):
    ports = free_ports(2)
    survivor = start("worker", tmp_path / "w0.npz", environment(0, ports))
    dying = start("worker", tmp_path / "w1.npz", environment(1, ports), "--die-after-step", "2")
    dying.communicate(timeout=TIMEOUT)
    assert dying.returncode == -signal.SIGKILL
    died_at = time.monotonic()
    output, _ = survivor.communicate(timeout=TIMEOUT)
    waited = time.monotonic() - died_at
    assert survivor.returncode != 0, output[-3000:]
    assert waited < 120, f"the surviving worker took {waited:.0f} s to notice"
    lost = "Lost worker 1 (127.0.0.1:" if keras.backend.backend() == "tensorflow" else "Lost process 1"
    assert "WorkerLostError" in output and lost in output, output[-3000:]
    assert not (tmp_path / "w0.npz").exists()
