"""Images/s of the SimCLR train step (ResNet-18, CIFAR stem) per backend, XLA on/off.

    python bench/throughput.py                      # every backend x XLA setting, + lightly
    python bench/throughput.py --one jax --jit 1    # one configuration (used internally)

Each configuration runs in its own process (KERAS_BACKEND is fixed at import).
Images/s counts source images (each yields two augmented views); the step
includes on-device augmentation, forward and backward passes of both views
and the optimizer update. lightly (PyTorch) runs the same workload from its
own virtual environment (bench/setup_lightly_env.sh) in the same run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")
GFLOP_PER_IMAGE = 6.7  # SimCLR ResNet-18 CIFAR: 2 views x (forward + backward)


def measure(backend, jit, batch_size, steps, warmup, width):
    os.environ["KERAS_BACKEND"] = backend
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    from keras_ssl import backbones, methods

    images = np.load(DATA)["x_train"][: batch_size * (steps + warmup)]
    method = methods.SimCLR(backbones.ResNet18(stem="cifar", width=width))
    method.compile(optimizer=keras.optimizers.SGD(0.06, momentum=0.9), jit_compile=bool(jit))

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            # logs hold device values: reading the loss waits for the step to finish
            float(logs["loss"])
            if batch == warmup - 1:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    timer = Timer()
    method.fit(images, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    seconds = (timer.end - timer.start) / steps
    return {
        "backend": backend,
        "jit_compile": bool(jit),
        "keras_version": keras.__version__,
        "batch_size": batch_size,
        "width": width,
        "seconds_per_step": seconds,
        "images_per_second": batch_size / seconds,
        "steps": steps,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", choices=["tensorflow", "jax"], help="measure one backend in this process")
    parser.add_argument("--jit", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for lightly")
    parser.add_argument("--skip-lightly", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "throughput_cpu.json"))
    args = parser.parse_args()
    common = [
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--width",
        str(args.width),
    ]
    if args.one:
        print(json.dumps(measure(args.one, args.jit, args.batch_size, args.steps, args.warmup, args.width)))
        return

    results = []
    for backend in ("tensorflow", "jax"):
        for jit in (1, 0):
            out = subprocess.run(
                [sys.executable, __file__, "--one", backend, "--jit", str(jit), *common],
                capture_output=True,
                text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            if out.returncode:
                print(out.stderr[-3000:])
                raise SystemExit(f"{backend} jit={jit} failed")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"keras_ssl {backend:10s} xla={'on ' if jit else 'off'} {result['images_per_second']:8.1f} images/s")
            results.append(result)

    lightly = None
    venv_python = os.path.join(HERE, ".venv-lightly", "bin", "python")
    if not args.skip_lightly:
        if not os.path.exists(venv_python):
            subprocess.run(["bash", os.path.join(HERE, "setup_lightly_env.sh")], check=True)
        path = os.path.join(HERE, "results", "lightly_throughput_cpu.json")
        subprocess.run(
            [
                venv_python,
                os.path.join(HERE, "lightly_throughput.py"),
                "--batch-size",
                str(args.batch_size),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
                "--output",
                path,
            ],
            check=True,
        )
        with open(path) as f:
            lightly = json.load(f)
        for mode in ("step", "end_to_end"):
            print(f"lightly    torch      {mode:10s} {lightly[mode]['images_per_second']:8.1f} images/s")

    report = {
        "device": f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "workload": "SimCLR train step, ResNet-18 CIFAR stem, 32x32, two views, projection 512-512-128",
        "gflop_per_image": GFLOP_PER_IMAGE * args.width**2,
        "keras_ssl": results,
        "lightly": lightly,
    }
    if lightly:
        reference = lightly["end_to_end"]["images_per_second"]
        report["ratio_vs_lightly_end_to_end"] = {
            f"{r['backend']}_xla_{'on' if r['jit_compile'] else 'off'}": r["images_per_second"] / reference
            for r in results
        }
        print(json.dumps(report["ratio_vs_lightly_end_to_end"], indent=2))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
