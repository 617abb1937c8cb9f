"""What the `keras-ssl` command keeps off the terminal by default, and why.

Importing TensorFlow 2.21 prints, on every run, even with TF_CPP_MIN_LOG_LEVEL=3:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

twice. They are absl INFO logs written by static initialisers of TensorFlow's shared libraries, before absl's
logging is initialised, so no environment variable reaches them (TF_CPP_MIN_LOG_LEVEL is read later; absl has
no run-time level variable). The first copy comes from the core library, loaded by
`tensorflow.python.platform._pywrap_cpu_feature_guard`; the second from `_pywrap_profiler_plugin`, which
links its own copy of absl and TensorFlow's logging. TensorFlow is imported by Keras (TensorFlow backend)
and, under JAX, by tf.data inputs, TensorBoard and the SavedModel export, so the banners appeared under
both backends.

`quiet()` therefore:

- sets TF_CPP_MIN_LOG_LEVEL=3 unless it is set already (TensorFlow's C++ INFO, WARNING and ERROR logs after
  start-up, such as "failed call to cuInit" on a machine without a GPU; real failures still reach Python as
  exceptions, which the command prints);
- sends file descriptor 2 to a temporary file while `tensorflow` is imported, wherever that import happens
  (an import hook), then writes back every line except the known banners above, so anything else TensorFlow
  prints at import (an error, a warning) still shows;
- drops TensorFlow's "triggered tf.function retracing" warning (feature extraction traces once more for a
  shorter last batch; it is expected and harmless here).

`keras-ssl --verbose ...` or KERAS_SSL_DEBUG=1 turns all of this off.
"""

import contextlib
import os
import re
import sys

# logging and tempfile are imported where they are used: `keras-ssl --help` should not pay for them.

# Only these lines are dropped: exact messages, INFO level ("I" + date) only.
BANNERS = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"),
    re.compile(r"^I\d{4} [^\]]*port\.cc:\d+\] oneDNN custom operations are on\."),
    re.compile(r"^I\d{4} [^\]]*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"),
    re.compile(r"^I\d{4} [^\]]*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"),
    re.compile(r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"),
)
RETRACING = "triggered tf.function retracing"
QUIET_IMPORTS = ("tensorflow",)


def is_banner(line):
    """True for one of the known start-up banner lines (see the module docstring)."""
    return any(pattern.match(line) for pattern in BANNERS)


def without_banners(text):
    """`text` without its banner lines; every other line is kept as it was."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_banner(line))


@contextlib.contextmanager
def banners_filtered():
    """Captures what is written to file descriptor 2 inside the block and writes it back without the banners."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a closed or replaced stderr): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()  # Python's own writes to fd 2 during the block belong to the capture
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = without_banners(capture.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader:
    """Runs the wrapped loader's module code with the banners filtered; everything else is delegated.

    A plain class (the import system needs only `create_module` and `exec_module`): subclassing
    importlib.abc.Loader would cost `keras-ssl --help` the import of importlib.resources.
    """

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            with banners_filtered():
                self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader  # the module keeps its real loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietImportFinder:
    """Finds `names` with the other finders and wraps their loader in `_QuietLoader`."""

    def __init__(self, names):
        self.names = tuple(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def _drop_retracing(record):
    """A logging filter (a callable is enough): False for the retracing warning."""
    return RETRACING not in record.getMessage()


def verbose_requested(verbose_flag):
    """--verbose, or KERAS_SSL_DEBUG set to anything but "" or "0"."""
    return bool(verbose_flag) or os.environ.get("KERAS_SSL_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def quiet(verbose=False):
    """Silences the start-up banners and retracing warnings inside the block, unless `verbose`."""
    if verbose:
        yield
        return
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    finder = _QuietImportFinder(QUIET_IMPORTS)
    sys.meta_path.insert(0, finder)
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_drop_retracing)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        logger.removeFilter(_drop_retracing)
