"""Dependencies point one way, and backend code stays where it belongs.

Reads every module's imports (those inside functions too, which are cycles
in disguise when they point up) and checks them against the layer order of
docs/architecture.md. Method, loss, backbone and augmentation code is
backend-neutral: it never imports tensorflow, jax or torch. Elsewhere a
backend is only imported lazily, inside a function, so `import keras_ssl`
never drags one in (the keras-hub import_test idea).
"""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from keras_ssl.testing import REPO_ROOT

PACKAGE = REPO_ROOT / "keras_ssl"
NEUTRAL = ("methods", "losses", "backbones", "augment", "layers")
BACKENDS = ("tensorflow", "jax", "torch", "tensorflow_datasets", "gensim")
# Lowest first: a module may import from its own layer or a lower one, never a higher one.
LAYER_ORDER = (
    ("utils",),
    ("losses",),
    ("layers",),
    ("augment",),
    ("backbones",),
    ("data",),
    ("trainers",),
    ("callbacks",),
    ("methods",),
    ("evaluation",),
    ("bundle",),
    ("presets",),
    ("cli", "quickstart"),
    ("testing",),
)
RANK = {name: rank for rank, names in enumerate(LAYER_ORDER) for name in names}
# Source reading and subprocesses that choose their own backend: the same checks under every backend.
pytestmark = pytest.mark.any_backend


def imported_modules(tree, top_level_only):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def keras_ssl_imports(tree):
    """(line, imported part of keras_ssl) for every import of the package, function-level ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "keras_ssl" and len(parts) > 1:
                    yield node.lineno, parts[1]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "keras_ssl":
                continue
            if len(parts) > 1:
                yield node.lineno, parts[1]
            else:  # from keras_ssl import methods, data (__version__ lives in the import-free top level)
                yield from ((node.lineno, alias.name) for alias in node.names if alias.name != "__version__")


def upward_imports(part, source):
    """Messages for each import in `source` (the code of a module in `part`) that points up the layer order."""
    problems = []
    for line, target in keras_ssl_imports(ast.parse(source)):
        if target not in RANK:
            problems.append(f"line {line}: imports keras_ssl.{target}, which has no place in the layer order")
        elif RANK[target] > RANK[part]:
            problems.append(f"line {line}: {part} imports {target}, a higher layer")
    return problems


def python_files(root):
    return sorted(p for p in root.rglob("*.py"))


def part_of(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def test_every_part_has_a_place_in_the_layer_order():
    parts = {part_of(p) for p in python_files(PACKAGE)} - {"__init__"}
    assert parts == set(RANK), f"add {sorted(parts - set(RANK))} to LAYER_ORDER (and docs/architecture.md)"


def test_imports_point_down_the_layer_order():
    problems = []
    for path in python_files(PACKAGE):
        if path == PACKAGE / "__init__.py":
            continue  # the lazy top level names its subpackages as strings
        problems += [f"{path.relative_to(REPO_ROOT)} {p}" for p in upward_imports(part_of(path), path.read_text())]
    assert not problems, "\n".join(problems)


def test_a_planted_upward_import_is_caught():
    # A loss reaching up into the methods, hidden inside a function: the kind of cycle this test exists for.
    planted = textwrap.dedent(
        """
        from keras import ops

        def nt_xent(z1, z2):
            from keras_ssl.methods.method import embedding_std
            return embedding_std(z1)
        """
    )
    assert upward_imports("losses", planted) == ["line 5: losses imports methods, a higher layer"]
    assert upward_imports("methods", planted.replace("methods.method", "losses.normalize")) == []


@pytest.mark.parametrize("package", NEUTRAL)
def test_neutral_packages_never_import_a_backend(package):
    for path in python_files(PACKAGE / package):
        found = set(imported_modules(ast.parse(path.read_text()), top_level_only=False)) & set(BACKENDS)
        assert not found, f"{path.relative_to(REPO_ROOT)} imports {sorted(found)}"


def test_no_module_imports_a_backend_at_top_level():
    for path in python_files(PACKAGE):
        found = set(imported_modules(ast.parse(path.read_text()), top_level_only=True)) & set(BACKENDS)
        assert not found, f"{path.relative_to(REPO_ROOT)} imports {sorted(found)} at top level"


def _run(code, **env):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)


def test_importing_keras_ssl_loads_no_framework():
    code = (
        "import sys, keras_ssl, keras_ssl.presets, keras_ssl.cli; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'numpy', 'gensim') if m in sys.modules))"
    )
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]


def test_importing_the_methods_under_jax_loads_no_tensorflow():
    code = (
        "import sys, keras_ssl; keras_ssl.methods.get_method('simclr'); "
        "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'gensim') if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = _run(code, KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
