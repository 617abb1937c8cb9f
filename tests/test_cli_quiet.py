"""The CLI's quiet mode drops TensorFlow's start-up banners and retracing warnings, and nothing else."""

import logging
import os
import subprocess
import sys

import pytest

from keras_ssl.cli import quiet
from keras_ssl.testing import REPO_ROOT

# What `import tensorflow` printed (twice) on TensorFlow 2.21 before the CLI filtered it.
BANNER = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796314146.662879   32260 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. To turn "
    "them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
    "I0000 00:00:1796314146.663398   32260 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.\n"
)
OTHERS = (
    "E0000 00:00:1796314413.528240    2732 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
    "W0000 00:00:1796314146.663398   32260 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
    "Traceback (most recent call last):\n"
)


def test_only_the_known_banner_lines_are_dropped():
    assert quiet.without_banners(BANNER + OTHERS + BANNER) == OTHERS
    assert quiet.without_banners("") == ""


def test_the_filter_writes_back_everything_else_written_to_fd_2(capfd):
    with quiet.banners_filtered():
        os.write(2, (BANNER + "a real error\n").encode())
        print("python's own warning", file=sys.stderr)
    assert capfd.readouterr().err == "python's own warning\na real error\n"


@pytest.mark.any_backend  # imports TensorFlow in a subprocess whatever the suite's backend
def test_importing_tensorflow_under_quiet_prints_no_banner():
    code = "from keras_ssl.cli.quiet import quiet\nwith quiet():\n    import tensorflow\nprint('imported')\n"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_SSL_DEBUG")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]
    for text in ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers"):
        assert text not in result.stderr, result.stderr[-2000:]


def test_retracing_warnings_are_dropped_other_tensorflow_warnings_kept(caplog):
    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"), quiet.quiet():
        logger.warning("5 out of the last 5 calls to <function f> triggered tf.function retracing. Tracing is ...")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_verbose_and_debug_turn_it_off(monkeypatch):
    monkeypatch.delenv("KERAS_SSL_DEBUG", raising=False)
    assert not quiet.verbose_requested(False) and quiet.verbose_requested(True)
    monkeypatch.setenv("KERAS_SSL_DEBUG", "1")
    assert quiet.verbose_requested(False)
    before = list(sys.meta_path)
    with quiet.quiet(verbose=True):
        assert sys.meta_path == before
