"""A long, resumable CIFAR-10 pretraining run for a zoo preset, with kNN accuracy tracked per epoch.

    python bench/flagship.py simclr --epochs 30 --width 0.125        # resumes from bench/runs/<name>/ if present
    python bench/flagship.py simclr --export zoo_run/simclr          # after the last epoch: the bundle to publish

The run trains through `keras_ssl.callbacks.BackupAndRestore` with a backup at
every epoch end, so it survives kills and can span several sittings: run the
same command again and it continues at the exact step. After each epoch it
measures kNN accuracy (k=200, T=0.1) on a fixed subset (10,000 training images
as the bank, the first 2,000 test images) and appends it to
`bench/runs/<name>/curve.json` with the loss and the wall time, so the curve
shows where the run is going before it ends. The preset's card metrics are
measured afterwards with `keras-ssl evaluate` on the full splits.
"""

import argparse
import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "cifar10", "cifar10.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=("simclr", "byol", "moco"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=float, default=0.125, help="ResNet-18 (CIFAR stem) width")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--name", help="run folder name (default: <method>_w<width>_e<epochs>)")
    parser.add_argument("--export", help="write the trained encoder as a bundle here (after the last epoch)")
    args = parser.parse_args()

    import keras
    import numpy as np

    import keras_ssl
    from keras_ssl import backbones, callbacks, data, evaluation, methods

    name = args.name or f"{args.method}_w{args.width:g}_e{args.epochs}"
    run_dir = os.path.join(HERE, "runs", name)
    os.makedirs(run_dir, exist_ok=True)
    curve_path = os.path.join(run_dir, "curve.json")
    curve = {"args": vars(args), "epochs": []}
    if os.path.exists(curve_path):
        with open(curve_path) as f:
            curve = json.load(f)

    keras_ssl.set_deterministic(0)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10_npz(args.data)
    method = methods.get_method(args.method)(
        backbones.ResNet18(stem="cifar", width=args.width, input_shape=(32, 32, 3))
    )
    method.compile(learning_rate=args.learning_rate)
    bank, bank_labels, queries, query_labels = x_train[:10000], y_train[:10000], x_test[:2000], y_test[:2000]

    class Curve(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            knn = evaluation.knn_accuracy(method.encoder, bank, bank_labels, queries, query_labels, k=200)
            curve["epochs"] = [e for e in curve["epochs"] if e["epoch"] != epoch + 1]
            curve["epochs"].append(
                {
                    "epoch": epoch + 1,
                    "loss": float(logs["loss"]),
                    "knn_subset": knn,
                    "embedding_std": float(logs.get("embedding_std", np.nan)),
                    "seconds": time.time() - self.start,
                    "finished": time.strftime("%Y-%m-%d %H:%M"),
                }
            )
            with open(curve_path, "w") as f:
                json.dump(curve, f, indent=1)
            print(f"epoch {epoch + 1}: loss {logs['loss']:.4f}, kNN (10k bank, 2k test) {knn:.4f}", flush=True)

    backup = callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), save_freq="epoch", delete_on_end=False)
    method.fit(x_train, batch_size=args.batch_size, epochs=args.epochs, callbacks=[backup, Curve()], verbose=2)
    if args.export:
        print(f"bundle: {keras_ssl.export(method, args.export, overwrite=True)}")


if __name__ == "__main__":
    main()
