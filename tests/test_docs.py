"""Every ```python block of the docs and the README runs, so examples cannot rot.

Each block is one test, executed as-is in a fresh namespace under the backend
the suite runs with. Snippets that must not run (long trainings, shell
commands, code that needs a downloaded dataset) use ```bash or ```text fences.
"""

import re

import pytest

from keras_ssl.testing import REPO_ROOT

# An opening ```python fence (nothing else on the line) up to the closing fence.
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def doc_files():
    files = sorted((REPO_ROOT / "docs").rglob("*.md"))
    readme = REPO_ROOT / "README.md"
    if readme.is_file():  # the README may not exist yet
        files.append(readme)
    return files


def python_blocks():
    blocks = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for match in _PYTHON_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            name = f"{path.relative_to(REPO_ROOT).as_posix()}:{line}"
            code = match.group(1)
            # An example shows the API, the same on every backend, whose code the method tests run on each: the
            # default suite runs it under TensorFlow (see conftest.py). Blocks that export or pretrain write a
            # SavedModel (skipped under torch).
            marks = [pytest.mark.any_backend]
            if re.search(r"\bexport\(|\"pretrain\"", code):
                marks.append(pytest.mark.savedmodel)
            # Blocks that train (10-20 s each on 2 CPU cores) run in the large suite.
            if re.search(r"\.fit\(", code):
                marks.append(pytest.mark.large)
            blocks.append(pytest.param(code, name, id=name, marks=marks))
    return blocks


BLOCKS = python_blocks()


def test_docs_exist_and_hold_examples():
    assert (REPO_ROOT / "docs" / "index.md").is_file()
    assert BLOCKS, "no ```python block found in docs/ or README.md"


_LINK = re.compile(r"\]\(([^)#\s]+\.md)(#[^)\s]*)?\)")


def test_relative_links_point_to_existing_pages():
    for path in doc_files():
        for target, _ in _LINK.findall(path.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (path.parent / target).is_file(), f"{path.relative_to(REPO_ROOT)} links to missing {target}"


@pytest.fixture
def restore_method_registry():
    """A block may register an example method; later tests must not see it."""
    from keras_ssl.methods import registry

    saved = set(registry._METHODS)
    yield
    for name in set(registry._METHODS) - saved - set(registry.BUILTIN_METHODS):
        del registry._METHODS[name]  # built-in methods first imported by a block stay registered


@pytest.mark.parametrize("code, name", BLOCKS)
def test_python_block_runs(code, name, restore_method_registry):
    namespace = {"__name__": "__docs__"}
    exec(compile(code, name, "exec"), namespace)
