"""Backend code stays where it belongs (the keras-hub import_test idea).

Method, loss, backbone and augmentation code is backend-neutral: it never
imports tensorflow or jax. Elsewhere a backend may only be imported lazily,
inside a function, so importing keras_ssl never drags one in.
"""

import ast
import os
import subprocess
import sys

import pytest

from keras_ssl.testing import REPO_ROOT

PACKAGE = REPO_ROOT / "keras_ssl"
NEUTRAL = ("methods", "losses", "backbones", "augment", "layers")
BACKENDS = ("tensorflow", "jax", "torch", "tensorflow_datasets", "gensim")


def imported_modules(tree, top_level_only):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def python_files(root):
    return sorted(p for p in root.rglob("*.py"))


@pytest.mark.parametrize("package", NEUTRAL)
def test_neutral_packages_never_import_a_backend(package):
    for path in python_files(PACKAGE / package):
        found = set(imported_modules(ast.parse(path.read_text()), top_level_only=False)) & set(BACKENDS)
        assert not found, f"{path.relative_to(REPO_ROOT)} imports {sorted(found)}"


def test_no_module_imports_a_backend_at_top_level():
    for path in python_files(PACKAGE):
        found = set(imported_modules(ast.parse(path.read_text()), top_level_only=True)) & set(BACKENDS)
        assert not found, f"{path.relative_to(REPO_ROOT)} imports {sorted(found)} at top level"


def test_importing_keras_ssl_under_jax_loads_no_tensorflow():
    code = "import sys, keras_ssl; bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'gensim') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
