"""A method on the real CIFAR-10 training set with a CPU-sized ResNet-18, vs random init.

    python bench/cifar10_pretrain.py                  # SimCLR, ~10 minutes on 2 CPU cores
    python bench/cifar10_pretrain.py --method byol    # any registered method, same budget
    python bench/cifar10_pretrain.py --method mae --max-minutes 10   # a ViT-nano encoder
    KERAS_BACKEND=jax python bench/cifar10_pretrain.py --epochs 100 --width 1   # on a GPU

Test-set kNN accuracy (k=200, T=0.1, feature bank: the 50,000 training images)
of the encoder at random init and after pretraining; linear-probe accuracy on
a 10,000-image training subset; the loss and embedding_std every 20 steps; for the
reconstruction methods (autoencoders, MAE) the test-split PSNR and a PNG grid
of test reconstructions in docs/images/. Writes
bench/results/cifar10_<method>_<backend>.json.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from device import describe as describe_device  # noqa: E402  (bench/device.py)

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="simclr", help="a registered method name (keras-ssl list)")
    parser.add_argument(
        "--encoder",
        choices=("resnet18", "vit"),
        default=None,
        help="resnet18 (CIFAR stem; default) or vit (ViT-nano, patch 4; default for mae)",
    )
    parser.add_argument("--width", type=float, default=0.125, help="ResNet-18 width multiplier (0.125: 8..64 channels)")
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs of pretraining (fractional allowed)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--optimizer",
        choices=("adamw", "sgd"),
        default="adamw",
        help="adamw (the library default) or sgd (momentum 0.9, weight decay 5e-4, as SimSiam's CIFAR recipe); "
        "both with linear warmup + cosine decay",
    )
    parser.add_argument("--max-minutes", type=float, default=12.0, help="stop training after this wall time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_ssl import backbones, data, evaluation, methods

    backend = keras.backend.backend()
    (x_train, y_train), (x_test, y_test) = data.load_cifar10_npz(args.data)
    keras.utils.set_random_seed(args.seed)
    method_class = methods.get_method(args.method)
    reconstructs = issubclass(method_class, methods.ReconstructionMethod)
    encoder_kind = args.encoder or ("vit" if args.method == "mae" else "resnet18")
    if encoder_kind == "vit":
        encoder = backbones.ViT("nano", image_size=32)
        encoder_name = "ViT-nano (128 dims, 6 blocks, 4 heads, patch 4)"
    else:
        # Decoders mirror a fixed-size encoder; DINO's local crops need an open size.
        encoder = backbones.ResNet18(
            stem="cifar", width=args.width, input_shape=(32, 32, 3) if reconstructs else (None, None, 3)
        )
        encoder_name = f"ResNet-18 (CIFAR stem), width {args.width}"

    def scores():
        t0 = time.perf_counter()
        knn = evaluation.knn_accuracy(encoder, x_train, y_train, x_test, y_test, k=200, temperature=0.1)
        linear = evaluation.linear_probe(encoder, x_train[:10000], y_train[:10000], x_test, y_test, max_iter=300)
        print(f"  kNN {knn:.4f}  linear {linear:.4f}  ({time.perf_counter() - t0:.0f} s to evaluate)", flush=True)
        return {"knn": knn, "linear_probe_10k": linear}

    print("random init:", flush=True)
    random_init = scores()

    steps_per_epoch = len(x_train) // args.batch_size
    total_steps = int(args.epochs * steps_per_epoch)
    method = method_class(encoder)  # the method's own defaults
    if args.optimizer == "sgd":
        warmup = total_steps // 10
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps - warmup, warmup_target=args.learning_rate, warmup_steps=warmup
        )
        method.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4))
    else:
        method.compile(learning_rate=args.learning_rate)

    class Budget(keras.callbacks.Callback):
        """Logs progress and stops at the wall-time budget (the schedule assumes `total_steps`)."""

        def on_train_begin(self, logs=None):
            self.start, self.losses, self.steps = time.perf_counter(), [], 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps % 20 == 0:
                self.losses.append((self.steps, float(logs["loss"]), float(logs.get("embedding_std", float("nan")))))
                elapsed = time.perf_counter() - self.start
                print(
                    f"  step {self.steps}/{total_steps} loss {logs['loss']:.3f} {elapsed:.0f} s "
                    f"({self.steps * args.batch_size / elapsed:.0f} images/s)",
                    flush=True,
                )
            if time.perf_counter() - self.start > args.max_minutes * 60:
                self.model.stop_training = True

    budget = Budget()
    epochs = max(1, int(np.ceil(total_steps / steps_per_epoch)))
    t0 = time.perf_counter()
    # Steps are given explicitly so a fractional epoch count ends mid-epoch.
    method.fit(
        x_train,
        batch_size=args.batch_size,
        epochs=epochs,
        steps_per_epoch=min(steps_per_epoch, total_steps),
        verbose=0,
        callbacks=[budget],
    )
    train_seconds = time.perf_counter() - t0
    print(f"pretrained ({budget.steps} steps, {train_seconds:.0f} s):", flush=True)
    pretrained = scores()
    reconstruction = {}
    if reconstructs:
        reconstruction["test_psnr_db"] = evaluation.reconstruction_psnr(method, x_test)
        grid = os.path.join(ROOT, "docs", "images", f"cifar10_{args.method}_reconstructions.png")
        evaluation.save_reconstruction_grid(
            method,
            x_test[:10],
            grid,
            num_images=10,
            title=f"{args.method} on CIFAR-10 test images after {budget.steps} steps",
        )
        reconstruction["grid"] = os.path.relpath(grid, ROOT)
        print(f"  test PSNR {reconstruction['test_psnr_db']:.2f} dB, grid -> {grid}", flush=True)

    result = {
        "device": describe_device(backend),
        "backend": backend,
        "encoder": encoder_name,
        "feature_dim": int(encoder.output_shape[-1]),
        "recipe": {
            "method": args.method,
            "config": {k: v for k, v in method.get_config().items() if k not in ("encoder", "augmenter")},
            "augmenter": "the method's default recipe for 32x32",
            "optimizer": f"{'SGD (momentum 0.9, wd 5e-4)' if args.optimizer == 'sgd' else 'AdamW'} + warmup/cosine",
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "planned_steps": total_steps,
        },
        "steps_trained": budget.steps,
        "epochs_trained": budget.steps / steps_per_epoch,
        "train_seconds": train_seconds,
        "images_per_second": budget.steps * args.batch_size / train_seconds,
        "random_init": random_init,
        "pretrained": pretrained,
        "knn_gain_points": 100 * (pretrained["knn"] - random_init["knn"]),
        **({"reconstruction": reconstruction} if reconstruction else {}),
        "loss_curve": budget.losses,
        "evaluation": "kNN k=200 T=0.1 on the 10,000 test images with the 50,000 training images as bank; "
        "linear probe: logistic regression on 10,000 training images, scored on the test set",
    }
    suffix = "" if args.optimizer == "adamw" else f"_{args.optimizer}"
    output = args.output or os.path.join(HERE, "results", f"cifar10_{args.method}{suffix}_{backend}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"kNN gain: {result['knn_gain_points']:+.1f} points -> {output}")


if __name__ == "__main__":
    main()
