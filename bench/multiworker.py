"""SimCLR images/s on this machine: 1 process x 2 threads against 2 worker processes x 1 thread.

The same global batch and model either way; the difference is what the
multi-worker machinery costs (gradient all-reduce, embedding all-gather,
synchronised BatchNorm, over gRPC/gloo on 127.0.0.1) when there is no extra
hardware to gain. Writes bench/results/multiworker_<backend>_cpu.json.

    python bench/multiworker.py                    # TensorFlow (MultiWorkerMirroredStrategy)
    KERAS_BACKEND=jax python bench/multiworker.py  # JAX (jax.distributed + DataParallel, gloo)
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def worker(args):
    """One training process: times `--steps` steps after `--warmup` steps and prints a JSON line."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from keras_ssl import backbones, methods
    from keras_ssl.trainers.distribution import distribution_scope

    kind = "multi-worker" if args.role == "worker" else "none"
    images = np.random.default_rng(0).integers(0, 256, ((args.warmup + args.steps) * args.batch, 32, 32, 3), "uint8")
    with distribution_scope(kind) as placement:
        keras.utils.set_random_seed(0)
        method = methods.SimCLR(backbones.ResNet18(stem="cifar", width=args.width, input_shape=(32, 32, 3)))
        method.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        times = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter())

        method.fit(images, batch_size=args.batch, epochs=1, shuffle=False, verbose=0, callbacks=[Clock()])
    steps = len(times) - args.warmup
    seconds = times[-1] - times[args.warmup - 1]
    print(
        "RESULT "
        + json.dumps(
            {
                "images_per_second": steps * args.batch / seconds,
                "steps": steps,
                "replicas": placement.num_replicas,
                "processes": placement.num_processes,
            }
        )
    )


def run(mode, threads, index, ports, args, backend):
    env = {**os.environ, "PYTHONPATH": REPO, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if backend == "jax":
        env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
        env["OMP_NUM_THREADS"] = str(threads)
    if mode == "worker":
        if backend == "tensorflow":
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        else:
            env.update(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{ports[0]}",
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            )
    command = [
        sys.executable,
        __file__,
        "--role",
        mode,
        "--threads",
        str(threads),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--width",
        str(args.width),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process):
    out, err = process.communicate(timeout=3600)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise RuntimeError(f"a benchmark process failed:\n{out[-2000:]}\n{err[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("bench", "single", "worker"), default="bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.125, help="ResNet-18 width (CIFAR stem)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats of each configuration")
    args = parser.parse_args()
    if args.role != "bench":
        return worker(args)

    import keras

    from keras_ssl.testing.multiworker import free_ports

    backend = keras.backend.backend()
    single, multi = [], []
    for _ in range(args.repeats):  # alternate, so a busy moment of the machine hurts both alike
        single.append(result(run("single", 2, 0, None, args, backend))["images_per_second"])
        ports = free_ports(2)
        workers = [run("worker", 1, i, ports, args, backend) for i in range(2)]
        multi.append(min(result(w)["images_per_second"] for w in workers))
    record = {
        "benchmark": "SimCLR ResNet-18 (CIFAR stem) training images/s: 1 process x 2 threads vs 2 workers x 1 thread",
        "backend": backend,
        "device": f"CPU, {os.cpu_count()} cores",
        "global_batch": args.batch,
        "width": args.width,
        "timed_steps": args.steps,
        "one_process_two_threads": {"runs": single, "median": float(np.median(single))},
        "two_workers_one_thread": {"runs": multi, "median": float(np.median(multi))},
        "ratio_two_workers_to_one_process": float(np.median(multi) / np.median(single)),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "bench/multiworker.py", *sys.argv[1:]]),
    }
    path = os.path.join(HERE, "results", f"multiworker_{backend}_cpu.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
