"""One worker of a multi-process run on 127.0.0.1, or the one-process reference run (test helper).

    python -m keras_ssl.testing.multiworker single OUTPUT.npz
    TF_CONFIG=... python -m keras_ssl.testing.multiworker worker OUTPUT.npz [--die-after-step N]
    KERAS_DISTRIBUTION_JOB_ADDRESSES=127.0.0.1:PORT KERAS_DISTRIBUTION_NUM_PROCESSES=2 \\
        KERAS_DISTRIBUTION_PROCESS_ID=i KERAS_BACKEND=jax python -m keras_ssl.testing.multiworker worker ...

Trains a tiny SimCLR for 4 steps of a global batch of 16 with deterministic
views, through `keras_ssl.trainers.distribution.distribution_scope`, and
writes the encoder's weights. `--die-after-step N` makes the worker SIGKILL
itself after step N, so a test can check that the other one fails quickly
and says which worker it lost.
"""

import os
import signal
import socket
import sys
import time

import numpy as np

NUM_IMAGES, GLOBAL_BATCH = 64, 16


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 now, for a cluster of worker processes (TF_CONFIG, a JAX coordinator)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main(mode, output, options):
    import keras

    from keras_ssl import backbones, methods
    from keras_ssl.testing import cifar10_sample
    from keras_ssl.testing.distributed import fixed_views_class
    from keras_ssl.trainers.distribution import distribution_scope

    (images, _), _ = cifar10_sample(num_train=NUM_IMAGES)
    with distribution_scope("multi-worker" if mode == "worker" else "none", timeout_seconds=30) as placement:
        keras.utils.set_random_seed(0)  # every process builds the same initial weights
        method = methods.SimCLR(
            backbones.ConvNet(filters=(4, 8), input_shape=(32, 32, 3)),
            augmenter=fixed_views_class()(2),
            projection_dim=8,
            hidden_dim=16,
        )
        method.compile(optimizer=keras.optimizers.SGD(float(options.get("--learning-rate", 0.01))))
        callbacks = []
        if "--die-after-step" in options:
            die_after = int(options["--die-after-step"])

            class Die(keras.callbacks.Callback):
                def on_train_batch_end(self, batch, logs=None):
                    if batch + 1 == die_after:
                        os.kill(os.getpid(), signal.SIGKILL)

            callbacks.append(Die())
        started = time.monotonic()
        try:
            history = method.fit(
                images[: GLOBAL_BATCH * int(options.get("--steps", 4))],
                batch_size=GLOBAL_BATCH,
                epochs=1,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        except Exception as error:
            print(f"FAILED after {time.monotonic() - started:.1f}s: {type(error).__name__}: {error}", flush=True)
            raise
        loss = history.history["loss"][0]
        print(f"replicas={placement.num_replicas} processes={placement.num_processes} loss={loss}", flush=True)
        np.savez(output, *[np.asarray(keras.ops.convert_to_numpy(v)) for v in method.encoder.weights])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], dict(zip(sys.argv[3::2], sys.argv[4::2])))
