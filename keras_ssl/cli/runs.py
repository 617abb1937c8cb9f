"""The run folder `keras-ssl pretrain` leaves beside each bundle.

    <output>.run/
      command.txt     the command that made the run (backend, working directory, arguments)
      history.json    per-epoch logs: {"epoch": [1, 2, ...], "loss": [...], <logged values>: [...]}
      loss.png        the curves of history.json
      tensorboard/    TensorBoard event files (keras.callbacks.TensorBoard): `tensorboard --logdir <output>.run`
      backups/        keras_ssl.callbacks.BackupAndRestore's backup.npz (--checkpoint-dir), kept after the run

history.json and loss.png are rewritten at every epoch end, so a killed run keeps its curves so far.
"""

import json
import math
import os
import shlex

COMMAND, HISTORY, LOSS_PNG, TENSORBOARD, BACKUPS = "command.txt", "history.json", "loss.png", "tensorboard", "backups"


def default_run_dir(output):
    """`<output>.run`, beside the bundle directory."""
    return os.path.abspath(os.fspath(output)).rstrip(os.sep) + ".run"


def command_line(argv, backend):
    """The exact command as one shell line, with the backend that ran it."""
    return f"KERAS_BACKEND={backend} keras-ssl {shlex.join(argv)}"


def _replace_text(path, text):
    """Writes `text` to `path` in one rename (a reader or a kill never sees half a file), with the umask's mode."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def write_command(run_dir, line):
    _replace_text(os.path.join(run_dir, COMMAND), f"# run in {os.getcwd()}\n{line}\n")


def backup_position(checkpoint_dir):
    """`(epoch, step_in_epoch, epoch_logs)` of the backup in `checkpoint_dir`, or None when there is none.

    Epochs are counted from 0: `(1, 0)` means one epoch finished and none of the next one trained.
    """
    import numpy as np

    from keras_ssl.callbacks.backup import BACKUP_FILE

    path = os.path.join(checkpoint_dir, BACKUP_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            metadata = json.loads(str(stored["metadata"]))
        return int(metadata["epoch"]), int(metadata["step_in_epoch"]), list(metadata.get("epoch_logs", []))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"Expected a keras_ssl backup at {path}. Received a file that cannot be read ({error}); move it away "
            "or pass --restart to start over."
        ) from error


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None  # strict JSON has no NaN


def history_columns(epoch_logs, first_epoch=1):
    """`[{name: value}, ...]` (one dict per epoch) -> `{"epoch": [...], name: [...]}` with None for gaps."""
    names = sorted({name for logs in epoch_logs for name in logs})
    columns = {"epoch": list(range(first_epoch, first_epoch + len(epoch_logs)))}
    for name in names:
        columns[name] = [_finite_or_none(logs[name]) if name in logs else None for logs in epoch_logs]
    return columns


def write_history(run_dir, epoch_logs, title=None):
    """Writes history.json and loss.png for the per-epoch logs so far."""
    from keras_ssl.evaluation.plots import save_loss_curve

    columns = history_columns(epoch_logs)
    _replace_text(os.path.join(run_dir, HISTORY), json.dumps(columns, indent=1) + "\n")
    if columns.get("loss"):
        save_loss_curve(columns, os.path.join(run_dir, LOSS_PNG), title=title)


def history_recorder(run_dir, earlier_logs, title=None):
    """A Keras callback that rewrites history.json and loss.png at each epoch end.

    `earlier_logs` are the epochs a resumed run finished before (from its backup), so the files always
    cover the whole run.
    """
    import keras
    import numpy as np

    class HistoryRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_logs = [dict(logs) for logs in earlier_logs]

        def on_epoch_end(self, epoch, logs=None):
            scalars = {k: float(np.asarray(v)) for k, v in (logs or {}).items() if np.ndim(v) == 0}
            del self.epoch_logs[epoch:]  # an epoch trained again after a resume replaces its old entry
            self.epoch_logs.append(scalars)
            write_history(run_dir, self.epoch_logs, title=title)

    return HistoryRecorder()
