"""Trains a tiny method for 3 epochs of 4 steps with a backup every step; optionally kills itself (test helper).

    python -m keras_ssl.testing.resume METHOD BACKUP_DIR OUTPUT.npz [--kill-after-step N] [--kill-in-write N]

`--kill-after-step N` sends itself SIGKILL right after step N's backup is
written; `--kill-in-write N` dies half-way through writing step N's backup.
Run again with the same BACKUP_DIR, it resumes. At the end it writes every
variable of the method (weights, teachers, queues, seed states), the
optimizer's and the step count to OUTPUT.npz, so a test can compare a killed
and resumed run with an uninterrupted one.
"""

import os
import signal
import sys

import numpy as np

EPOCHS, BATCH, NUM_IMAGES = 3, 4, 16
KWARGS = {
    "simclr": {"projection_dim": 8, "hidden_dim": 16},
    "moco": {"projection_dim": 8, "hidden_dim": 16, "queue_size": 8},
    "byol": {"projection_dim": 8, "hidden_dim": 16},
    "deepcluster": {"num_clusters": 4, "pca_dim": 4},
}


def main(argv):
    name, backup_dir, output = argv[:3]
    options = dict(zip(argv[3::2], argv[4::2]))
    import keras

    from keras_ssl import backbones, callbacks, methods
    from keras_ssl.testing import cifar10_sample
    from keras_ssl.utils import files

    keras.utils.set_random_seed(0)
    (images, _), _ = cifar10_sample(num_train=NUM_IMAGES)
    method = methods.get_method(name)(backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)), **KWARGS[name])
    method.compile(learning_rate=0.01)  # the default AdamW with warm-up and cosine: the schedule must resume too

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == int(options["--kill-after-step"]):
                os.kill(os.getpid(), signal.SIGKILL)

    run_callbacks = [callbacks.BackupAndRestore(backup_dir, save_freq=1, delete_on_end=False)]
    if "--kill-after-step" in options:
        run_callbacks.append(Kill())
    if "--kill-in-write" in options:
        target, original = int(options["--kill-in-write"]), files.atomic_write

        def dying_write(path, mode="wb"):
            step = int(keras.ops.convert_to_numpy(method.optimizer.iterations))
            if step != target:
                return original(path, mode)

            class Half:
                def __enter__(self):
                    self.manager = original(path, mode)
                    self.file = self.manager.__enter__()
                    return self

                def write(self, data):
                    self.file.write(data[: len(data) // 2])
                    self.file.flush()
                    os.kill(os.getpid(), signal.SIGKILL)

                def __exit__(self, *args):
                    return self.manager.__exit__(*args)

                def __getattr__(self, name):  # tell, seek, flush...: the real file's
                    return getattr(self.file, name)

            return Half()

        import keras_ssl.callbacks.backup as backup_module

        backup_module.atomic_write = dying_write
    history = method.fit(images, batch_size=BATCH, epochs=EPOCHS, callbacks=run_callbacks, verbose=0)
    arrays = {f"v{i}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(method.variables)}
    arrays.update(
        {f"o{i}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(method.optimizer.variables)}
    )
    np.savez(
        output,
        steps=int(keras.ops.convert_to_numpy(method.optimizer.iterations)),
        epochs=len(history.history["loss"]),
        loss=np.array(history.history["loss"]),
        **arrays,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
