"""Helpers shared by the test-suite (and by users testing their own methods)."""

import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("KERAS_SSL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


# Constructor arguments that make each method's heads tiny, so one step costs seconds. One table for the
# registry tests, the distributed harness and the ecosystem-backbone tests; a method whose constructor needs more
# than an encoder gets its entry here.
TINY_METHOD_KWARGS = {
    "simclr": {"projection_dim": 8, "hidden_dim": 16},
    "moco": {"projection_dim": 8, "hidden_dim": 16, "queue_size": 32},
    "byol": {"projection_dim": 8, "hidden_dim": 16},
    "simsiam": {"projection_dim": 8},
    "barlow_twins": {"projection_dim": 8, "hidden_dim": 16},
    "vicreg": {"projection_dim": 8, "hidden_dim": 16},
    "dino": {"num_prototypes": 16, "hidden_dim": 16, "bottleneck_dim": 8},
    "deepcluster": {"num_clusters": 4, "pca_dim": 4},
    "vae": {"latent_dim": 4},
    "mae": {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
}


def shared_data_file(relative_path):
    """Path of a file in ../shared/data; skips the test when absent, fails under CI."""
    import pytest

    path = SHARED_DATA / relative_path
    if not path.exists():
        message = f"shared data file is missing: {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


_cifar_cache = {}


def cifar10_sample(num_train=32, num_test=16):
    """Small disjoint slices of real CIFAR-10 images (uint8 NHWC) and labels.

    Both come from the 10,000-image test split, which decompresses ~5x faster
    than the training split; tests only need real pixels, not the split.
    """
    if num_train + num_test > 10000:
        raise ValueError(f"At most 10000 images in all. Received: {num_train} + {num_test}")
    if "arrays" not in _cifar_cache:
        with np.load(shared_data_file("cifar10/cifar10.npz")) as d:
            _cifar_cache["arrays"] = (d["x_test"], d["y_test"])
    x, y = _cifar_cache["arrays"]
    end = num_train + num_test
    return (x[:num_train], y[:num_train]), (x[num_train:end], y[num_train:end])


def weights_snapshot(model):
    return [np.array(v) for v in model.weights]


def weights_changed(before, model):
    """True when at least one trainable weight differs from the snapshot."""
    trainable = {id(v) for v in model.trainable_weights}
    return any(id(v) in trainable and not np.allclose(b, np.array(v)) for b, v in zip(before, model.weights))


def tensorboard_tags(log_dir):
    """The scalar tags in the TensorBoard event files under `log_dir` (Keras writes them as tensors)."""
    from tensorboard.backend.event_processing import event_accumulator

    tags = set()
    for events in Path(log_dir).rglob("events.out.tfevents.*"):
        accumulator = event_accumulator.EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["scalars"])
    return tags
