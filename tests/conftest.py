import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests check behaviour, not speed: XLA's CPU optimisation passes cost far more
# than the tiny graphs they run (JAX compiles ~10x faster without them).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "large: slow test, run by `make test-large` only")
    config.addinivalue_line("markers", "savedmodel: writes a TensorFlow SavedModel (keras_ssl.export); not under torch")


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() != "torch":
        return
    # Keras writes SavedModels from torch only through torch_xla, so keras_ssl.export refuses to (see bundle.py).
    skip = pytest.mark.skip(reason="keras_ssl.export writes no SavedModel under KERAS_BACKEND=torch")
    for item in items:
        if "savedmodel" in item.keywords:
            item.add_marker(skip)


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
