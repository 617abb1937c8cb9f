"""Timing helpers shared by the bench scripts.

Only the standard library and Keras, so the scripts that run in other environments (bench/keras_hub_mlm.py, in
KerasHub's) import it too: each script's folder is first on `sys.path` when it runs as `python bench/<script>.py`.
"""

import statistics
import time


def median_seconds(fn, repeats, warmup):
    """The median wall time of `repeats` calls of `fn` after `warmup` untimed ones; `fn` must wait for its result."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_timer(warmup):
    """A Keras callback that records each training batch's wall time in `.times`, after `warmup` batches.

    Reading the loss waits for the step: with logs held on the device, the clock stops when the step is done."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])
            if batch >= warmup:
                self.times.append(time.perf_counter() - self.start)

    return StepTimer()
