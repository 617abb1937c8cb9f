"""What a benchmark ran on, for its result file."""

import os
import platform


def describe(backend):
    """'NVIDIA H100 80GB HBM3 (jax)'-style name of the accelerator in use, else the CPU."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.device_kind} ({device.platform}, JAX)"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            return f"{name} (TensorFlow)"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
