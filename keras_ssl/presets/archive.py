"""Bundle archives: a deterministic tar.gz writer and an extractor that refuses surprises.

`make_archive` packs a bundle directory (see `keras_ssl.export`) with the
bundle's files at the archive's root, no top-level folder, and the same bytes
for the same files, so a preset card can pin the archive's sha256.

`extract_archive` checks every member before it writes anything: no absolute
paths, no `..`, no links, no devices, no odd names, bounded member count and
size, and a complete, uncorrupted stream. It then extracts into a temporary
directory beside the target (with tarfile's `data` filter as a second line of
defence) and renames it into place, so the target is either the whole archive
or absent.

`tree_manifest` and `manifest_difference` record an unpacked bundle (every
file's size, the sha256 of its config, metadata and weights) and tell later
whether it still matches, so the preset cache can unpack a damaged copy again.
"""

import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib

from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS
from keras_ssl.utils.files import sha256_file
from keras_ssl.utils.strict_json import parse_json_object

GZIP_MAGIC = b"\x1f\x8b"
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
MANIFEST_FORMAT = "keras_ssl.unpacked/1"
MAX_MANIFEST_BYTES = 2**20
# Hashed on every check: what a load reads to rebuild the model; every other file is checked by size.
HASHED_FILES = tuple(f"{ASSETS}/{name}".replace(os.sep, "/") for name in (CONFIG, METADATA, WEIGHTS))
# tarfile's extraction filters (Python 3.11.4+) are a second line of defence behind the member checks.
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class UnsafeArchiveError(ValueError):
    """An archive that is not a tar, is corrupt, or holds a member that could escape or exhaust the target."""


def extract_archive(archive_path, target_dir, max_bytes=2**31, max_members=10000):
    """Extracts a plain or gzipped tar at `archive_path` into the new directory `target_dir`.

    Every member is checked before anything is written, and the extraction
    lands in a temporary directory beside `target_dir` that is renamed into
    place only when complete.

    Args:
        archive_path: the `.tar` or `.tar.gz` file.
        target_dir: the directory to create; it must not exist.
        max_bytes: the largest total size of the members' contents.
        max_members: the largest number of members.

    Returns:
        `target_dir`.

    Raises:
        FileExistsError: `target_dir` exists; it is left untouched.
        UnsafeArchiveError: the file is not a tar archive, is truncated or
            corrupt, or a member is unsafe (absolute path, `..` component,
            symbolic or hard link, device or fifo, NUL or backslash in its
            name), or there are more than `max_members` members, or more than
            `max_bytes` of contents.
    """
    archive_path = os.fspath(archive_path)
    target = os.path.abspath(os.fspath(target_dir))
    if os.path.lexists(target):
        raise FileExistsError(f"{target} already exists; extract_archive only creates a new directory.")
    compressed = _is_gzip(archive_path)
    stream_size = _stream_size(archive_path, compressed, limit=max_bytes + 4096 * max_members + 2**20)
    try:
        with tarfile.open(archive_path, "r:gz" if compressed else "r:") as tar:
            members = _checked_members(tar, archive_path, stream_size, max_bytes, max_members)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            staging = tempfile.mkdtemp(dir=parent, prefix=".extract-")
            try:
                try:
                    tar.extractall(staging, members=members, **_DATA_FILTER)
                except (*_CORRUPT, OSError) as error:
                    raise UnsafeArchiveError(
                        f"{archive_path}: extraction failed, the archive is corrupt or unsafe ({error})"
                    ) from None
                os.chmod(staging, 0o755)
                if os.path.lexists(target):
                    raise FileExistsError(f"{target} appeared while extracting; it is left untouched.")
                os.rename(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except _CORRUPT as error:
        raise UnsafeArchiveError(
            f"{archive_path}: not a tar archive (plain or gzip), or a corrupt one ({error})"
        ) from None
    return target_dir


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _stream_size(path, compressed, limit):
    """The tar stream's length; for gzip, decompresses it all so a truncated or corrupt file is caught now."""
    if not compressed:
        return os.path.getsize(path)
    size = 0
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                size += len(block)
                if size > limit:
                    raise UnsafeArchiveError(f"{path}: decompresses to more than {limit} bytes; refusing it.")
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise UnsafeArchiveError(f"{path}: a truncated or corrupt gzip stream ({error})") from None
    return size


def _checked_members(tar, archive_path, stream_size, max_bytes, max_members):
    """All members of `tar`, each checked; raises UnsafeArchiveError naming the first unsafe one."""
    members, names, total = [], set(), 0
    for member in tar:
        members.append(member)
        if len(members) > max_members:
            raise UnsafeArchiveError(f"{archive_path}: more than {max_members} members; refusing it.")
        reason = _unsafe_reason(member)
        if reason is None and posixpath.normpath(member.name) in names:
            reason = "a duplicate name"
        if reason is None and member.isfile() and member.offset_data + member.size > stream_size:
            reason = "its contents run past the end of the archive (truncated)"
        if reason:
            raise UnsafeArchiveError(f"{archive_path}: refusing member {member.name!r}: {reason}.")
        names.add(posixpath.normpath(member.name))
        total += member.size if member.isfile() else 0
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"{archive_path}: members add up to more than {max_bytes} bytes (at member {member.name!r}); "
                "refusing it."
            )
    if not members:
        raise UnsafeArchiveError(f"{archive_path}: an empty tar archive.")
    return members


def _unsafe_reason(member):
    name = member.name
    if not name or "\x00" in name:
        return "an empty name or a NUL byte in it"
    if "\\" in name:
        return "a backslash in its name"
    if name.startswith("/") or os.path.isabs(name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' component"
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk() or member.isfifo():
        return "a device or fifo"
    if not (member.isfile() or member.isdir()):
        return f"an unsupported member type {member.type!r}"
    return None


def make_archive(bundle_dir, archive_path):
    """Packs `bundle_dir` into a deterministic tar.gz at `archive_path` and returns its sha256.

    The bundle's files sit at the archive's root (no top-level folder). Members
    are sorted, with mtime 0, owner 0:0 and no owner names, mode 0o644 for
    files and 0o755 for directories, and the gzip header has mtime 0 and no
    file name, so the same files always give the same bytes. The archive is
    written to a temporary file and renamed into place.

    Raises:
        ValueError: `bundle_dir` holds a symbolic link or a special file, or
            `archive_path` lies inside `bundle_dir`.
    """
    bundle_dir = os.path.abspath(os.fspath(bundle_dir))
    archive_path = os.path.abspath(os.fspath(archive_path))
    if not os.path.isdir(bundle_dir):
        raise NotADirectoryError(f"Expected a bundle directory. Received: {bundle_dir}")
    if os.path.commonpath([bundle_dir, archive_path]) == bundle_dir:
        raise ValueError(
            f"The archive must be written outside the bundle. Received: {archive_path} inside {bundle_dir}"
        )
    entries = _bundle_entries(bundle_dir)
    parent = os.path.dirname(archive_path)
    os.makedirs(parent, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=parent, prefix=".archive-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for relative, path, is_dir in entries:
                    _add(tar, relative, path, is_dir)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(staging, 0o644)
        sha256 = sha256_file(staging)
        os.replace(staging, archive_path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return sha256


def _bundle_entries(bundle_dir):
    """(archive name, path, is_dir) for everything under `bundle_dir`, sorted by archive name."""
    entries = []
    for root, dirs, files in os.walk(bundle_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise ValueError(
                    f"A bundle holds only files and directories. Received: {path} (a link or special file)"
                )
            relative = os.path.relpath(path, bundle_dir).replace(os.sep, "/")
            entries.append((relative, path, stat.S_ISDIR(mode)))
    return sorted(entries)


def _add(tar, relative, path, is_dir):
    info = tarfile.TarInfo(relative)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if is_dir:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, os.path.getsize(path)
    with open(path, "rb") as f:
        tar.addfile(info, f)


def tree_manifest(directory):
    """A JSON-ready record of an unpacked bundle: every file's size, and the sha256 of `HASHED_FILES`.

    Paths are relative, with "/" separators. A directory holding anything but
    directories and regular files raises ValueError.
    """
    files = {relative: os.path.getsize(path) for relative, path, is_dir in _bundle_entries(directory) if not is_dir}
    hashed = {name: sha256_file(os.path.join(directory, name)) for name in HASHED_FILES if name in files}
    return {"format": MANIFEST_FORMAT, "files": files, "sha256": hashed}


def manifest_difference(directory, manifest_text):
    """Why `directory` no longer matches the manifest in `manifest_text` (bytes or str), or None if it does.

    Checks the set of files and their sizes (one stat each), then the sha256
    of the hashed files. An unreadable or malformed manifest is a difference.
    """
    try:
        manifest = parse_json_object(manifest_text, "manifest", MAX_MANIFEST_BYTES)
    except ValueError as error:
        return str(error)
    files, hashed = manifest.get("files"), manifest.get("sha256")
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict) or not isinstance(hashed, dict):
        return f"expected a {MANIFEST_FORMAT} manifest"
    try:
        entries = _bundle_entries(directory)
    except (OSError, ValueError) as error:
        return str(error)
    found = {relative: path for relative, path, is_dir in entries if not is_dir}
    if set(found) != set(files):
        changed = sorted(set(found) ^ set(files))
        return f"files added or removed: {', '.join(changed[:5])}"
    for relative, path in sorted(found.items()):
        if os.path.getsize(path) != files[relative]:
            return f"{relative} has {os.path.getsize(path)} bytes, expected {files[relative]}"
    for relative, digest in sorted(hashed.items()):
        if relative not in found or sha256_file(found[relative]) != digest:
            return f"{relative} does not match its sha256"
    return None
