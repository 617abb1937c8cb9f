"""GPU throughput and MFU of keras_ssl's training steps (JAX) beside lightly's SimCLR step (PyTorch), in one call.

On the GPU machine (JAX and PyTorch there, no TensorFlow; the wheels and the CIFAR-10 subset come from
`bash bench/gpu_carry.sh`, which prints the one command to run there)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site bench/gpu_carry/*.whl \\
      && PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax python3 bench/gpu.py \\
         --data bench/gpu_carry/cifar10_subset.npz --out $OUT

On a CPU, as a smoke run of every measurement with tiny sizes (well under a minute; tests/test_bench_gpu.py)::

    KERAS_BACKEND=jax python bench/gpu.py --tiny --out /tmp/gpu_tiny

Measurements, in this order (each guarded: it gets the smaller of its own cap and what is left of `--budget`,
450 s by default, so the whole call stays under 8 minutes; the JSON is rewritten after each one, so a timeout
keeps what was measured):

- `simclr`: SimCLR, ResNet-18 (CIFAR stem), 32x32 CIFAR-10 images, batch 512, two views augmented on the device;
- `lightly_simclr`: lightly's SimCLR step on the same GPU (torchvision ResNet-18 with the CIFAR stem,
  `SimCLRProjectionHead(512, 512, 128)`, `NTXentLoss(0.5)`, SGD), views prepared in advance by lightly's
  `SimCLRTransform`, AMP bf16 autocast, channels_last; eager and `torch.compile`, the faster one counts;
- `masked_lm`: MaskedLM on a BERT-small shape (512 dims, 4 layers, 8 heads, 30,522 ids, 128 tokens/row, batch 256);
- `mae`: MAE with a ViT-tiny (192 dims, 12 blocks, 3 heads, 4x4 patches) on 32x32 images, batch 512;
- `byol`: BYOL, ResNet-18 (CIFAR stem), batch 512.

keras_ssl's steps run under `mixed_bfloat16` with XLA (`jax.jit`): the method's own JAX train step
(`Method.train_step`, what `fit` runs) is scanned over `--steps-per-execution` batches that were placed on the
device once, so one call of the compiled program runs that many steps with no host work between them.
Images/s count source images (not views); tokens/s count every token of the batch.

MFU = FLOPs per step / seconds per step / peak. FLOPs per step come from XLA's cost analysis of the
one-step program (`jax.jit(train_step).lower(state, batch).cost_analysis()["flops"]`, the HLO before
optimisation, so convolutions and matrix products are counted as such; a multiply-add counts 2). lightly's step
has no XLA program: its MFU uses the FLOPs of keras_ssl's SimCLR step (the same network, views and head; the
count includes keras_ssl's on-device augmentation, a negligible share) and the analytic 6.7 GFLOP/image is stored
beside it. The peak is 790 TFLOP/s, the dense bf16 matrix-product rate measured on this workplace's H200
(/work/.library/device/KINDS.md: 769-798 TFLOP/s on an 8192^3 product; the datasheet says about 990).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10", "cifar10.npz")
PEAK_TFLOPS = 790.0
ANALYTIC_SIMCLR_GFLOP_PER_IMAGE = 6.7  # ResNet-18 CIFAR: 2 views x (forward 1.11 + backward 2.2)
ORDER = ("simclr", "lightly_simclr", "masked_lm", "mae", "byol")
# Seconds each measurement may take at most on the GPU (start, compile, timing); the budget caps them all.
CAPS = {"simclr": 120, "lightly_simclr": 130, "masked_lm": 80, "mae": 90, "byol": 110}

FULL = {
    "simclr": {"batch": 512},
    "byol": {"batch": 512},
    "mae": {"batch": 512},
    "masked_lm": {"batch": 256, "length": 128, "vocabulary": 30522, "size": "small"},
    "lightly_simclr": {"batch": 512},
}
TINY = {
    "simclr": {"batch": 8, "width": 0.125},
    "byol": {"batch": 8, "width": 0.125},
    "mae": {"batch": 8, "dim": 32, "depth": 1, "heads": 2, "patch": 8},
    "masked_lm": {"batch": 4, "length": 16, "vocabulary": 200, "size": "tiny", "dim": 32, "depth": 1},
    "lightly_simclr": {"batch": 8},
}


def load_images(path, count):
    import numpy as np

    with np.load(path) as data:
        images = data["x_train"]
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"{path}: expected uint8 x_train of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
    if len(images) < count:
        # A small subset is reused; the timing does not depend on which images they are.
        images = np.concatenate([images] * (count // len(images) + 1))
    return np.ascontiguousarray(images[:count])


# --- keras_ssl (JAX) -------------------------------------------------------------------------------------------


def build_keras(name, size, data_path, steps_per_execution):
    """(method, data of steps_per_execution batches, input shape, items per step, unit)."""
    import keras
    import numpy as np

    from keras_ssl import backbones, methods

    keras.utils.set_random_seed(0)
    batch = size["batch"]
    count = batch * steps_per_execution
    if name in ("simclr", "byol"):
        encoder = backbones.ResNet18(stem="cifar", width=size.get("width", 1.0), input_shape=(32, 32, 3))
        method = methods.SimCLR(encoder) if name == "simclr" else methods.BYOL(encoder)
        data = load_images(data_path, count).reshape(steps_per_execution, batch, 32, 32, 3)
        return method, data, (None, 32, 32, 3), batch, "images"
    if name == "mae":
        encoder = backbones.ViT(
            "tiny",
            image_size=32,
            patch_size=size.get("patch", 4),
            dim=size.get("dim"),
            depth=size.get("depth"),
            num_heads=size.get("heads"),
        )
        method = methods.MAE(encoder)
        data = load_images(data_path, count).reshape(steps_per_execution, batch, 32, 32, 3)
        return method, data, (None, 32, 32, 3), batch, "images"
    if name == "masked_lm":
        length, vocabulary = size["length"], size["vocabulary"]
        encoder = backbones.TransformerEncoder(
            vocabulary, size["size"], max_length=length, dim=size.get("dim"), depth=size.get("depth")
        )
        method = methods.MaskedLM(encoder, seed=0)
        rng = np.random.default_rng(0)
        data = rng.integers(5, vocabulary, size=(steps_per_execution, batch, length)).astype("int32")
        data[..., 0] = 2  # [CLS]
        return method, data, (None, length), batch * length, "tokens"
    raise ValueError(f"unknown measurement {name!r}")


def flops_of(jitted, *args):
    """(flops, source) of one call of `jitted`, from XLA's cost analysis."""
    lowered = jitted.lower(*args)
    for source, get in (
        ("lowered", lambda: lowered.cost_analysis()),
        ("compiled", lambda: lowered.compile().cost_analysis()),
    ):
        try:
            analysis = get()
        except Exception:  # noqa: BLE001 - some backends implement only one of the two
            continue
        if isinstance(analysis, (list, tuple)):
            analysis = analysis[0] if analysis else {}
        flops = float((analysis or {}).get("flops", 0.0))
        if flops > 0:
            return flops, f"xla_cost_analysis_{source}"
    raise RuntimeError("XLA's cost analysis gave no FLOP count for the step")


def measure_keras(name, size, args):
    import jax
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"bench/gpu.py measures keras_ssl under JAX; KERAS_BACKEND is {keras.backend.backend()!r}")
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        k = args.steps_per_execution
        method, data, input_shape, items, unit = build_keras(name, size, args.data, k)
        method.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=True, steps_per_execution=k)
        # What fit does before its first step: build, size the schedules, build the optimizer.
        method.build(input_shape)
        method._plan(10_000, 1, 0)
        method.optimizer.build(method.trainable_variables)
        state = method._get_jax_state(
            trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
        )
        data = jax.device_put(data)  # once: every step reads its batch from the device
        flops, flops_source = flops_of(jax.jit(method.train_step), state, data[0])

        def steps(state, data):
            def body(state, batch):
                logs, state = method.train_step(state, batch)
                return state, logs["loss"]

            return jax.lax.scan(body, state, data)

        run = jax.jit(steps, donate_argnums=0)
        start = time.perf_counter()
        state, losses = run(state, data)
        losses.block_until_ready()
        compile_seconds = time.perf_counter() - start
        times = []
        timing_start = time.perf_counter()
        while len(times) < args.min_calls or (
            time.perf_counter() - timing_start < args.seconds and len(times) < args.max_calls
        ):
            start = time.perf_counter()
            state, losses = run(state, data)
            losses.block_until_ready()
            times.append(time.perf_counter() - start)
        losses = np.asarray(losses, "float32")
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"{name}: non-finite loss {losses}")
        seconds_per_step = statistics.median(times) / k
        return {
            "status": "ok",
            f"{unit}_per_second": items / seconds_per_step,
            "mfu": flops / seconds_per_step / (args.peak_tflops * 1e12),
            "seconds_per_step": seconds_per_step,
            "flops_per_step": flops,
            "flops_source": flops_source,
            "batch_size": size["batch"],
            f"{unit}_per_step": items,
            "steps_per_execution": k,
            "timed_calls": len(times),
            "compile_seconds": compile_seconds,
            "last_loss": float(losses[-1]),
            "sizes": size,
            "dtype_policy": "mixed_bfloat16",
        }
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# --- lightly (PyTorch) ----------------------------------------------------------------------------------------


def measure_lightly(size, args, simclr_flops_per_image=None):
    try:
        import torch

        sys.path.insert(0, HERE)
        import lightly
        from lightly_throughput import build_training, cifar_transform, collate_views
        from PIL import Image
    except ImportError as error:
        return {"status": "skipped", "reason": f"lightly or its dependencies are not importable here: {error}"}
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    batch = size["batch"]
    transform = cifar_transform()
    x0, x1 = collate_views([transform(Image.fromarray(image)) for image in load_images(args.data, batch)])
    x0 = x0.to(device).contiguous(memory_format=torch.channels_last)
    x1 = x1.to(device).contiguous(memory_format=torch.channels_last)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def timed(compiled):
        model, criterion, optimizer = build_training(0)
        model = model.to(device).to(memory_format=torch.channels_last)
        forward = torch.compile(model) if compiled else model

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                z0, z1 = forward(x0), forward(x1)
            loss = criterion(z0.float(), z1.float())
            loss.backward()
            optimizer.step()
            return loss

        def sync():
            if cuda:
                torch.cuda.synchronize()

        start = time.perf_counter()
        for _ in range(args.warmup_steps):
            step()
        sync()
        warmup = time.perf_counter() - start
        times, deadline = [], time.perf_counter() + args.seconds
        while len(times) < args.min_calls or (time.perf_counter() < deadline and len(times) < args.max_calls):
            start = time.perf_counter()
            for _ in range(args.steps_per_execution):
                loss = step()
            sync()
            times.append((time.perf_counter() - start) / args.steps_per_execution)
        loss = float(loss.detach())
        if loss != loss:
            raise FloatingPointError(f"lightly: non-finite loss {loss}")
        seconds = statistics.median(times)
        return {
            "images_per_second": batch / seconds,
            "seconds_per_step": seconds,
            "warmup_seconds": warmup,
            "timed_calls": len(times),
            "last_loss": loss,
        }

    def summary(modes):
        best = max((m for m in modes.values() if "images_per_second" in m), key=lambda m: m["images_per_second"])
        flops_per_image = simclr_flops_per_image or ANALYTIC_SIMCLR_GFLOP_PER_IMAGE * 1e9
        return {
            "status": "ok",
            "images_per_second": best["images_per_second"],
            "mfu": best["images_per_second"] * flops_per_image / (args.peak_tflops * 1e12),
            "flops_per_image": flops_per_image,
            "flops_source": "keras_ssl SimCLR step (xla_cost_analysis)" if simclr_flops_per_image else "analytic",
            "analytic_gflop_per_image": ANALYTIC_SIMCLR_GFLOP_PER_IMAGE,
            "best_mode": next(name for name, m in modes.items() if m is best),
            "modes": modes,
            "batch_size": batch,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "amp": "bfloat16 autocast",
            "memory_format": "channels_last",
            "torch_version": torch.__version__,
            "lightly_version": lightly.__version__,
        }

    modes = {"eager": timed(False)}
    if cuda or not args.tiny:  # torch.compile on a CPU smoke run costs more than the run itself
        if args.partial:  # what the parent keeps if compiling outlasts this measurement's share of the budget
            with open(args.partial, "w") as f:
                json.dump(summary({**modes, "compiled": {"error": "torch.compile did not finish in time"}}), f)
        try:
            modes["compiled"] = timed(True)
        except Exception as error:  # noqa: BLE001 - recorded; the eager number stands
            modes["compiled"] = {"error": f"{type(error).__name__}: {error}"[:2000]}
    return summary(modes)


# --- the driver -----------------------------------------------------------------------------------------------


def measure_one(name, args, simclr_flops_per_image=None):
    size = (TINY if args.tiny else FULL)[name]
    if name == "lightly_simclr":
        return measure_lightly(size, args, simclr_flops_per_image)
    return measure_keras(name, size, args)


def describe_device():
    """The device and the versions in use (in a child on the GPU, so the parent holds no GPU memory)."""
    import jax
    import keras

    sys.path.insert(0, HERE)
    from device import describe

    return {
        "device": describe(keras.backend.backend()),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "jax_version": jax.__version__,
    }


def slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def run_child(name, args, timeout, simclr_flops_per_image):
    partial = os.path.join(tempfile.mkdtemp(), f"{name}.json")
    command = [sys.executable, os.path.abspath(__file__), "--one", name, "--partial", partial, *child_flags(args)]
    if simclr_flops_per_image:
        command += ["--simclr-flops-per-image", repr(simclr_flops_per_image)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        tail = (error.stderr or b"")[-1500:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        reason = f"stopped after its {timeout:.0f} s share of the budget"
        if os.path.exists(partial):  # lightly's eager number, measured before torch.compile ran out of time
            with open(partial) as f:
                return {**json.load(f), "note": reason + " while compiling", "log": tail}
        return {"status": "timeout", "reason": reason, "log": tail}
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        return {"status": "failed", "reason": f"exit code {out.returncode}", "log": out.stderr[-3000:]}
    return json.loads(lines[-1])


def child_flags(args):
    flags = ["--data", args.data, "--peak-tflops", str(args.peak_tflops), "--seconds", str(args.seconds)]
    flags += ["--steps-per-execution", str(args.steps_per_execution), "--min-calls", str(args.min_calls)]
    flags += ["--max-calls", str(args.max_calls), "--warmup-steps", str(args.warmup_steps)]
    return flags + (["--tiny"] if args.tiny else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, in-process: a CPU smoke run")
    parser.add_argument("--isolate", action="store_true", help="with --tiny: one process per measurement, as on GPUs")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for gpu_<device>.json")
    parser.add_argument("--data", default=DEFAULT_DATA, help="a .npz with uint8 x_train (N, 32, 32, 3)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole call")
    parser.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS)
    parser.add_argument("--steps-per-execution", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="timing seconds per measurement")
    parser.add_argument("--min-calls", type=int, default=3)
    parser.add_argument("--max-calls", type=int, default=50)
    parser.add_argument("--warmup-steps", type=int, default=None, help="lightly's untimed steps")
    parser.add_argument("--one", choices=(*ORDER, "device"), help=argparse.SUPPRESS)
    parser.add_argument("--simclr-flops-per-image", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--partial", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps_per_execution is None:
        args.steps_per_execution = 2 if args.tiny else 10
    if args.seconds is None:
        args.seconds = 0.0 if args.tiny else 8.0
    if args.warmup_steps is None:
        args.warmup_steps = 1 if args.tiny else 5
    if args.tiny:
        args.min_calls = min(args.min_calls, 2)
    if not os.path.exists(args.data):
        raise SystemExit(f"No CIFAR-10 .npz at {args.data}: pass --data (bench/gpu_carry.sh writes a subset).")
    sys.path.insert(0, ROOT)

    if args.one:  # a child: one measurement, its JSON as the last line
        try:
            if args.one == "device":
                result = describe_device()
            else:
                result = measure_one(args.one, args, args.simclr_flops_per_image)
        except Exception as error:  # noqa: BLE001 - the parent records the failure and goes on
            result = {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:3000]}
            traceback.print_exc()
        print(json.dumps(result))
        return

    began = time.perf_counter()
    in_process = args.tiny and not args.isolate
    about = describe_device() if in_process else run_child("device", args, 120, None)
    if "device" not in about:
        raise SystemExit(f"could not start JAX and Keras: {about}")
    device = about["device"]
    report = {
        "command": " ".join(["python", os.path.relpath(os.path.abspath(__file__), ROOT), *sys.argv[1:]]),
        **about,
        "tiny": args.tiny,
        "python": platform.python_version(),
        "peak_tflops": args.peak_tflops,
        "peak_source": "H200 dense bf16 matrix product as measured here (KINDS.md: 769-798 TFLOP/s)",
        "budget_seconds": args.budget,
        "measurements": {},
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"gpu_{slug(device)}.json")

    def write():
        report["elapsed_seconds"] = time.perf_counter() - began
        simclr, lightly = report["measurements"].get("simclr", {}), report["measurements"].get("lightly_simclr", {})
        if simclr.get("status") == "ok" and lightly.get("status") == "ok":
            report["simclr_keras_ssl_over_lightly"] = simclr["images_per_second"] / lightly["images_per_second"]
        with open(path + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(path + ".tmp", path)

    write()
    for name in [n for n in ORDER if n in args.only]:
        left = args.budget - (time.perf_counter() - began)
        simclr = report["measurements"].get("simclr", {})
        flops_per_image = simclr["flops_per_step"] / simclr["batch_size"] if simclr.get("status") == "ok" else None
        if in_process:  # so the smoke run stays short; the budget is checked between measurements
            if left <= 0:
                result = {"status": "timeout", "reason": "the budget was spent before it started"}
            else:
                try:
                    result = measure_one(name, args, flops_per_image)
                except Exception as error:  # noqa: BLE001
                    traceback.print_exc()
                    result = {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:3000]}
        elif left < 20:
            result = {"status": "timeout", "reason": f"only {left:.0f} s of the budget left"}
        else:
            result = run_child(name, args, min(CAPS[name], left), flops_per_image)
        report["measurements"][name] = result
        write()
        rate = result.get("images_per_second") or result.get("tokens_per_second")
        summary = f"{rate:12.1f} {'tokens' if 'tokens_per_second' in result else 'images'}/s" if rate else ""
        mfu = f"  MFU {100 * result['mfu']:.1f}%" if "mfu" in result else ""
        print(f"{name:15s} {result['status']:8s}{summary}{mfu}  {result.get('reason', '')}", flush=True)
    if "simclr_keras_ssl_over_lightly" in report:
        print(f"SimCLR keras_ssl / lightly: {report['simclr_keras_ssl_over_lightly']:.2f}")
    print("wrote", path)
    failed = [n for n, r in report["measurements"].items() if r["status"] not in ("ok", "skipped")]
    skipped_on_gpu = not args.tiny and report["measurements"].get("lightly_simclr", {}).get("status") == "skipped"
    if failed or skipped_on_gpu:
        raise SystemExit(f"not measured: {', '.join(failed) or 'lightly_simclr (skipped)'}")


if __name__ == "__main__":
    main()
