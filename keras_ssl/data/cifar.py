"""CIFAR-10 loaders that need only the standard library and NumPy.

Two on-disk formats are supported:

* the official python archive ``cifar-10-python.tar.gz``
  (:func:`load_cifar10_archive`), read without running arbitrary pickle code;
* a NumPy ``.npz`` file with ``x_train``, ``y_train``, ``x_test`` and
  ``y_test`` (:func:`load_cifar10_npz`), read with ``allow_pickle=False``.

Both return ``((x_train, y_train), (x_test, y_test))`` with images as
``uint8`` arrays of shape ``(N, 32, 32, 3)`` (NHWC, RGB) and labels as flat
``uint8`` arrays of shape ``(N,)`` with values in ``0..9``.
"""

import gzip
import os
import pickle
import tarfile
import zipfile
import zlib

import numpy as np

__all__ = [
    "CIFAR10_LABELS",
    "load_cifar10_archive",
    "load_cifar10_npz",
]

#: Class names of CIFAR-10, indexed by label.
CIFAR10_LABELS = (
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

_IMAGE_SHAPE = (32, 32, 3)
_ROW_SIZE = 32 * 32 * 3
_NUM_CLASSES = len(CIFAR10_LABELS)

_ARCHIVE_DIR = "cifar-10-batches-py"
_TRAIN_MEMBERS = tuple(
    f"{_ARCHIVE_DIR}/data_batch_{i}" for i in range(1, 6)
)
_TEST_MEMBER = f"{_ARCHIVE_DIR}/test_batch"
_META_MEMBER = f"{_ARCHIVE_DIR}/batches.meta"

# Globals a pickled numpy array may reference. Nothing else is loadable.
_RECONSTRUCT = "_reconstruct"
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", _RECONSTRUCT),
        ("numpy._core.multiarray", _RECONSTRUCT),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)

# Errors that a damaged gzip/tar stream can raise while being read.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _numpy_reconstruct():
    # Resolve the real function without importing the deprecated
    # ``numpy.core`` alias (which warns under NumPy 2).
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _RefusedGlobalError(pickle.UnpicklingError):
    """A pickle tried to load a global that is not on the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays and builtin containers."""

    def __init__(self, file, source):
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _RefusedGlobalError(
                f"refused to load global '{module}.{name}' from {self._source}: "
                "only numpy array reconstruction "
                "(numpy.core.multiarray._reconstruct, numpy.ndarray, "
                "numpy.dtype) is allowed in CIFAR-10 batch files"
            )
        if name == _RECONSTRUCT:
            return _numpy_reconstruct()
        return getattr(np, name)


def _check_path(path, what):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} must be a file, got a directory: {path!r}")
    return path


def _describe_member(member):
    if member.issym():
        return f"a symlink to {member.linkname!r}"
    if member.islnk():
        return f"a hardlink to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    if member.isdir():
        return "a directory"
    if member.isfile():
        return "a regular file"
    return f"an entry of tar type {member.type!r}"


def _validate_for_extraction(member):
    """Raise ValueError unless ``member`` is a plain file/dir with a safe name."""
    name = member.name
    expected = (
        "expected only regular files and directories with relative paths "
        "inside the archive"
    )
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(
            f"refusing to extract archive member {name!r}: it has an absolute "
            f"path; {expected}"
        )
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValueError(
            f"refusing to extract archive member {name!r}: it contains a '..' "
            f"path component; {expected}"
        )
    if not (member.isfile() or member.isdir()):
        raise ValueError(
            f"refusing to extract archive member {name!r}: it is "
            f"{_describe_member(member)}; {expected}"
        )


def _extract_all(tar, members, extract_dir):
    for member in members:
        _validate_for_extraction(member)
    os.makedirs(extract_dir, exist_ok=True)
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - old Pythons
        tar.extractall(extract_dir, members=members)
        return
    # The stdlib "data" filter is a second line of defence.
    try:
        tar.extractall(extract_dir, members=members, filter="data")
    except tarfile.FilterError as err:  # pragma: no cover - pre-checked above
        raise ValueError(
            f"refusing to extract archive member {err.tarinfo.name!r}: {err}; "
            "expected only regular files and directories with relative paths"
        ) from err


def _find_members(members, names, archive_path):
    """Map each required name to its regular-file member or raise ValueError."""
    by_name = {m.name: m for m in members}  # last one wins, like getmember()
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(
            f"CIFAR-10 archive {archive_path!r} is missing member(s) {missing}; "
            f"expected the official cifar-10-python.tar.gz layout "
            f"{list(names)}, found members {sorted(by_name)}"
        )
    found = {}
    for name in names:
        member = by_name[name]
        if not member.isfile():
            raise ValueError(
                f"CIFAR-10 archive member {name!r} must be a regular file, "
                f"found {_describe_member(member)}"
            )
        found[name] = member
    return found


def _drain(fileobj):
    # Reading to the end makes gzip check its length and CRC trailer, so a
    # truncated or corrupted download is reported instead of half-loaded.
    while fileobj.read(1 << 20):
        pass


def _unpickle(fileobj, source):
    try:
        return _RestrictedUnpickler(fileobj, source).load()
    except _RefusedGlobalError:
        raise
    except pickle.UnpicklingError as err:
        raise ValueError(f"corrupt pickle in {source}: {err}") from err
    except _ARCHIVE_ERRORS as err:
        raise ValueError(
            f"could not read {source}: the archive is truncated or corrupt "
            f"({type(err).__name__}: {err})"
        ) from err
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"corrupt pickle in {source}: {err}") from err


def _get_key(batch, key, source):
    if not isinstance(batch, dict):
        raise ValueError(
            f"{source}: expected a pickled dict, found {type(batch).__name__}"
        )
    for candidate in (key.encode("ascii"), key):
        if candidate in batch:
            return batch[candidate]
    raise ValueError(
        f"{source}: missing key {key!r}; expected keys b'data' and b'labels', "
        f"found {sorted(map(repr, batch))}"
    )


def _check_labels(labels, n, source):
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as err:  # pragma: no cover - defensive
        raise ValueError(f"{source}: labels are not numeric: {err}") from err
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise ValueError(
            f"{source}: expected labels of shape ({n},), received {labels.shape}"
        )
    if n and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{source}: expected integer labels, received dtype {labels.dtype}"
        )
    if n and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise ValueError(
            f"{source}: expected labels in 0..{_NUM_CLASSES - 1}, received "
            f"values in {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.uint8)


def _decode_batch(batch, source):
    data = _get_key(batch, "data", source)
    labels = _get_key(batch, "labels", source)
    if not isinstance(data, np.ndarray):
        raise ValueError(
            f"{source}: expected b'data' to be a numpy array, received "
            f"{type(data).__name__}"
        )
    if data.dtype != np.uint8:
        raise ValueError(
            f"{source}: expected b'data' of dtype uint8, received {data.dtype}"
        )
    if data.ndim != 2 or data.shape[1] != _ROW_SIZE:
        raise ValueError(
            f"{source}: expected b'data' of shape (N, {_ROW_SIZE}), "
            f"received {data.shape}"
        )
    n = data.shape[0]
    y = _check_labels(labels, n, source)
    # Each row is the R plane, then G, then B; each plane is 32x32 row-major.
    x = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _check_meta(meta, source):
    names = _get_key(meta, "label_names", source)
    try:
        decoded = tuple(
            n.decode("ascii") if isinstance(n, bytes) else str(n) for n in names
        )
    except (TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{source}: unreadable label_names: {err}") from err
    if decoded != CIFAR10_LABELS:
        raise ValueError(
            f"{source}: expected CIFAR-10 label_names {list(CIFAR10_LABELS)}, "
            f"found {list(decoded)}"
        )


def load_cifar10_archive(path, extract_dir=None):
    """Load CIFAR-10 from the official ``cifar-10-python.tar.gz``.

    The archive is a gzip tar holding ``cifar-10-batches-py/data_batch_1`` ..
    ``data_batch_5``, ``test_batch`` and ``batches.meta``. Each batch is a
    Python 2 pickle of a dict with ``b"data"`` (uint8, ``(N, 3072)``: R, G, B
    planes of a row-major 32x32 image) and ``b"labels"`` (list of int).
    Members are read straight from the tar; pickles go through a restricted
    unpickler that can only rebuild numpy arrays.

    Args:
        path: path to the archive.
        extract_dir: optional directory. If given, every member is checked
            first (no absolute paths, no ``..``, no links or devices) and
            then the archive is also extracted there.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: ``x`` is uint8
        ``(N, 32, 32, 3)`` NHWC RGB, ``y`` is uint8 ``(N,)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the archive is corrupt or truncated, a member is missing
            or unsafe to extract, or an array has the wrong shape or dtype.
        pickle.UnpicklingError: a pickle references a global other than the
            numpy array constructors (it is refused, never called).
    """
    path = _check_path(path, "CIFAR-10 archive")
    names = (_META_MEMBER,) + _TRAIN_MEMBERS + (_TEST_MEMBER,)
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
            members = tar.getmembers()
            _drain(gz)
            if extract_dir is not None:
                _extract_all(tar, members, os.fspath(extract_dir))
            wanted = _find_members(members, names, path)
            # Read in archive order so the gzip stream only seeks forward.
            payload = {}
            for name, member in sorted(wanted.items(), key=lambda kv: kv[1].offset):
                payload[name] = _unpickle(
                    tar.extractfile(member), f"archive member {name!r}"
                )
    except _ARCHIVE_ERRORS as err:
        raise ValueError(
            f"could not read CIFAR-10 archive {path!r}: expected a complete "
            f"gzip-compressed tar (cifar-10-python.tar.gz), but it is "
            f"truncated or corrupt ({type(err).__name__}: {err})"
        ) from err
    _check_meta(payload[_META_MEMBER], _META_MEMBER)
    train = [_decode_batch(payload[name], name) for name in _TRAIN_MEMBERS]
    x_test, y_test = _decode_batch(payload[_TEST_MEMBER], _TEST_MEMBER)
    x_train = np.concatenate([x for x, _ in train], axis=0)
    y_train = np.concatenate([y for _, y in train], axis=0)
    return (x_train, y_train), (x_test, y_test)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_split(archive, x_key, y_key, path):
    try:
        x = archive[x_key]
        y = archive[y_key]
    except ValueError as err:  # e.g. object arrays with allow_pickle=False
        raise ValueError(
            f"{path!r}: could not load {x_key!r}/{y_key!r} without pickle: {err}"
        ) from err
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise ValueError(
            f"{path!r}: could not read {x_key!r}/{y_key!r}, the file is "
            f"truncated or corrupt ({type(err).__name__}: {err})"
        ) from err
    if x.dtype != np.uint8:
        raise ValueError(
            f"{path!r}: expected {x_key!r} of dtype uint8, received {x.dtype}"
        )
    if x.ndim != 4 or x.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{path!r}: expected {x_key!r} of shape (N, 32, 32, 3), "
            f"received {x.shape}"
        )
    y = _check_labels(y, x.shape[0], f"{path!r} key {y_key!r}")
    return x, y


def load_cifar10_npz(path):
    """Load CIFAR-10 from a NumPy ``.npz`` file.

    The file must hold ``x_train``/``x_test`` (uint8, ``(N, 32, 32, 3)``,
    NHWC RGB) and ``y_train``/``y_test`` (integer labels 0..9, shape
    ``(N,)`` or ``(N, 1)``). Extra keys are ignored. It is loaded with
    ``allow_pickle=False``.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with ``y`` flat uint8.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable npz, a key is missing, or an
            array has the wrong shape, dtype or label range.
    """
    path = _check_path(path, "CIFAR-10 npz file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"could not read CIFAR-10 npz file {path!r}: expected a NumPy .npz "
            f"archive ({type(err).__name__}: {err})"
        ) from err
    if isinstance(archive, np.ndarray):
        raise ValueError(
            f"{path!r}: expected a .npz archive with keys {list(_NPZ_KEYS)}, "
            f"found a single array saved with np.save"
        )
    with archive:
        missing = [k for k in _NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(
                f"{path!r}: missing key(s) {missing}; expected keys "
                f"{list(_NPZ_KEYS)}, found {sorted(archive.files)}"
            )
        train = _npz_split(archive, "x_train", "y_train", path)
        test = _npz_split(archive, "x_test", "y_test", path)
    return train, test
