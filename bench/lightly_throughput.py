"""CPU throughput of one SimCLR training step with lightly + PyTorch.

Reference point for the keras_ssl benchmarks. Runs inside the separate
environment made by ``bench/setup_lightly_env.sh``::

    bash bench/setup_lightly_env.sh
    bench/.venv-lightly/bin/python bench/lightly_throughput.py \
        --output /tmp/lightly_cpu.json

Recipe (standard CIFAR-10 SimCLR):

* backbone: torchvision ResNet-18 with the CIFAR stem (3x3/1 conv, no
  max-pool), classifier removed, 512-d features;
* head: ``SimCLRProjectionHead(512, 512, 128)``;
* loss: ``NTXentLoss(temperature=0.5)``;
* optimizer: SGD(lr=0.06, momentum=0.9, weight_decay=5e-4).

Two modes are timed in one run:

``step``
    Both augmented views are prepared once as float tensors; only
    forward + backward + optimizer update is timed.
``end_to_end``
    ``SimCLRTransform(input_size=32, gaussian_blur=0.0)`` is applied per
    image through a ``torch.utils.data.DataLoader``; the whole loop
    (augmentation, collation, training step) is timed.
``encoder`` (only when asked for)
    The backbone's forward and backward passes alone on the prepared
    views, for bench/simclr_profile.py's split of the step.

Throughput counts each source image once per step (``batch_size`` images
per step), not once per view.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import lightly
import numpy as np
import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (REPO_ROOT / ".." / "shared" / "data" / "cifar10" / "cifar10.npz").resolve()


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------
def cifar_resnet18() -> nn.Module:
    """torchvision ResNet-18 adapted to 32x32 inputs; returns 512-d features."""
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


class SimCLR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = cifar_resnet18()
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))


def build_training(seed: int):
    torch.manual_seed(seed)
    model = SimCLR()
    model.train()
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    return model, criterion, optimizer


def train_step(model, criterion, optimizer, x0, x1) -> float:
    optimizer.zero_grad(set_to_none=True)
    z0 = model(x0)
    z1 = model(x1)
    loss = criterion(z0, z1)
    loss.backward()
    optimizer.step()
    return loss.item()  # forces completion of the step before the clock stops


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
class UInt8ImageDataset(Dataset):
    """Wraps an (N, H, W, 3) uint8 array; yields the transform's output."""

    def __init__(self, images: np.ndarray, transform) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.images[index]))


def collate_views(batch):
    """List of [view0, view1] pairs -> (stacked view0, stacked view1)."""
    view0 = torch.stack([item[0] for item in batch])
    view1 = torch.stack([item[1] for item in batch])
    return view0, view1


def load_images(path: Path, count: int) -> np.ndarray:
    with np.load(path) as data:
        x = data["x_train"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"unexpected x_train: dtype={x.dtype} shape={x.shape}")
    if count > len(x):
        raise ValueError(f"need {count} images but {path} has only {len(x)}")
    return np.ascontiguousarray(x[:count])


def cifar_transform() -> SimCLRTransform:
    return SimCLRTransform(input_size=32, gaussian_blur=0.0)


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------
def summarize(step_times: list[float], batch_size: int, warmup: int, cpu_seconds: float, threads: int) -> dict:
    total = sum(step_times)
    return {
        "images_per_second": batch_size * len(step_times) / total,
        "seconds_per_step": total / len(step_times),
        "median_seconds_per_step": statistics.median(step_times),
        "steps": len(step_times),
        "warmup_steps": warmup,
        "step_seconds": step_times,
        # CPU time of this process over the timed steps. cpu_utilization well
        # below 1.0 means the cores were shared with something else (or the
        # loop was waiting on DataLoader workers) and the timing is suspect.
        "cpu_seconds": cpu_seconds,
        "cpu_utilization": cpu_seconds / (total * threads),
        # Rough estimate of images/s had the process owned `threads` cores:
        # images per CPU-second of this process times `threads`.
        "images_per_second_cpu_normalized": (
            batch_size * len(step_times) * threads / cpu_seconds if cpu_seconds > 0 else None
        ),
    }


def prepared_views(images: np.ndarray, args):
    """Both views of the first batch, augmented once by lightly's transform, as contiguous float tensors."""
    transform = cifar_transform()
    pairs = [transform(Image.fromarray(img)) for img in images[: args.batch_size]]
    x0, x1 = collate_views(pairs)
    return x0.contiguous(), x1.contiguous()


def timed_calls(fn, args) -> dict:
    """`args.warmup` untimed calls of `fn`, then `args.steps` timed ones, summarised with this process's CPU time."""
    for _ in range(args.warmup):
        fn()
    times = []
    cpu_start = time.process_time()
    for _ in range(args.steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    return summarize(times, args.batch_size, args.warmup, cpu, args.threads)


def bench_step(images: np.ndarray, args) -> dict:
    """Time forward+backward+update on fixed, pre-augmented float views."""
    x0, x1 = prepared_views(images, args)
    model, criterion, optimizer = build_training(args.seed)
    return timed_calls(lambda: train_step(model, criterion, optimizer, x0, x1), args)


def bench_encoder(images: np.ndarray, args) -> dict:
    """Time the backbone's forward and backward passes alone (one pass per view, as in the step), no head or update:
    the counterpart of the `encoder 2 passes` part of bench/simclr_profile.py."""
    x0, x1 = prepared_views(images, args)
    model, _, _ = build_training(args.seed)

    def passes():
        model.zero_grad(set_to_none=True)
        loss = model.backbone(x0).square().mean() + model.backbone(x1).square().mean()
        loss.backward()
        return loss.item()  # forces completion before the clock stops

    return timed_calls(passes, args)


def bench_end_to_end(images: np.ndarray, args) -> dict:
    """Time the full loop: per-image augmentation via DataLoader + step."""
    total_steps = args.warmup + args.steps
    dataset = UInt8ImageDataset(images[: args.batch_size * total_steps], cifar_transform())
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=args.num_workers,
        collate_fn=collate_views,
        persistent_workers=False,
    )
    model, criterion, optimizer = build_training(args.seed)

    # Worker start-up (if any) happens while creating the iterator and during
    # the warm-up steps, which are not timed.
    iterator = iter(loader)
    for _ in range(args.warmup):
        x0, x1 = next(iterator)
        train_step(model, criterion, optimizer, x0, x1)

    times = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    for _ in range(args.steps):
        x0, x1 = next(iterator)
        train_step(model, criterion, optimizer, x0, x1)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    cpu = time.process_time() - cpu_start
    del iterator
    result = summarize(times, args.batch_size, args.warmup, cpu, args.threads)
    result["num_workers"] = args.num_workers
    return result


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"CIFAR-10 npz with x_train (default: {DEFAULT_DATA})"
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers for end_to_end mode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", nargs="+", choices=["step", "end_to_end", "encoder"], default=["step", "end_to_end"])
    p.add_argument("--output", type=Path, default=None, help="write results JSON here")
    args = p.parse_args(argv)
    if args.batch_size < 2 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("need --batch-size >= 2, --steps >= 1, --warmup >= 0, --threads >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    needed = args.batch_size * (args.warmup + args.steps)
    images = load_images(args.data, max(needed, args.batch_size))

    result = {
        "library": "lightly",
        "lightly_version": lightly.__version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "python_version": platform.python_version(),
        "device": "cpu",
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "num_workers": args.num_workers,
        "data": str(args.data),
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
    }
    runners = {"step": bench_step, "end_to_end": bench_end_to_end, "encoder": bench_encoder}
    for mode in args.modes:
        print(f"[lightly] running {mode} ...", file=sys.stderr, flush=True)
        result[mode] = runners[mode](images, args)

    print(
        f"lightly {result['lightly_version']} / torch {result['torch_version']} "
        f"on cpu, batch {args.batch_size}, threads {result['threads']}, "
        f"num_workers {args.num_workers}"
    )
    for mode in args.modes:
        r = result[mode]
        print(
            f"  {mode:<11} {r['images_per_second']:8.1f} images/s  "
            f"{r['seconds_per_step']:7.3f} s/step (median {r['median_seconds_per_step']:.3f})  "
            f"over {r['steps']} steps, cpu util {r['cpu_utilization']:.2f}"
        )

    result["load_average_after"] = os.getloadavg()[0]
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
