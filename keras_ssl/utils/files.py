"""Files that are written whole or not at all, checksums, and a cross-platform lock.

Stdlib (plus `filelock`) only: the download cache and the backups use these
in processes that must not pay for importing a deep-learning framework.
"""

import contextlib
import hashlib
import os
import re
import tempfile

CHUNK = 2**20
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")  # lowercase hex digest, matched with fullmatch


def sha256_file(path):
    """The lowercase hex sha256 of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(path, sha256, size=None):
    """Whether the file at `path` exists with this sha256 (and this size, unless `size` is None)."""
    try:
        return (size is None or os.path.getsize(path) == size) and sha256_file(path) == sha256
    except OSError:
        return False


@contextlib.contextmanager
def file_lock(path):
    """Holds an exclusive lock on `path` (created if missing), blocking until granted.

    `filelock` uses flock on POSIX and msvcrt on Windows; the operating system
    releases the lock when its holder dies, even by SIGKILL, so a killed
    process cannot wedge the others. Each call takes its own lock object, so
    the lock excludes other threads of this process as well.
    """
    import filelock

    with filelock.FileLock(os.fspath(path), thread_local=False, is_singleton=False):
        yield


def fsync_directory(path):
    """Flushes a directory entry (a rename inside it) to disk; a no-op where unsupported (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yields a file object whose contents replace `path` only when the block completes.

    The data go to a temporary file beside `path`, are fsynced, and are renamed
    over `path` (atomic on POSIX and Windows). A crash, a kill or an exception
    inside the block leaves the previous `path` as it was, and the temporary
    file is removed (a SIGKILL can leave one `.<name>.*.tmp` behind, which
    `remove_stale_temporaries` clears).
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def remove_stale_temporaries(path):
    """Removes the temporary files that killed `atomic_write` calls for `path` left behind."""
    path = os.path.abspath(os.fspath(path))
    folder, prefix = os.path.dirname(path), f".{os.path.basename(path)}."
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
