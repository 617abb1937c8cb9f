import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from keras_ssl.presets.archive import (
    UnsafeArchiveError,
    extract_archive,
    make_archive,
    manifest_difference,
    tree_manifest,
)

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend

FILES = {
    "saved_model.pb": os.urandom(4096),
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": os.urandom(200_000),
    "assets/keras_ssl/config.json": b'{"class_name": "Functional"}',
    "assets/keras_ssl/metadata.json": b'{"format": "keras_ssl.bundle/1"}',
}


def write_bundle(directory):
    for name, data in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def read_tree(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, names in os.walk(directory)
        for name in names
    }


def test_make_archive_is_deterministic_and_has_no_top_folder(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    sha = make_archive(bundle, tmp_path / "a.tar.gz")
    assert make_archive(bundle, tmp_path / "b.tar.gz") == sha
    assert hashlib.sha256((tmp_path / "a.tar.gz").read_bytes()).hexdigest() == sha
    # The same files with other mtimes and modes give the same bytes.
    copy = shutil.copytree(bundle, tmp_path / "copy")
    for root, _, names in os.walk(copy):
        for name in names:
            os.utime(os.path.join(root, name), (1e9, 1e9))
            os.chmod(os.path.join(root, name), 0o600)
    assert make_archive(copy, tmp_path / "c.tar.gz") == sha
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and "saved_model.pb" in names and "variables" in names
    assert all(m.mtime == 0 and m.uid == m.gid == 0 and m.uname == m.gname == "" for m in members)
    assert {m.mode for m in members if m.isfile()} == {0o644} and {m.mode for m in members if m.isdir()} == {0o755}
    # Different contents, different sha; no staging file left beside the archives.
    (copy / "saved_model.pb").write_bytes(b"changed")
    assert make_archive(copy, tmp_path / "c.tar.gz") != sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "b.tar.gz", "bundle", "c.tar.gz", "copy"]


def test_make_archive_refuses_links_and_an_archive_inside_the_bundle(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    with pytest.raises(ValueError, match="outside the bundle"):
        make_archive(bundle, bundle / "inside.tar.gz")
    os.symlink("/etc/passwd", bundle / "link")
    with pytest.raises(ValueError, match="link or special file"):
        make_archive(bundle, tmp_path / "a.tar.gz")
    assert not (tmp_path / "a.tar.gz").exists()


def test_extract_round_trips_the_bundle(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    make_archive(bundle, tmp_path / "a.tar.gz")
    assert extract_archive(tmp_path / "a.tar.gz", tmp_path / "out") == tmp_path / "out"
    assert read_tree(tmp_path / "out") == FILES
    assert oct(os.stat(tmp_path / "out").st_mode & 0o777) == oct(0o755)


def evil_tar(path, kind, compress=True):
    """A tar holding one ordinary file and then one unsafe member of `kind`."""
    with tarfile.open(path, "w:gz" if compress else "w") as tar:
        good = tarfile.TarInfo("good.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        member = tarfile.TarInfo(
            {"dotdot": "../evil", "absolute": "/tmp/evil", "backslash": "a\\evil"}.get(kind, "evil")
        )
        data = b"pwned"
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            member.type, member.linkname = tarfile.LNKTYPE, "good.txt"
        elif kind == "fifo":
            member.type = tarfile.FIFOTYPE
        elif kind == "device":
            member.type = tarfile.CHRTYPE
        if member.isfile():
            member.size = len(data)
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def assert_nothing_written(tmp_path, target):
    assert not os.path.lexists(target)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract-")]
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("dotdot", r"'\.\./evil'.*'\.\.' component"),
        ("absolute", r"'/tmp/evil'.*absolute path"),
        ("symlink", r"'evil'.*symbolic link"),
        ("hardlink", r"'evil'.*hard link"),
        ("fifo", r"'evil'.*device or fifo"),
        ("device", r"'evil'.*device or fifo"),
        ("backslash", r"backslash"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, kind, message):
    archive = evil_tar(tmp_path / "evil.tar.gz", kind)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_files_that_are_not_whole_tars_are_refused(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(os.urandom(3000))
    with pytest.raises(UnsafeArchiveError, match="not a tar archive.*junk.tar.gz|junk.tar.gz.*not a tar archive"):
        extract_archive(tmp_path / "junk.tar.gz", tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")

    make_archive(write_bundle(tmp_path / "bundle"), tmp_path / "a.tar.gz")
    data = (tmp_path / "a.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArchiveError, match="truncated or corrupt"):
        extract_archive(tmp_path / "cut.tar.gz", tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")

    with tarfile.open(tmp_path / "a.tar.gz") as source, tarfile.open(tmp_path / "plain.tar", "w") as plain:
        for member in source:
            plain.addfile(member, source.extractfile(member) if member.isfile() else None)
    data = (tmp_path / "plain.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArchiveError, match="truncated|corrupt"):
        extract_archive(tmp_path / "cut.tar", tmp_path / "out")
    assert_nothing_written(tmp_path, tmp_path / "out")
    extract_archive(tmp_path / "plain.tar", tmp_path / "out")  # the uncut plain tar extracts
    assert read_tree(tmp_path / "out") == FILES


def test_member_count_and_size_limits(tmp_path):
    archive = tmp_path / "a.tar.gz"
    make_archive(write_bundle(tmp_path / "bundle"), archive)
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        extract_archive(archive, tmp_path / "out", max_members=3)
    with pytest.raises(UnsafeArchiveError, match="more than 1000 bytes"):
        extract_archive(archive, tmp_path / "out", max_bytes=1000)
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_an_existing_target_is_left_untouched(tmp_path):
    archive = tmp_path / "a.tar.gz"
    make_archive(write_bundle(tmp_path / "bundle"), archive)
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        extract_archive(archive, target)
    assert read_tree(target) == {"precious.txt": b"keep me"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".extract-")]


def test_manifest_records_sizes_and_hashes_and_names_the_first_difference(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    (bundle / "assets/keras_ssl/model.weights.h5").write_bytes(b"weights")
    manifest = tree_manifest(bundle)
    assert manifest["files"]["variables/variables.index"] == len(FILES["variables/variables.index"])
    assert set(manifest["sha256"]) == {
        f"assets/keras_ssl/{n}" for n in ("config.json", "metadata.json", "model.weights.h5")
    }
    text = json.dumps(manifest)
    assert manifest_difference(bundle, text) is None
    (bundle / "saved_model.pb").write_bytes(b"x")  # sizes catch any file
    assert manifest_difference(bundle, text) == f"saved_model.pb has 1 bytes, expected {len(FILES['saved_model.pb'])}"
    (bundle / "saved_model.pb").write_bytes(FILES["saved_model.pb"])
    (bundle / "assets/keras_ssl/model.weights.h5").write_bytes(b"WEIGHTS")  # same size: the sha256 tells
    assert manifest_difference(bundle, text) == "assets/keras_ssl/model.weights.h5 does not match its sha256"
    (bundle / "assets/keras_ssl/model.weights.h5").unlink()
    os.symlink(bundle / "saved_model.pb", bundle / "assets/keras_ssl/model.weights.h5")
    assert "a link or special file" in manifest_difference(bundle, text)
    assert "expected a keras_ssl.unpacked/1 manifest" in manifest_difference(bundle, json.dumps({"files": {}}))
    assert "expected valid JSON" in manifest_difference(bundle, b"{truncated")
