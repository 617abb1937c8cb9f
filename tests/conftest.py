import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests check behaviour, not speed: XLA's CPU optimisation passes cost far more than the tiny graphs they run
# (JAX compiles ~10x faster without them), and its older loop emitters compile faster than the fusion emitters
# (measured: an eager JAX op 18 -> 10 ms to compile, a tiny BYOL fit 10.8 -> 7.0 s, a ResNet-50 call 5.1 -> 3.4 s).
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false",
)
# JAX compiles each new model's step again although the tests build the same tiny models over and over; its
# persistent cache (keyed by the compiled program, the JAX version and the flags) returns those programs instead:
# about 5 s -> 2 s for a repeated tiny SimCLR fit. Shared by the suite's processes and kept between runs.
_JAX_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax-tests")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "large: slow test, run by `make test-large` only")
    config.addinivalue_line("markers", "savedmodel: writes a TensorFlow SavedModel (keras_ssl.export); not under torch")
    config.addinivalue_line(
        "markers",
        "any_backend: depends on no backend (a doc example, files and cards, a subprocess that picks its own); the "
        "default suite runs it under TensorFlow, the large suite under JAX",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m "not large"` deselects
def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    for item in items:
        if backend != "tensorflow" and "any_backend" in item.keywords:
            item.add_marker(pytest.mark.large)
        # Keras writes SavedModels from torch only through torch_xla, so keras_ssl.export refuses to (see bundle.py).
        if backend == "torch" and "savedmodel" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="keras_ssl.export writes no SavedModel under KERAS_BACKEND=torch"))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    # Without free_memory=False, clear_session runs gc.collect(), which walks every object TensorFlow/JAX
    # keep alive: ~2.5 s a test late in the suite, more than half of the TensorFlow suite's time.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def backend():
    return keras.backend.backend()
