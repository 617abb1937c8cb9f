"""A CLI pretraining run on a folder of PNG files, killed twice and resumed, against the same run left alone.

    python bench/folder_resume.py                        # 10,000 CIFAR-10 images, 2 epochs, SimCLR, width 0.125
    python bench/folder_resume.py --images 2000 --epochs 1 --kill-after 5 12   # a quick look

It writes the first `--images` CIFAR-10 training images as PNG files (one
folder per class, as a user's photos would sit, labels unused), then runs the
same `keras-ssl pretrain simclr --data <folder> --checkpoint-dir ... --seed 0`
command twice:

- left alone, start to end;
- killed with SIGKILL as soon as its backup passes each step of `--kill-after`
  (a few seconds later, so the kill lands mid-way between backups and the steps
  since the last backup are lost), then started again with the same command,
  which resumes from the backup.

It records the optimizer steps both runs end at, whether every weight (and
BatchNorm statistic) of the two final states is equal, and the CIFAR-10 test
kNN accuracy (k=200, T=0.1; 10,000 training images as the bank) of both
bundles, measured with `keras-ssl evaluate`. Results: bench/results/folder_resume_<backend>_cpu.json.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "cifar10", "cifar10.npz")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_png_folder(npz, count, folder):
    """The first `count` training images of `npz` as `folder/<class>/<index>.png` (kept when already complete)."""
    import numpy as np
    from PIL import Image

    done = os.path.join(folder, ".complete")
    if os.path.exists(done):
        with open(done) as f:
            if int(f.read()) == count:
                return
    with np.load(npz) as data:
        images, labels = data["x_train"][:count], data["y_train"][:count].reshape(-1)
    for i, (image, label) in enumerate(zip(images, labels)):
        target = os.path.join(folder, CLASSES[int(label)])
        os.makedirs(target, exist_ok=True)
        Image.fromarray(image).save(os.path.join(target, f"{i:05d}.png"))
    with open(done, "w") as f:
        f.write(str(count))


def backup_step(checkpoint_dir):
    import numpy as np

    path = os.path.join(checkpoint_dir, "backup.npz")
    try:
        with np.load(path) as stored:
            return int(json.loads(str(stored["metadata"]))["run_step"])
    except (OSError, KeyError, ValueError):
        return 0  # none yet, or replaced while reading


def pretrain(command, checkpoint_dir, kill_after, log):
    """Runs `command`; for each step in `kill_after`, SIGKILLs it once its backup passes that step and reruns it."""
    kills = []
    for threshold in [*kill_after, None]:
        with open(log, "a") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        if threshold is None:
            if process.wait() != 0:
                raise SystemExit(f"{' '.join(command)} failed; see {log}")
            break
        while process.poll() is None and backup_step(checkpoint_dir) < threshold:
            time.sleep(0.5)
        if process.poll() is not None:
            raise SystemExit(f"the run ended before its backup reached step {threshold}; see {log}")
        time.sleep(3)  # mid-way to the next backup: the steps since this one are lost and trained again
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append({"backup_step_at_kill": backup_step(checkpoint_dir), "signal": "SIGKILL"})
    return kills


def final_state(checkpoint_dir):
    import numpy as np

    with np.load(os.path.join(checkpoint_dir, "backup.npz")) as stored:
        metadata = json.loads(str(stored["metadata"]))
        model = {k: stored[k] for k in stored.files if k.startswith("model_")}
    return metadata, model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--kill-after", type=int, nargs="+", default=[15, 50], help="backup steps to kill after")
    parser.add_argument("--work", default=os.path.join(HERE, "runs", "folder_resume"))
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    folder = os.path.join(args.work, "cifar10_png")
    start = time.time()
    write_png_folder(args.data, args.images, folder)
    written = time.time() - start
    env_bin = os.path.dirname(sys.executable)
    keras_ssl_cli = [os.path.join(env_bin, "keras-ssl")]

    runs = {}
    for name, kill_after in (("unkilled", []), ("killed", args.kill_after)):
        output = os.path.join(args.work, name, "bundle")
        checkpoint_dir = os.path.join(args.work, name, "backups")
        command = [
            *keras_ssl_cli,
            "pretrain",
            "simclr",
            "--data",
            folder,
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            "0",
            "--checkpoint-dir",
            checkpoint_dir,
            "--checkpoint-every",
            str(args.checkpoint_every),
            "--output",
            output,
            "--overwrite",
        ]
        shutil.rmtree(os.path.join(args.work, name), ignore_errors=True)  # a fresh measurement every time
        log = os.path.join(args.work, f"{name}.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w"):
            pass
        began = time.time()
        kills = pretrain(command, checkpoint_dir, kill_after, log)
        wall = time.time() - began
        metadata, model = final_state(checkpoint_dir)
        knn_json = os.path.join(args.work, name, "knn.json")
        subprocess.run(
            [
                *keras_ssl_cli,
                "evaluate",
                output,
                "--data",
                args.data,
                "--train-size",
                "10000",
                "--linear-size",
                "10000",
                "--json",
                knn_json,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(knn_json) as f:
            evaluation = json.load(f)
        runs[name] = {
            "command": " ".join(command),
            "kills": kills,
            "wall_s": round(wall, 1),
            "steps": metadata["run_step"],
            "evaluation": evaluation,
            "_model": model,
        }
        print(f"{name}: {metadata['run_step']} steps, {wall:.0f} s, kills {kills}, {evaluation}")

    a, b = runs["unkilled"].pop("_model"), runs["killed"].pop("_model")
    max_difference = max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) for k in a)
    result = {
        "what": "keras-ssl pretrain simclr on a PNG folder of CIFAR-10 training images: killed twice with SIGKILL "
        "and resumed with the same command, against the same command left alone",
        "backend": backend,
        "device": "cpu (2 cores, shared)",
        "images": args.images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "png_folder_written_s": round(written, 1),
        "runs": runs,
        "same_step_count": runs["unkilled"]["steps"] == runs["killed"]["steps"],
        "max_abs_weight_difference": max_difference,
        "command": f"KERAS_BACKEND={backend} python bench/folder_resume.py " + " ".join(sys.argv[1:]),
    }
    out = os.path.join(HERE, "results", f"folder_resume_{backend}_cpu.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
