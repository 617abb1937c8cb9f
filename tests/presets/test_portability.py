"""keras_ssl without `fcntl` (Windows has none): the import and a shipped preset's load still work."""

import ast
import json
import os
import subprocess
import sys

from keras_ssl import presets
from keras_ssl.testing import REPO_ROOT

# `sys.modules["fcntl"] = None` makes every later `import fcntl` raise ImportError, as on Windows.
WITHOUT_FCNTL = """
import json, os, sys
sys.modules["fcntl"] = None
import filelock
import numpy as np
import keras_ssl

encoder = keras_ssl.load("simclr_resnet")
features = encoder.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
print(json.dumps({
    "lock": filelock.FileLock.__name__,
    "fcntl": sys.modules["fcntl"] is None,
    "shape": list(features.shape),
    "finite": bool(np.isfinite(features).all()),
    "cache": sorted(os.listdir(os.path.join(os.environ["KERAS_SSL_HOME"], "bundles"))),
}))
"""


def test_keras_ssl_imports_no_fcntl_itself():
    for path in (REPO_ROOT / "keras_ssl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.split(".")[0] in ("fcntl", "msvcrt") for name in names), path


def test_a_shipped_preset_loads_where_fcntl_is_missing(tmp_path):
    """Blocks `fcntl` for the whole process, not only for keras_ssl's imports: the stricter simulation.

    keras_ssl locks the cache through the `filelock` package, which picks its lock at import: flock where `fcntl`
    exists, msvcrt on Windows, and a lock file (`SoftFileLock`) elsewhere. On Linux the test cannot remove flock
    from the OS, so it hides the module: filelock then falls back to its soft lock, and TensorFlow, JAX and h5py
    import without it, so everything a Windows user runs on the way to the encoder runs here without `fcntl`.
    """
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_SSL_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    sha256 = presets.get_preset("simclr_resnet").weights.sha256
    assert report["fcntl"] and report["lock"] == "SoftFileLock"
    assert report["shape"] == [2, 64] and report["finite"]
    # Unpacked once, with its manifest; the soft lock deletes its lock file on release (flock leaves it).
    assert report["cache"] == [sha256, f"{sha256}.manifest.json"]
