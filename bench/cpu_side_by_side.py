"""keras_ssl beside its references on this CPU, in one run (`make bench`).

    python bench/cpu_side_by_side.py                 # -> bench/results/cpu_side_by_side.json
    python bench/cpu_side_by_side.py --rounds 5 --only masked_lm

Three pairs; in each round every configuration of a pair runs once, in its own process, the pair's members
alternating (which goes first flips every round), so a load change on the machine hits both sides alike. The
medians over `--rounds` rounds (at least 5 for the recorded numbers) are compared.

- `simclr`: keras_ssl's SimCLR step (TensorFlow, ResNet-18 CIFAR stem, two views augmented in the step, SGD;
  `bench/throughput.py --one`) with XLA on (`jit_compile=True`) and at Keras's default (`"auto"`: no XLA on a
  CPU), against lightly's step only (views prepared in advance; `bench/lightly_throughput.py --modes step`, in
  lightly's own environment, `bench/setup_lightly_env.sh`).
- `masked_lm`: training tokens/s of keras_ssl's MaskedLM (TensorFlow, `TransformerEncoder` BERT-tiny shape: 2
  layers, 128 hidden, 2 heads, MLP 512, 8,000 ids, 128 tokens per row, batch 32; masking inside the step)
  against KerasHub's `BertMaskedLM` with the same dimensions fed by its own `MaskedLMMaskGenerator` in `tf.data`
  (`bench/keras_hub_mlm.py`, in KerasHub's own environment, `bench/setup_keras_hub_env.sh`), each with XLA on and
  at the default.
- `knn`: `keras_ssl.evaluation.knn_predict` (k=200, T=0.1) over CIFAR-10 (50,000 training rows as the bank,
  10,000 test rows) against a plain NumPy reference (one full argsort per test row); the features are the images
  under a fixed random projection to 512 dims, so the pair times the search, not an encoder. Both are NumPy: there
  is no compile setting. The two must predict the same classes.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from timing import step_timer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")
LIGHTLY_PYTHON = os.path.join(os.environ.get("LIGHTLY_VENV", os.path.join(HERE, ".venv-lightly")), "bin", "python")
KERAS_HUB_PYTHON = os.path.join(
    os.environ.get("KERAS_HUB_VENV", os.path.join(HERE, ".venv-keras-hub")), "bin", "python"
)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PYTHONPATH": ROOT}


def last_json(command, what):
    """Runs `command`; its result is the JSON on its last line, or, for lightly_throughput.py, in its --output."""
    out = subprocess.run(command, capture_output=True, text=True, env=ENV)
    if out.returncode:
        raise SystemExit(f"{what} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    if "--output" in command:
        with open(command[command.index("--output") + 1]) as f:
            result = json.load(f)
        return {**result.pop("step"), **result}  # lightly_throughput.py nests its numbers under the mode
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- keras_ssl's MaskedLM, in a child process ------------------------------------------------------------------


def masked_lm_child(jit, batch, length, vocabulary, steps, warmup):
    import keras
    import numpy as np

    from keras_ssl import backbones, methods

    keras.utils.set_random_seed(0)
    encoder = backbones.TransformerEncoder(vocabulary, "tiny", max_length=length)  # 128 dims, 2 blocks, 2 heads
    method = methods.MaskedLM(encoder, seed=0)
    method.compile(learning_rate=1e-3, jit_compile=True if jit else "auto")
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocabulary, size=(batch * (warmup + steps), length)).astype("int32")
    ids[:, 0] = 2

    timer = step_timer(warmup)
    method.fit(ids, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    seconds = statistics.median(timer.times)
    return {
        "library": "keras_ssl",
        "keras_version": keras.__version__,
        "jit_compile": bool(jit),
        "seconds_per_step": seconds,
        "tokens_per_second": batch * length / seconds,
        "step_seconds": timer.times,
    }


# --- kNN ---------------------------------------------------------------------------------------------------------


def knn_features(dim=512, seed=0):
    import numpy as np

    with np.load(DATA) as data:
        x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    projection = np.random.default_rng(seed).standard_normal((32 * 32 * 3, dim)).astype("float32") / 55.0
    features = [(x.reshape(len(x), -1).astype("float32") / 255.0 - 0.5) @ projection for x in (x_train, x_test)]
    return features[0], y_train.reshape(-1), features[1], y_test.reshape(-1)


def knn_reference(train, labels, test, k=200, temperature=0.1, num_classes=10, chunk=1000):
    """The textbook version: normalise, full similarity rows, a full sort per row, weighted votes."""
    import numpy as np

    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    predictions = []
    for start in range(0, len(test), chunk):
        sims = test[start : start + chunk] @ train.T
        top = np.argsort(-sims, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, top, axis=1) / temperature)
        votes = np.zeros((len(sims), num_classes))
        np.add.at(votes, (np.arange(len(sims))[:, None], labels[top]), weights)
        predictions.append(votes.argmax(axis=1))
    return np.concatenate(predictions)


def knn_pair(rounds):
    import numpy as np

    from keras_ssl.evaluation.knn import knn_predict

    train, labels, test, test_labels = knn_features()
    sides = {
        "keras_ssl": lambda: knn_predict(train, labels, test, k=200, temperature=0.1),
        "numpy_reference": lambda: knn_reference(train, labels, test),
    }
    times = {name: [] for name in sides}
    predictions = {}
    for round_ in range(rounds):
        for name in sides if round_ % 2 == 0 else reversed(list(sides)):
            start = time.perf_counter()
            predictions[name] = np.asarray(sides[name]())
            times[name].append(time.perf_counter() - start)
    agree = float(np.mean(predictions["keras_ssl"] == predictions["numpy_reference"]))
    result = {
        name: {
            "median_seconds": statistics.median(t),
            "queries_per_second": len(test) / statistics.median(t),
            "accuracy": float(np.mean(predictions[name] == test_labels)),
            "runs_seconds": t,
        }
        for name, t in times.items()
    }
    result["prediction_agreement"] = agree
    result["keras_ssl_over_reference"] = (
        result["keras_ssl"]["queries_per_second"] / result["numpy_reference"]["queries_per_second"]
    )
    result["setup"] = "bank 50,000 x 512 (CIFAR-10 train under a fixed random projection), 10,000 queries, k=200, T=0.1"
    return result


# --- pairs of processes ------------------------------------------------------------------------------------------


def run_pair(name, configs, rounds, rate_key):
    """configs: {label: command}; alternating rounds; returns the medians and every run."""
    runs = {label: [] for label in configs}
    labels = list(configs)
    for round_ in range(rounds):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            result = last_json(configs[label], f"{name}/{label}")
            runs[label].append(result)
            print(f"{name:10s} round {round_ + 1}/{rounds} {label:28s} {result[rate_key]:10.1f} {rate_key}", flush=True)
    summary = {}
    for label, results in runs.items():
        rates = [r[rate_key] for r in results]
        summary[label] = {f"median_{rate_key}": statistics.median(rates), "runs": rates, "last": results[-1]}
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", nargs="+", choices=("simclr", "masked_lm", "knn"), default=["simclr", "masked_lm", "knn"]
    )
    parser.add_argument("--simclr-batch", type=int, default=64)
    parser.add_argument("--simclr-width", type=float, default=1.0)
    parser.add_argument("--simclr-steps", type=int, default=3)
    parser.add_argument("--mlm-steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for lightly")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "cpu_side_by_side.json"))
    parser.add_argument("--child-masked-lm", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    mlm_shape = {"batch": 32, "length": 128, "vocabulary": 8000}
    if args.child_masked_lm is not None:
        sys.path.insert(0, ROOT)
        print(json.dumps(masked_lm_child(args.child_masked_lm, **mlm_shape, steps=args.mlm_steps, warmup=args.warmup)))
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    report = {
        "command": " ".join(["python", os.path.relpath(os.path.abspath(__file__), ROOT), *sys.argv[1:]]),
        "device": f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "rounds": args.rounds,
        "load_average_before": os.getloadavg()[0],
        "pairs": {},
    }
    if os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        report["pairs"] = {k: v for k, v in previous.get("pairs", {}).items() if k not in args.only}

    def record(name, summary):
        # Pairs kept from an earlier run (--only) keep their own command and date.
        summary.update(
            command=report["command"], rounds=args.rounds, measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        )
        report["pairs"][name] = summary
        save()

    def save():
        report["load_average_after"] = os.getloadavg()[0]
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)

    if "simclr" in args.only:
        if not os.path.exists(LIGHTLY_PYTHON):
            subprocess.run(["bash", os.path.join(HERE, "setup_lightly_env.sh")], check=True)
        common = ["--batch-size", str(args.simclr_batch), "--steps", str(args.simclr_steps)]
        common += ["--warmup", str(args.warmup)]
        throughput = [sys.executable, os.path.join(HERE, "throughput.py"), "--one", "tensorflow"]
        configs = {
            "keras_ssl_tensorflow_xla_on": [*throughput, "--jit", "1", *common, "--width", str(args.simclr_width)],
            "keras_ssl_tensorflow_default": [*throughput, "--jit", "0", *common, "--width", str(args.simclr_width)],
            "lightly_step_only": [
                LIGHTLY_PYTHON,
                os.path.join(HERE, "lightly_throughput.py"),
                "--modes",
                "step",
                "--threads",
                str(args.threads),
                *common,
                "--output",
                os.path.join(tempfile.mkdtemp(), "lightly_step.json"),
            ],
        }
        if args.simclr_width != 1.0:
            raise SystemExit("lightly's ResNet-18 is full width: compare at --simclr-width 1.0")
        summary = run_pair("simclr", configs, args.rounds, "images_per_second")
        reference = summary["lightly_step_only"]
        summary["ratios_vs_lightly_step_only"] = {
            label: summary[label]["median_images_per_second"] / reference["median_images_per_second"]
            for label in ("keras_ssl_tensorflow_xla_on", "keras_ssl_tensorflow_default")
        }
        record("simclr", summary)

    if "masked_lm" in args.only:
        if not os.path.exists(KERAS_HUB_PYTHON):
            subprocess.run(["bash", os.path.join(HERE, "setup_keras_hub_env.sh")], check=True)
        ours = [sys.executable, os.path.abspath(__file__), "--mlm-steps", str(args.mlm_steps)]
        ours += ["--warmup", str(args.warmup), "--child-masked-lm"]
        hub = [KERAS_HUB_PYTHON, os.path.join(HERE, "keras_hub_mlm.py"), "--steps", str(args.mlm_steps)]
        hub += ["--warmup", str(args.warmup), "--jit"]
        configs = {
            "keras_ssl_xla_on": [*ours, "1"],
            "keras_hub_xla_on": [*hub, "1"],
            "keras_ssl_default": [*ours, "0"],
            "keras_hub_default": [*hub, "0"],
        }
        summary = run_pair("masked_lm", configs, args.rounds, "tokens_per_second")
        summary["shape"] = "2 layers, 128 hidden, 2 heads, MLP 512, 8,000 ids, 128 tokens/row, batch 32"
        summary["ratios_keras_ssl_over_keras_hub"] = {
            setting: summary[f"keras_ssl_{setting}"]["median_tokens_per_second"]
            / summary[f"keras_hub_{setting}"]["median_tokens_per_second"]
            for setting in ("xla_on", "default")
        }
        record("masked_lm", summary)

    if "knn" in args.only:
        sys.path.insert(0, ROOT)
        record("knn", knn_pair(args.rounds))
        knn = report["pairs"]["knn"]
        print(
            f"knn        keras_ssl {knn['keras_ssl']['median_seconds']:.2f} s, numpy reference "
            f"{knn['numpy_reference']['median_seconds']:.2f} s, agreement {knn['prediction_agreement']:.4f}"
        )

    print(
        json.dumps(
            {
                k: v.get("ratios_vs_lightly_step_only")
                or v.get("ratios_keras_ssl_over_keras_hub")
                or v.get("keras_ssl_over_reference")
                for k, v in report["pairs"].items()
            },
            indent=2,
        )
    )
    print("wrote", args.output)


if __name__ == "__main__":
    main()
