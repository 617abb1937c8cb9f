"""Exact, atomic backups of a training run: a killed run resumes where it stopped, on every backend.

Keras's own `keras.callbacks.BackupAndRestore` restarts an interrupted epoch
from its first batch (a BYOL run of 3 x 4 steps killed after 6 ends at 14
steps, not 12), writes its weights file in place, and knows nothing of the
state a self-supervised method keeps outside its weights. This one saves
everything a step depends on and restores the run at the exact step:

- every variable of the method: weights, EMA teachers, queues, centres,
  DeepCluster's pseudo-labels, BatchNorm statistics, the augmenters' and
  maskers' random-seed states, the momentum schedule's position;
- the optimizer's variables (step count, moments) and so the learning-rate
  schedule's position;
- the metrics' running totals of the current epoch;
- where the data stands: the epoch, the batch inside it, the shuffling seed;
- the logs of the epochs already finished.

A backup is one `.npz` file written to a temporary file, fsynced and renamed
over the previous one, so a kill during the write leaves the previous backup
whole. Non-finite weights are never written: the run stops instead and the
last good backup stays. A backup from another method, configuration, batch
size, replica count or dataset length is refused rather than silently mixed.
"""

import hashlib
import json
import os

import keras
import numpy as np

from keras_ssl.callbacks.nonfinite import NonFiniteError, non_finite_names
from keras_ssl.utils.files import atomic_write, remove_stale_temporaries

BACKUP_FILE = "backup.npz"
FORMAT = "keras_ssl.backup/1"


class BackupMismatchError(ValueError):
    """A backup that belongs to another run (method, configuration, batch size, replicas or data)."""


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up a keras_ssl method's training every `save_freq` steps (or epoch) and resumes it exactly.

    Pass it to `Method.fit` like Keras's own: `fit` restores the latest backup
    in `backup_dir` before training (so the same command run again resumes)
    and skips the batches the interrupted epoch already trained on.

    Args:
        backup_dir: folder of the backup (created if missing).
        save_freq: "epoch" (at every epoch end) or a number of optimizer steps.
        delete_on_end: remove the backup when training completes, as Keras's
            callback does; False keeps it (the CLI keeps it beside the bundle).
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_on_end=True):
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f'`save_freq` must be "epoch" or a positive number of steps. Received: {save_freq!r}')
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_on_end = delete_on_end
        self.run = None  # what fit tells us about the run: fingerprint, steps per epoch, data seed
        self._epoch, self._step_in_epoch, self._epoch_logs = 0, 0, []
        self._first_step, self._last_saved = 0, 0  # the resumed epoch's first batch; the run step last saved
        self._resumed_metrics = None

    @property
    def path(self):
        return os.path.join(self.backup_dir, BACKUP_FILE)

    # --- called by Method.fit ---------------------------------------------------------

    def attach(self, method, fingerprint, steps_per_epoch, data_seed):
        """Records what identifies this run; returns the restored position `(epoch, step_in_epoch)` or None."""
        self.run = {"fingerprint": fingerprint, "steps_per_epoch": int(steps_per_epoch), "data_seed": data_seed}
        os.makedirs(self.backup_dir, exist_ok=True)
        remove_stale_temporaries(self.path)
        if not os.path.exists(self.path):
            return None
        return self._restore(method)

    def _restore(self, method):
        with np.load(self.path, allow_pickle=False) as stored:
            metadata = json.loads(str(stored["metadata"]))
            arrays = {key: stored[key] for key in stored.files if key != "metadata"}
        if metadata.get("format") != FORMAT:
            raise BackupMismatchError(
                f"{self.path} is not a keras_ssl backup ({FORMAT}). Received: {metadata.get('format')!r}"
            )
        self._check_same_run(metadata)
        groups = _state_groups(method)
        for group, variables in groups.items():
            if group == "metrics":
                continue  # restored when the resumed epoch begins, after Keras resets the metrics
            _assign(variables, [arrays[f"{group}_{i}"] for i in range(metadata["counts"][group])], group, self.path)
        self._resumed_metrics = [arrays[f"metrics_{i}"] for i in range(metadata["counts"]["metrics"])]
        self._epoch, self._step_in_epoch = metadata["epoch"], metadata["step_in_epoch"]
        self._epoch_logs = metadata["epoch_logs"]
        return self._epoch, self._step_in_epoch

    def _check_same_run(self, metadata):
        mine, theirs = self.run["fingerprint"], metadata["fingerprint"]
        for key, what in (
            ("method", "method"),
            ("config_sha256", "method configuration"),
            ("batch_size", "global batch size"),
            ("num_replicas", "replica count"),
            ("num_samples", "number of training samples"),
        ):
            if mine.get(key) != theirs.get(key):
                raise BackupMismatchError(
                    f"The backup in {self.backup_dir} is from another run: its {what} is {theirs.get(key)!r}, this "
                    f"run's is {mine.get(key)!r}. Resume with the same settings, or use a new backup_dir (the "
                    "backup was left untouched)."
                )
        if metadata["steps_per_epoch"] != self.run["steps_per_epoch"]:
            raise BackupMismatchError(
                f"The backup in {self.backup_dir} has {metadata['steps_per_epoch']} steps per epoch, this run "
                f"{self.run['steps_per_epoch']}. Resume with the same data and batch size, or use a new backup_dir."
            )
        if metadata.get("data_seed") is not None:
            self.run["data_seed"] = metadata["data_seed"]  # the interrupted run's shuffling order continues

    @property
    def data_seed(self):
        return None if self.run is None else self.run["data_seed"]

    # --- Keras callback hooks ---------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        resuming = self._resumed_metrics is not None and self._step_in_epoch and epoch == self._epoch
        if resuming:  # the interrupted epoch's running means continue (Keras has just reset them)
            _assign(self.model.metrics_variables, self._resumed_metrics, "metrics", self.path)
        self._first_step = self._step_in_epoch if resuming else 0
        self._epoch, self._step_in_epoch = epoch, self._first_step
        self._last_saved = self._run_step()
        self._resumed_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        # Counted here rather than read from the optimizer: under JAX, touching the model every step would copy
        # the whole training state back from the device.
        self._step_in_epoch = self._first_step + batch + 1
        if self.save_freq != "epoch" and self._run_step() // self.save_freq > self._last_saved // self.save_freq:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_logs.append({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self._epoch, self._step_in_epoch = epoch + 1, 0
        self.save()  # an epoch boundary is always a backup point: it carries the finished epoch's logs

    def _run_step(self):
        """Steps trained in this run so far, counted from epoch 0."""
        return self._epoch * self.run["steps_per_epoch"] + self._step_in_epoch

    def finish(self):
        """Called by `Method.fit` when the whole run has trained: removes the backup if asked to."""
        if self.delete_on_end and os.path.exists(self.path):
            os.remove(self.path)

    # --- writing ------------------------------------------------------------------------

    def save(self):
        """Writes the backup atomically; refuses (and stops training) if any state is not finite."""
        method = self.model
        groups = _state_groups(method)
        values = {group: [np.asarray(keras.ops.convert_to_numpy(v)) for v in vs] for group, vs in groups.items()}
        bad = non_finite_names(
            [(v.path, a) for group in ("model", "optimizer") for v, a in zip(groups[group], values[group])]
        )
        if bad:
            raise NonFiniteError(
                f"Not backing up epoch {self._epoch + 1}, batch {self._step_in_epoch}: {', '.join(bad[:5])} hold NaN "
                f"or infinity. The last "
                f"good backup in {self.backup_dir} is kept. Usual causes: a learning rate too high, float16 without "
                "loss scaling, or non-finite inputs."
            )
        metadata = {
            "format": FORMAT,
            "fingerprint": self.run["fingerprint"],
            "steps_per_epoch": self.run["steps_per_epoch"],
            "data_seed": self.run["data_seed"],
            "epoch": self._epoch,
            "step_in_epoch": self._step_in_epoch,
            "run_step": self._run_step(),
            "epoch_logs": self._epoch_logs,
            "counts": {group: len(arrays) for group, arrays in values.items()},
        }
        payload = {f"{group}_{i}": array for group, arrays in values.items() for i, array in enumerate(arrays)}
        with atomic_write(self.path) as f:
            np.savez(f, metadata=np.array(json.dumps(metadata)), **payload)
        self._last_saved = self._run_step()

    def epoch_logs(self):
        """Logs of the epochs finished before this fit resumed (so a resumed run's history is whole)."""
        return list(self._epoch_logs)


def _without_names(config):
    """A config with every "name" removed: Keras numbers repeated names (sim_clr_1), which is not a change."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def run_fingerprint(method, batch_size, num_replicas, num_samples):
    """What must not change between an interrupted run and its resumption."""
    config = json.dumps(_without_names(method.get_config()), sort_keys=True, default=str)
    return {
        "method": type(method).__name__,
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "batch_size": None if batch_size is None else int(batch_size),
        "num_replicas": int(num_replicas),
        "num_samples": None if num_samples is None else int(num_samples),
    }


def _state_groups(method):
    """Every variable a training step reads or writes, in a stable order (the optimizer must be built)."""
    return {
        "model": list(method.variables),
        "optimizer": list(method.optimizer.variables),
        "metrics": list(method.metrics_variables),
    }


def _assign(variables, arrays, group, path):
    if len(variables) != len(arrays):
        raise BackupMismatchError(
            f"{path} holds {len(arrays)} {group} variables; this run has {len(variables)}. Received a backup of a "
            "different model: use a new backup_dir."
        )
    for variable, array in zip(variables, arrays):
        if tuple(variable.shape) != tuple(array.shape):
            raise BackupMismatchError(
                f"{path}: {group} variable {variable.path} has shape {tuple(variable.shape)}; the backup holds "
                f"{tuple(array.shape)}. Received a backup of a different model: use a new backup_dir."
            )
        variable.assign(array)
