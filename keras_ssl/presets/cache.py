"""Download cache for pretrained preset archives.

Stdlib only at import time (with keras_ssl.utils): the preset loader imports
it, and concurrent loader processes must not pay for importing TensorFlow.

A file lives at `<cache_home>/downloads/<sha256>/<filename>` and only ever gets
there by an atomic `os.replace` after its size and sha256 were checked, so a
reader never sees a partial file. Downloads into one directory are serialised
by a file lock, so concurrent loaders download once and the others reuse it.
"""

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings

from keras_ssl.utils.files import CHUNK, SHA256_PATTERN, file_lock, is_verified

MAX_UNKNOWN_SIZE = 2**32  # a download whose size is not given is cut off here
_TRUE = ("1", "true", "yes", "on")


class PresetDownloadError(RuntimeError):
    """A file could not be obtained and verified."""


class OfflineError(PresetDownloadError):
    """Offline mode is on and the file is not in the cache."""


def cache_home(cache_dir=None):
    """The cache root: `cache_dir`, else $KERAS_SSL_HOME, else ~/.cache/keras_ssl; created if missing."""
    home = cache_dir or os.environ.get("KERAS_SSL_HOME") or os.path.join("~", ".cache", "keras_ssl")
    home = os.path.expanduser(os.fspath(home))
    os.makedirs(home, exist_ok=True)
    return home


def is_offline():
    """Whether $KERAS_SSL_OFFLINE forbids network access."""
    return os.environ.get("KERAS_SSL_OFFLINE", "").strip().lower() in _TRUE


def fetch(urls, sha256, size, filename, cache_dir=None, offline=None, progress=None, timeout=60.0):
    """Return the path of a verified copy of `filename`, downloading it if needed.

    `urls` are tried in order after `$KERAS_SSL_MIRROR/<filename>` (when set).
    Offline (`offline`, else $KERAS_SSL_OFFLINE) no socket is opened: only
    file:// candidates are tried, so a file:// mirror still works. `size` may
    be None (an https:// URL that gives only its sha256): then only the sha256
    is checked, and a download is cut off at MAX_UNKNOWN_SIZE bytes.
    """
    _check_args(sha256, size, filename)
    folder = os.path.join(cache_home(cache_dir), "downloads", sha256)
    path = os.path.join(folder, filename)
    if is_verified(path, sha256, size):
        return path  # the common case: no lock, no network
    os.makedirs(folder, exist_ok=True)
    with file_lock(os.path.join(folder, ".lock")):
        if os.path.exists(path):
            if is_verified(path, sha256, size):
                return path  # another process finished it while we waited
            warnings.warn(f"cached file {path} was corrupt (wrong size or sha256); fetching it again", stacklevel=2)
            os.remove(path)
        for name in os.listdir(folder):
            if name.endswith(".part"):  # only the lock holder writes these: any present are from killed runs
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))
        offline = is_offline() if offline is None else offline
        candidates = _candidates(urls, filename)
        if offline:
            candidates = [u for u in candidates if u.startswith("file://")]
        elif not candidates:
            raise PresetDownloadError(
                f"no URLs to download {filename} from: none were given and KERAS_SSL_MIRROR is not set"
            )
        show = sys.stderr.isatty() if progress is None else progress
        failures = []
        for url in candidates:
            try:
                _download(url, folder, path, sha256, size, show, timeout)
                return path
            except (PresetDownloadError, http.client.HTTPException, urllib.error.URLError, OSError, ValueError) as e:
                failures.append(f"  {url}: {_reason(e)}")
        tried = "".join("\n" + f for f in failures)
        if offline:
            raise OfflineError(
                f"{filename} is not in the cache and offline mode is on (KERAS_SSL_OFFLINE). Expected it at {path} "
                f"(sha256 {sha256}, {size} bytes). To fix: unset KERAS_SSL_OFFLINE to download it, copy the file to "
                f"that path, or point KERAS_SSL_MIRROR at a server that has it (a file:// mirror works offline).{tried}"
            )
        raise PresetDownloadError(f"could not download {filename} (sha256 {sha256}, {size} bytes) from any URL:{tried}")


def _check_args(sha256, size, filename):
    if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex characters, received {sha256!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ValueError(f"size must be a positive int (bytes) or None (unknown), received {size!r}")
    if (
        not isinstance(filename, str)
        or not filename
        or filename.startswith(".")
        or any(bad in filename for bad in ("/", "\\", "..", "\0"))
    ):
        raise ValueError(
            f"filename must be a plain file name (no '/', '\\', '..' or leading '.'), received {filename!r}"
        )


def _candidates(urls, filename):
    urls = [urls] if isinstance(urls, str) else list(urls or ())
    mirror = os.environ.get("KERAS_SSL_MIRROR", "").strip()
    first = [mirror.rstrip("/") + "/" + filename] if mirror else []
    return first + [u for u in urls if u not in first]


def _download(url, folder, path, sha256, size, show, timeout):
    """Stream `url` into a temp file beside `path`; move it onto `path` only once verified."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part")
    limit = size or MAX_UNKNOWN_SIZE
    try:
        digest, received = hashlib.sha256(), 0
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
            _progress_bar(show, os.path.basename(path), size) as advance,
        ):
            while chunk := _read(response, received, size):
                received += len(chunk)
                if received > limit:
                    raise PresetDownloadError(f"too long: received more than the expected {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
                advance(len(chunk))
        if size is not None and received != size:
            raise PresetDownloadError(f"truncated: received {received} of {size} bytes")
        if digest.hexdigest() != sha256:
            raise PresetDownloadError(f"checksum mismatch: expected {sha256}, received {digest.hexdigest()}")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)  # a failed or interrupted download leaves nothing behind


def _read(response, received, size):
    try:
        return response.read(CHUNK)
    except http.client.IncompleteRead as e:  # the server closed before Content-Length bytes
        raise PresetDownloadError(f"truncated: received {received + len(e.partial)} of {size} bytes") from None


def _reason(error):
    if isinstance(error, urllib.error.HTTPError):
        error.close()
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


@contextlib.contextmanager
def _progress_bar(show, filename, size):
    """Yield `advance(n_bytes)`: a rich bar on stderr when asked for and rich is installed, else a no-op."""
    if show:
        try:
            from rich import console, progress  # lazily: keeps the import stdlib-only
        except ImportError:
            show = False
    if not show:
        yield lambda n: None
        return
    columns = (
        progress.TextColumn("{task.description}"),
        progress.BarColumn(),
        progress.DownloadColumn(),
        progress.TransferSpeedColumn(),
        progress.TimeRemainingColumn(),
    )
    with progress.Progress(*columns, console=console.Console(stderr=True)) as bar:
        task = bar.add_task(filename, total=size)
        yield lambda n: bar.advance(task, n)
