"""bench/gpu.py --tiny: every GPU measurement runs end to end on a CPU and records positive numbers."""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_ssl.testing import shared_data_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS_MEASUREMENTS = {"simclr": "images", "byol": "images", "mae": "images", "masked_lm": "tokens"}


@pytest.mark.large
def test_the_tiny_gpu_benchmark_records_every_measurement(tmp_path):
    if keras.backend.backend() != "jax":
        pytest.skip("bench/gpu.py measures under JAX; it runs once, in the JAX suite")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, os.path.join(ROOT, "bench", "gpu.py"), "--tiny", "--out", str(tmp_path)]
    out = subprocess.run(
        [*command, "--data", str(shared_data_file("cifar10/cifar10.npz"))], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    (path,) = tmp_path.glob("gpu_*.json")
    report = json.loads(path.read_text())
    assert report["tiny"] is True and report["backend"] == "jax" and report["peak_tflops"] == 790.0
    assert report["command"].startswith("python bench/gpu.py --tiny")
    for name, unit in KERAS_MEASUREMENTS.items():
        result = report["measurements"][name]
        assert result["status"] == "ok", (name, result)
        for field in (f"{unit}_per_second", "mfu", "seconds_per_step", "flops_per_step", "compile_seconds"):
            assert result[field] > 0, (name, field, result[field])
        assert result["flops_source"].startswith("xla_cost_analysis")
        assert result["steps_per_execution"] == 2 and result["dtype_policy"] == "mixed_bfloat16"
    lightly = report["measurements"]["lightly_simclr"]
    try:
        import lightly as _  # noqa: F401
        import torchvision as _  # noqa: F401, F811

        importable = True
    except ImportError:
        importable = False
    if importable:
        assert lightly["status"] == "ok", lightly
        assert lightly["images_per_second"] > 0 and lightly["mfu"] > 0
        assert report["simclr_keras_ssl_over_lightly"] > 0
    else:
        assert lightly["status"] == "skipped" and "not importable" in lightly["reason"]
