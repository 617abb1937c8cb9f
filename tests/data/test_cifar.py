"""Tests for keras_ssl.data.cifar (official archive format and npz)."""

import io
import os
import pickle
import pickletools
import struct
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from keras_ssl.data.cifar import (
    CIFAR10_LABELS,
    load_cifar10_archive,
    load_cifar10_npz,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CIFAR10_NPZ = REPO_ROOT.parent / "shared" / "data" / "cifar10" / "cifar10.npz"

BATCH_DIR = "cifar-10-batches-py"
TRAIN_NAMES = [f"data_batch_{i}" for i in range(1, 6)]
IMAGES_PER_BATCH = 3


# --------------------------------------------------------------------------
# Writing pickles the way the official (Python 2) archive has them.
# --------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes like Python 2 did for CIFAR-10.

    Python 2 had no separate bytes type: every ``str`` (dict keys, numpy's
    raw buffer, dtype codes) was written with the BINSTRING opcodes, and numpy
    referenced ``numpy.core.multiarray._reconstruct``. Python 3 at protocol 2
    would instead route bytes through ``_codecs.encode``.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        names = {
            np.ndarray: b"numpy\nndarray\n",
            np.dtype: b"numpy\ndtype\n",
        }
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        elif obj in names:
            self.write(pickle.GLOBAL + names[obj])
        else:  # pragma: no cover - not used by the fixtures
            return super().save_global(obj, name)
        self.memoize(obj)


def py2_pickle(obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def nhwc_to_rows(images):
    """(N, 32, 32, 3) -> (N, 3072): R plane, G plane, B plane, row-major."""
    rows = [
        np.concatenate([img[:, :, c].reshape(-1) for c in range(3)])
        for img in images
    ]
    return np.stack(rows).astype(np.uint8)


def make_batches(seed=0):
    """Random images + labels for each official batch name."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in TRAIN_NAMES + ["test_batch"]:
        shape = (IMAGES_PER_BATCH, 32, 32, 3)
        images = rng.integers(0, 256, size=shape, dtype=np.uint8)
        labels = rng.integers(0, 10, size=IMAGES_PER_BATCH).tolist()
        batches[name] = (images, labels)
    return batches


def batch_dict(images, labels, name):
    return {
        "batch_label": f"{name} batch",
        "labels": list(labels),
        "data": nhwc_to_rows(images),
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }


def meta_dict():
    return {
        "num_cases_per_batch": IMAGES_PER_BATCH,
        "label_names": list(CIFAR10_LABELS),
        "num_vis": 3072,
    }


def add_bytes(tar, name, payload, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(payload))


def write_archive(path, batches=None, omit=(), replace=None, extra=()):
    """Write an archive laid out like cifar-10-python.tar.gz.

    ``replace`` maps a batch name to raw bytes to store instead; ``extra`` is
    a list of ``(TarInfo, payload-or-None)`` added after the regular members.
    """
    batches = make_batches() if batches is None else batches
    replace = replace or {}
    with tarfile.open(path, "w:gz") as tar:
        dir_info = tarfile.TarInfo(BATCH_DIR)
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        tar.addfile(dir_info)
        contents = {"batches.meta": py2_pickle(meta_dict())}
        for name, (images, labels) in batches.items():
            contents[name] = py2_pickle(batch_dict(images, labels, name))
        contents["readme.html"] = b"<html>tiny test archive</html>"
        contents.update(replace)
        for name, payload in contents.items():
            if name not in omit:
                add_bytes(tar, f"{BATCH_DIR}/{name}", payload)
        for info, payload in extra:
            tar.addfile(info, None if payload is None else io.BytesIO(payload))
    return batches


def tree(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


# --------------------------------------------------------------------------
# Official archive: round trip
# --------------------------------------------------------------------------


def test_fixture_pickle_matches_official_format():
    images, labels = make_batches()["data_batch_1"]
    blob = py2_pickle(batch_dict(images, labels, "data_batch_1"))
    ops = list(pickletools.genops(blob))
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_used == {
        "numpy.core.multiarray _reconstruct",
        "numpy ndarray",
        "numpy dtype",
    }
    # The recipe from the CIFAR-10 web page works on it and gives bytes keys.
    with warnings.catch_warnings():
        # NumPy 2 warns when a pickle names the old numpy.core module.
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = pickle.loads(blob, encoding="bytes")
    assert set(loaded) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert loaded[b"data"].dtype == np.uint8
    assert loaded[b"data"].shape == (IMAGES_PER_BATCH, 3072)
    assert loaded[b"labels"] == labels


def test_archive_round_trip_nhwc(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = write_archive(archive)
    before = tree(tmp_path)

    (x_train, y_train), (x_test, y_test) = load_cifar10_archive(archive)

    assert tree(tmp_path) == before  # nothing extracted by default
    assert x_train.shape == (5 * IMAGES_PER_BATCH, 32, 32, 3)
    assert x_test.shape == (IMAGES_PER_BATCH, 32, 32, 3)
    for arr in (x_train, y_train, x_test, y_test):
        assert arr.dtype == np.uint8
    assert y_train.shape == (5 * IMAGES_PER_BATCH,)
    assert y_test.shape == (IMAGES_PER_BATCH,)

    expected_x = np.concatenate([batches[n][0] for n in TRAIN_NAMES])
    expected_y = np.concatenate([batches[n][1] for n in TRAIN_NAMES]).astype(np.uint8)
    np.testing.assert_array_equal(x_train, expected_x)
    np.testing.assert_array_equal(y_train, expected_y)
    np.testing.assert_array_equal(x_test, batches["test_batch"][0])
    np.testing.assert_array_equal(y_test, np.array(batches["test_batch"][1], np.uint8))


def test_archive_plane_layout_by_hand(tmp_path):
    # One known row, independent of the helper's conversion.
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 1] = 7  # R, y=0, x=1
    row[0, 32] = 9  # R, y=1, x=0
    row[0, 1024 + 5] = 11  # G, y=0, x=5
    row[0, 2048 + 33] = 13  # B, y=1, x=1
    row[0, 3071] = 255  # B, y=31, x=31
    custom = py2_pickle({"labels": [4], "data": row})
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"test_batch": custom})

    _, (x_test, y_test) = load_cifar10_archive(archive)

    assert x_test.shape == (1, 32, 32, 3)
    assert x_test[0, 0, 1, 0] == 7
    assert x_test[0, 1, 0, 0] == 9
    assert x_test[0, 0, 5, 1] == 11
    assert x_test[0, 1, 1, 2] == 13
    assert x_test[0, 31, 31, 2] == 255
    assert int(x_test.sum()) == 7 + 9 + 11 + 13 + 255
    assert y_test.tolist() == [4]


def test_archive_extract_dir_writes_validated_members(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = write_archive(archive)
    out = tmp_path / "out"

    (x_train, _), _ = load_cifar10_archive(archive, extract_dir=out)

    extracted = out / BATCH_DIR
    assert sorted(p.name for p in extracted.iterdir()) == sorted(
        TRAIN_NAMES + ["test_batch", "batches.meta", "readme.html"]
    )
    first = batches["data_batch_1"][0]
    np.testing.assert_array_equal(x_train[:IMAGES_PER_BATCH], first)


def test_cifar10_labels():
    assert CIFAR10_LABELS == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )


# --------------------------------------------------------------------------
# Official archive: unsafe members
# --------------------------------------------------------------------------


def _evil_members(kind, tmp_path):
    if kind == "dotdot":
        info = tarfile.TarInfo(f"{BATCH_DIR}/../../evil")
        return info, b"pwned", "'..'"
    if kind == "absolute":
        info = tarfile.TarInfo(str(tmp_path / "abs_evil"))
        return info, b"pwned", "absolute"
    if kind == "symlink":
        info = tarfile.TarInfo(f"{BATCH_DIR}/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../link_target"
        return info, None, "symlink"
    if kind == "hardlink":
        info = tarfile.TarInfo(f"{BATCH_DIR}/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = f"{BATCH_DIR}/batches.meta"
        return info, None, "hardlink"
    if kind == "device":
        info = tarfile.TarInfo(f"{BATCH_DIR}/dev")
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
        return info, None, "device"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["dotdot", "absolute", "symlink", "hardlink", "device"]
)
def test_archive_unsafe_member_refused_on_extract(tmp_path, kind):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "cifar-10-python.tar.gz"
    info, payload, word = _evil_members(kind, tmp_path)
    if payload is not None:
        info.size = len(payload)
    write_archive(archive, extra=[(info, payload)])
    out = work / "out"
    before = tree(tmp_path)

    with pytest.raises(ValueError) as excinfo:
        load_cifar10_archive(archive, extract_dir=out)

    message = str(excinfo.value)
    assert info.name in message
    assert word in message
    assert "expected" in message
    # Nothing at all was written: validation happens before any extraction.
    assert tree(tmp_path) == before
    assert not out.exists()
    for name in ("evil", "abs_evil", "link_target", "link"):
        assert not (tmp_path / name).exists()


def test_archive_unsafe_member_ignored_without_extract(tmp_path):
    # Reading straight from the tar never touches the other members.
    archive = tmp_path / "a.tar.gz"
    info, payload, _ = _evil_members("dotdot", tmp_path)
    info.size = len(payload)
    write_archive(archive, extra=[(info, payload)])
    before = tree(tmp_path)

    (x_train, _), _ = load_cifar10_archive(archive)

    assert x_train.shape[0] == 5 * IMAGES_PER_BATCH
    assert tree(tmp_path) == before


def test_archive_batch_that_is_a_symlink_is_refused(tmp_path):
    archive = tmp_path / "a.tar.gz"
    link = tarfile.TarInfo(f"{BATCH_DIR}/test_batch")
    link.type = tarfile.SYMTYPE
    link.linkname = "data_batch_1"
    write_archive(archive, omit=("test_batch",), extra=[(link, None)])

    with pytest.raises(ValueError, match="test_batch.*regular file.*symlink"):
        load_cifar10_archive(archive)


# --------------------------------------------------------------------------
# Official archive: malicious pickles
# --------------------------------------------------------------------------


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_archive_pickle_with_os_system_is_refused(tmp_path, capfd):
    evil = pickle.dumps(_RunsShell("echo hi"), protocol=2)
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"data_batch_1": evil})

    with pytest.raises(pickle.UnpicklingError) as excinfo:
        load_cifar10_archive(archive)

    message = str(excinfo.value)
    assert f"{os.system.__module__}.system" in message  # e.g. posix.system
    assert "refused" in message
    assert "data_batch_1" in message
    out, err = capfd.readouterr()
    assert "hi" not in out + err


def test_archive_pickle_side_effect_never_runs(tmp_path):
    marker = tmp_path / "marker"
    evil = pickle.dumps(_RunsShell(f"touch '{marker}'"), protocol=2)
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"test_batch": evil})

    with pytest.raises(pickle.UnpicklingError):
        load_cifar10_archive(archive)
    assert not marker.exists()


@pytest.mark.parametrize(
    "blob, refused",
    [
        (
            b"\x80\x02c__builtin__\neval\nq\x00U\x031+1q\x01\x85q\x02Rq\x03.",
            "__builtin__.eval",
        ),
        (b"\x80\x02cbuiltins\ngetattr\n.", "builtins.getattr"),
        (b"\x80\x02cnumpy\nload\n.", "numpy.load"),
    ],
)
def test_archive_other_globals_refused(tmp_path, blob, refused):
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"batches.meta": blob})
    with pytest.raises(pickle.UnpicklingError, match=refused.replace(".", r"\.")):
        load_cifar10_archive(archive)


# --------------------------------------------------------------------------
# Official archive: damaged or wrong input
# --------------------------------------------------------------------------


def test_archive_missing_path(tmp_path):
    missing = tmp_path / "nope" / "cifar-10-python.tar.gz"
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar10_archive(missing)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.9, -1])
def test_archive_truncated_gzip(tmp_path, keep):
    good = tmp_path / "good.tar.gz"
    write_archive(good)
    data = good.read_bytes()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(data[:cut])

    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar10_archive(bad)


def test_archive_not_gzip(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"<html>404 not found</html>" * 20)
    with pytest.raises(ValueError, match="gzip"):
        load_cifar10_archive(bad)


def test_archive_corrupt_crc(tmp_path):
    good = tmp_path / "good.tar.gz"
    write_archive(good)
    data = bytearray(good.read_bytes())
    data[-8] ^= 0xFF  # CRC32 in the gzip trailer
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar10_archive(bad)


def test_archive_missing_member(tmp_path):
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, omit=("data_batch_3",))
    with pytest.raises(ValueError) as excinfo:
        load_cifar10_archive(archive)
    message = str(excinfo.value)
    assert "cifar-10-batches-py/data_batch_3" in message
    assert "missing" in message
    assert "found" in message


def test_archive_wrong_row_size(tmp_path):
    bad = py2_pickle({"labels": [1, 2], "data": np.zeros((2, 3071), np.uint8)})
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"data_batch_2": bad})
    with pytest.raises(ValueError, match=r"data_batch_2.*\(N, 3072\).*\(2, 3071\)"):
        load_cifar10_archive(archive)


def test_archive_label_count_mismatch(tmp_path):
    bad = py2_pickle({"labels": [1], "data": np.zeros((2, 3072), np.uint8)})
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"test_batch": bad})
    with pytest.raises(ValueError, match=r"test_batch.*\(2,\).*\(1,\)"):
        load_cifar10_archive(archive)


def test_archive_corrupt_pickle(tmp_path):
    good = py2_pickle(meta_dict())
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"batches.meta": good[: len(good) // 2]})
    with pytest.raises(ValueError, match="batches.meta"):
        load_cifar10_archive(archive)


def test_archive_wrong_label_names(tmp_path):
    meta = meta_dict()
    meta["label_names"] = ["apple"] * 10
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, replace={"batches.meta": py2_pickle(meta)})
    with pytest.raises(ValueError, match="label_names"):
        load_cifar10_archive(archive)


# --------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------


def _small_npz(path, **overrides):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        "y_train": np.array([0, 1, 9, 3], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "y_test": np.array([[5], [6]], dtype=np.int64),
    }
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return arrays


def test_npz_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    arrays = _small_npz(path)
    (x_train, y_train), (x_test, y_test) = load_cifar10_npz(path)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    assert y_train.dtype == np.uint8 and y_train.tolist() == [0, 1, 9, 3]
    assert y_test.dtype == np.uint8 and y_test.shape == (2,)
    assert y_test.tolist() == [5, 6]


def test_npz_missing_key(tmp_path):
    path = tmp_path / "c.npz"
    _small_npz(path, y_test=None)
    with pytest.raises(ValueError, match="y_test"):
        load_cifar10_npz(path)


def test_npz_wrong_shape_and_dtype(tmp_path):
    path = tmp_path / "shape.npz"
    _small_npz(path, x_test=np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"x_test.*\(N, 32, 32, 3\).*\(2, 3, 32, 32\)"):
        load_cifar10_npz(path)

    path = tmp_path / "dtype.npz"
    _small_npz(path, x_train=np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="x_train.*uint8.*float32"):
        load_cifar10_npz(path)

    path = tmp_path / "labels.npz"
    _small_npz(path, y_train=np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="y_train.*0..9"):
        load_cifar10_npz(path)

    path = tmp_path / "count.npz"
    _small_npz(path, y_train=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"y_train.*\(4,\).*\(3,\)"):
        load_cifar10_npz(path)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    _small_npz(path, y_train=np.array([0, 1, 2, None], dtype=object))
    with pytest.raises(ValueError, match="y_train"):
        load_cifar10_npz(path)


def test_npz_missing_path_and_garbage(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_cifar10_npz(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="bad.npz"):
        load_cifar10_npz(bad)


def test_shared_cifar10_npz():
    if not SHARED_CIFAR10_NPZ.is_file():
        message = f"CIFAR-10 data file is missing: {SHARED_CIFAR10_NPZ}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    (x_train, y_train), (x_test, y_test) = load_cifar10_npz(SHARED_CIFAR10_NPZ)

    assert x_train.shape == (50000, 32, 32, 3)
    assert x_test.shape == (10000, 32, 32, 3)
    assert y_train.shape == (50000,)
    assert y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    means = x_train.reshape(-1, 3).mean(axis=0, dtype=np.float64) / 255.0
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=5e-4)
