"""Images/s of the folder input pipeline (decode, resize, batch) next to the SimCLR train step's.

    python bench/input_pipeline.py            # -> bench/results/input_pipeline_cpu.json

Writes CIFAR-10 images (../shared/data/cifar10/cifar10.npz) into a temporary
folder twice: as 32x32 PNGs, and upscaled to 224x224 (bilinear) as JPEGs
(quality 90). For each, it times `keras_ssl.data.image_folder` (listing
and the up-front file checks), then iterates `fit_input` and counts the
images/s of the batches after a warm-up. In the same process it times the
SimCLR train step (ResNet-18, CIFAR stem, width 0.125, batch 64, random
uint8 32x32 images, steps after a warm-up), so one table says whether the
input or the step is the bottleneck on this machine. The folders are
deleted at the end.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")


def write_images(images, folder, size, extension):
    """Saves `images` under `folder` (100 per sub-folder), resized to `size`; returns the seconds it took."""
    from PIL import Image

    start = time.perf_counter()
    for i, array in enumerate(images):
        subfolder = os.path.join(folder, f"{i // 100:03d}")
        os.makedirs(subfolder, exist_ok=True)
        image = Image.fromarray(array)
        if size != image.size[0]:
            image = image.resize((size, size), Image.BILINEAR)
        options = {"quality": 90} if extension == "jpg" else {}
        image.save(os.path.join(subfolder, f"{i:05d}.{extension}"), **options)
    return time.perf_counter() - start


def measure_folder(folder, size, batch_size, warmup, batches):
    from keras_ssl import data

    start = time.perf_counter()
    reader = data.image_folder(folder, size, batch_size=batch_size, seed=0)
    setup = time.perf_counter() - start
    epochs = -(-(warmup + batches) // reader.steps_per_epoch)  # enough epochs for warm-up + timed batches
    stream = iter(reader.fit_input(0, 0, epochs))
    for _ in range(warmup):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(stream)
    batch.numpy()
    seconds = time.perf_counter() - start
    return {
        "files": reader.num_images,
        "image_size": size,
        "batch_size": batch_size,
        "setup_seconds": setup,
        "setup_files_per_second": reader.num_images / setup,
        "timed_batches": batches,
        "images_per_second": batches * batch_size / seconds,
    }


def measure_simclr(batch_size, width, warmup, steps):
    import keras
    import numpy as np

    from keras_ssl import backbones, methods

    images = np.random.default_rng(0).integers(0, 256, (batch_size * (warmup + steps), 32, 32, 3), dtype=np.uint8)
    method = methods.SimCLR(backbones.ResNet18(stem="cifar", width=width))

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step to finish
            if batch == warmup - 1:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    timer = Timer()
    method.fit(images, batch_size=batch_size, epochs=1, verbose=0, callbacks=[timer])
    seconds = (timer.end - timer.start) / steps
    return {
        "batch_size": batch_size,
        "width": width,
        "image_size": 32,
        "timed_steps": steps,
        "seconds_per_step": seconds,
        "images_per_second": batch_size / seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png-images", type=int, default=5000)
    parser.add_argument("--jpeg-images", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per folder")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--simclr-steps", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "input_pipeline_cpu.json"))
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    with np.load(DATA) as archive:
        images = archive["x_train"][: max(args.png_images, args.jpeg_images)]
    workdir = tempfile.mkdtemp(prefix="keras_ssl_input_bench_")
    results = {}
    try:
        cases = [
            ("png_32", args.png_images, 32, "png", 256),
            ("jpeg_224", args.jpeg_images, 224, "jpg", 64),
        ]
        for name, count, size, extension, batch_size in cases:
            folder = os.path.join(workdir, name)
            write_seconds = write_images(images[:count], folder, size, extension)
            result = measure_folder(folder, size, batch_size, args.warmup, args.batches)
            result.update(format=extension.upper().replace("JPG", "JPEG"), write_seconds=write_seconds)
            results[name] = result
            print(f"{name}: {result['images_per_second']:.0f} images/s", flush=True)
            shutil.rmtree(folder)
        results["simclr_step"] = measure_simclr(64, 0.125, 2, args.simclr_steps)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "command": " ".join(["nice -n 10 python bench/input_pipeline.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "host": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), {platform.system()}",
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "pipeline": "keras_ssl.data.image_folder(...).fit_input: read, decode, central square, resize, batch, prefetch",
        "simclr_step": "SimCLR train step, ResNet-18 CIFAR stem width 0.125, batch 64, 32x32 uint8, default compile",
        "results": results,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"\n{'workload':<34} {'images/s':>10}   setup (list + check)")
    for name in ("png_32", "jpeg_224"):
        r = results[name]
        label = f"folder, {r['files']} {r['format']} {r['image_size']}x{r['image_size']}, batch {r['batch_size']}"
        print(f"{label:<34} {r['images_per_second']:>10.0f}   {r['setup_seconds']:.1f} s")
    r = results["simclr_step"]
    print(f"{'SimCLR step, ResNet-18 w0.125, b64':<34} {r['images_per_second']:>10.0f}")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
