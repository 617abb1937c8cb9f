"""Long runs: a killed run resumes exactly, backups are atomic and belong to one run, NaN stops training.

The kill tests run the training in fresh processes (`keras_ssl.testing.resume`),
as a real preemption would: 3 epochs of 4 steps with a backup every step,
SIGKILLed after step 7 (or half-way through writing a backup) and started
again, must end at exactly 12 steps with every variable (weights, teachers,
queues, pseudo-labels, seed states) and the optimizer of an uninterrupted run.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ssl import backbones, callbacks, methods
from keras_ssl.testing import REPO_ROOT, cifar10_sample, shared_data_file


def train(name, backup_dir, output, *options):
    shared_data_file("cifar10/cifar10.npz")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": keras.backend.backend()}
    command = [sys.executable, "-m", "keras_ssl.testing.resume", name, str(backup_dir), str(output), *options]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def assert_same_run(expected, actual):
    a, b = np.load(expected), np.load(actual)
    assert int(b["steps"]) == int(a["steps"]) == 12
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-6)  # the per-epoch logs, the resumed epoch's included
    differ = [k for k in a.files if k.startswith(("v", "o")) and not np.allclose(a[k], b[k], rtol=1e-5, atol=1e-7)]
    assert not differ, f"{len(differ)} of {len(a.files)} arrays differ from the uninterrupted run"


def kill_and_resume(name, tmp_path):
    assert train(name, tmp_path / "full", tmp_path / "full.npz").returncode == 0
    killed = train(name, tmp_path / "backup", tmp_path / "killed.npz", "--kill-after-step", "7")
    assert killed.returncode == -signal.SIGKILL and not (tmp_path / "killed.npz").exists(), killed.stderr[-2000:]
    resumed = train(name, tmp_path / "backup", tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "full.npz", tmp_path / "resumed.npz")


@pytest.mark.large
def test_killed_moco_resumes_exactly(tmp_path):
    kill_and_resume("moco", tmp_path)  # weights, key encoder, queue, AdamW moments, augmenter seeds


@pytest.mark.large
@pytest.mark.parametrize("name", ["byol", "deepcluster", "simclr"])
def test_killed_run_resumes_exactly(name, tmp_path):
    kill_and_resume(name, tmp_path)


@pytest.mark.large
def test_a_kill_during_the_backup_write_keeps_the_previous_backup(tmp_path):
    died = train("moco", tmp_path / "backup", tmp_path / "x.npz", "--kill-in-write", "7")
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    with np.load(tmp_path / "backup" / "backup.npz") as stored:  # whole and loadable: the backup of step 6
        assert json.loads(str(stored["metadata"]))["run_step"] == 6
    resumed = train("moco", tmp_path / "backup", tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert train("moco", tmp_path / "full", tmp_path / "full.npz").returncode == 0
    assert_same_run(tmp_path / "full.npz", tmp_path / "resumed.npz")
    assert os.listdir(tmp_path / "backup") == ["backup.npz"]  # the half-written temporary file was cleared


def tiny(name="simclr", **kwargs):
    encoder = backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3))
    return methods.get_method(name)(encoder, projection_dim=8, hidden_dim=16, **kwargs)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_backup_of_another_run_is_refused_and_left_alone(tmp_path):
    (x, _), _ = cifar10_sample(num_train=16)
    backup = callbacks.BackupAndRestore(tmp_path, save_freq=2, delete_on_end=False)
    tiny().fit(x, batch_size=8, epochs=1, callbacks=[backup], verbose=0)
    before = digest(tmp_path / "backup.npz")
    with pytest.raises(callbacks.BackupMismatchError, match="its method is 'SimCLR', this run's is 'BYOL'"):
        tiny("byol").fit(x, batch_size=8, callbacks=[callbacks.BackupAndRestore(tmp_path)], verbose=0)
    with pytest.raises(callbacks.BackupMismatchError, match="its global batch size is 8, this run's is 4"):
        tiny().fit(x, batch_size=4, callbacks=[callbacks.BackupAndRestore(tmp_path)], verbose=0)
    with pytest.raises(callbacks.BackupMismatchError, match="method configuration"):
        tiny(temperature=0.1).fit(x, batch_size=8, callbacks=[callbacks.BackupAndRestore(tmp_path)], verbose=0)
    assert digest(tmp_path / "backup.npz") == before


class Poison(keras.callbacks.Callback):
    """Turns one kernel into NaN after the given step (after that step's backup was written)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.step:
            kernel = self.model.encoder.weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_stops_training_and_keeps_the_last_good_backup(tmp_path):
    (x, _), _ = cifar10_sample(num_train=32)
    backup = callbacks.BackupAndRestore(tmp_path, save_freq=1, delete_on_end=False)
    method = tiny()
    # The NaN loss stops it, or (XLA: a ReLU's fast max turns NaN into 0) the backup refuses the NaN weights.
    with pytest.raises(
        callbacks.NonFiniteError, match=r"epoch 1, batch 4: .*(the loss is nan|hold NaN).*learning rate"
    ):
        method.fit(x, batch_size=8, epochs=2, callbacks=[backup, Poison(3)], verbose=0)
    with np.load(tmp_path / "backup.npz") as stored:
        assert json.loads(str(stored["metadata"]))["run_step"] == 3
        assert all(
            np.all(np.isfinite(stored[k])) for k in stored.files if k != "metadata" and stored[k].dtype.kind == "f"
        )


def test_a_diverging_learning_rate_stops_at_the_first_non_finite_loss():
    (x, _), _ = cifar10_sample(num_train=32)
    method = tiny()
    method.compile(optimizer=keras.optimizers.SGD(1e30))
    # Before NaN propagated through the L2 normalisation, this trained on with a finite loss and NaN weights.
    with pytest.raises(callbacks.NonFiniteError, match=r"Training stopped at epoch 1, batch \d: the loss is nan"):
        method.fit(x, batch_size=8, epochs=3, verbose=0)


DETERMINISTIC_RUN = """
import sys, numpy as np, keras_ssl
keras_ssl.set_deterministic(0)
from keras_ssl import backbones, methods
from keras_ssl.testing import cifar10_sample
(x, _), _ = cifar10_sample(num_train=32)
method = methods.SimCLR(backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)), projection_dim=8)
method.fit(x, batch_size=8, epochs=2, verbose=0)  # shuffled, augmented, AdamW
np.savez(sys.argv[1], *[np.asarray(v) for v in method.variables])
"""


@pytest.mark.large
def test_two_seeded_runs_in_two_processes_are_identical(tmp_path):
    shared_data_file("cifar10/cifar10.npz")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KERAS_BACKEND": keras.backend.backend()}
    outputs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for output in outputs:
        result = subprocess.run([sys.executable, "-c", DETERMINISTIC_RUN, str(output)], env=env, capture_output=True)
        assert result.returncode == 0, result.stderr[-2000:]
    a, b = np.load(outputs[0]), np.load(outputs[1])
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
