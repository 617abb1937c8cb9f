"""Where SimCLR's training step spends its time on a CPU: timing ablations, XLA on and off (TensorFlow).

    python bench/simclr_profile.py          # ResNet-18 CIFAR, batch 64 -> bench/results/simclr_profile_tensorflow.json
    python bench/simclr_profile.py --tiny   # seconds, for a smoke run

Each part of the step runs as its own `tf.function` (with and without `jit_compile`), timed after warm-up; the
median of `--repeats` calls is printed as source images/s (each image gives two views):

- `augment`: the default augmenter alone (two views of the uint8 batch);
- `encoder`: the encoder's forward and backward passes on fixed views, both views in one pass of 2N images
  (what `SimCLR.compute_ssl_loss` does); loss: mean of the features squared;
- `encoder 2 passes`: the same as two passes of N images (what lightly's step does);
- `loss+grad`: `compute_ssl_loss` (augment, encoder, head, NT-Xent) and its gradient;
- `train_step`: `fit`'s step, SGD with momentum as in `bench/throughput.py`.

lightly's side of the same split is `bench/lightly_throughput.py --modes step encoder` (its `encoder` mode times
the torchvision ResNet-18's forward and backward passes alone), run from its own environment.
"""

import argparse
import json
import os
import statistics
import sys

from timing import median_seconds, step_timer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")
sys.path.insert(0, ROOT)


def measure(args, images, jit):
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import ops

    from keras_ssl import backbones, methods

    keras.utils.set_random_seed(0)
    method = methods.SimCLR(backbones.ResNet18(stem="cifar", width=args.width))
    method.compile(optimizer=keras.optimizers.SGD(0.06, momentum=0.9), jit_compile=jit)
    steps = args.warmup + args.repeats

    timer = step_timer(args.warmup)
    method.fit(np.tile(images, (steps, 1, 1, 1)), batch_size=len(images), epochs=1, shuffle=False, verbose=0,
               callbacks=[timer])  # fmt: skip
    results = {"train_step": statistics.median(timer.times)}

    batch = tf.constant(images)
    views = tf.constant(ops.convert_to_numpy(ops.concatenate(method.augmenter(batch, training=True), axis=0)))
    encoder_variables = method.encoder.trainable_variables

    def augment(images):
        return method.augmenter(images, training=True)

    def encoder_one_pass(views):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(method.encoder(views, training=True)))
        return tape.gradient(loss, encoder_variables)

    def encoder_two_passes(views):
        with tf.GradientTape() as tape:
            loss = sum(ops.mean(ops.square(method.encoder(half, training=True))) for half in ops.split(views, 2))
        return tape.gradient(loss, encoder_variables)

    def loss_grad(images):
        with tf.GradientTape() as tape:
            loss, _ = method.compute_ssl_loss(images, training=True)
        return tape.gradient(loss, method.trainable_variables)

    parts = {
        "augment": (augment, batch),
        "encoder": (encoder_one_pass, views),
        "encoder 2 passes": (encoder_two_passes, views),
        "loss+grad": (loss_grad, batch),
    }
    for name, (fn, x) in parts.items():
        compiled = tf.function(fn, jit_compile=jit)
        results[name] = median_seconds(lambda f=compiled, x=x: keras.tree.map_structure(np.asarray, f(x)),
                                       args.repeats, args.warmup)  # fmt: skip
    return {name: {"seconds": s, "images_per_second": len(images) / s} for name, s in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--xla", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--tiny", action="store_true", help="a small shape, for a smoke run")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "simclr_profile_tensorflow.json"))
    args = parser.parse_args()
    if args.tiny:
        args.batch, args.width, args.repeats, args.warmup = 8, 0.125, 2, 1
    import keras
    import numpy as np

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"run under KERAS_BACKEND=tensorflow; received {keras.backend.backend()!r}")
    with np.load(DATA) as data:
        images = data["x_train"][: args.batch]
    report = {
        "backend": "tensorflow",
        "keras_version": keras.__version__,
        "shape": {k: v for k, v in vars(args).items() if k != "output"},
        "command": " ".join(sys.argv),
        "cpu_count": os.cpu_count(),
    }
    for xla in args.xla:
        report[xla] = measure(args, images, xla == "on")
        for name, r in report[xla].items():
            print(f"xla={xla:3s} {name:17s} {r['images_per_second']:8.1f} images/s  {r['seconds']:.3f} s")
    if not args.tiny:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
        print("wrote", args.output)


if __name__ == "__main__":
    main()
