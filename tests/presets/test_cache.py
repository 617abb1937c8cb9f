"""The download cache against a local HTTP server that misbehaves on request.

Subprocess tests load cache.py standalone (no keras_ssl import, so no
TensorFlow) to start fast and to check it really is stdlib-only.
"""

import collections
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from keras_ssl.presets import cache
from keras_ssl.testing import REPO_ROOT

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend

PAYLOAD = os.urandom(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "encoder.tar.gz"

# Imports the cache (which must not load a framework), then (after a barrier, so all start at once) fetches.
SCRIPT = """
import os, sys, time
url, sha, size, name, cache_dir, ready, go = sys.argv[1:]
from keras_ssl.presets import cache
heavy = {"keras", "tensorflow", "numpy", "jax"} & set(sys.modules)
assert not heavy, f"keras_ssl.presets.cache imported {heavy}"
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
print(cache.fetch([url], sha, int(size), name, cache_dir=cache_dir, progress=False))
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Behaviour by first path segment: ok, mirror, delay, truncated, wrong, slow; anything else 404."""

    def do_GET(self):
        server = self.server
        with server.lock:
            server.counts[self.path] += 1
        kind = self.path.split("/")[1]
        if kind not in ("ok", "mirror", "delay", "truncated", "wrong", "slow"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if kind == "delay":
            time.sleep(0.3)  # widens the race between concurrent loaders
        if kind == "truncated":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])  # then the connection closes
        elif kind == "wrong":
            self.wfile.write(bytes(len(PAYLOAD)))
        elif kind == "slow":
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            server.stop.wait(30)  # until the client is killed and the test ends
        else:
            self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("KERAS_SSL_MIRROR", "KERAS_SSL_OFFLINE", "KERAS_SSL_HOME"):
        monkeypatch.delenv(var, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.lock, httpd.counts, httpd.stop = threading.Lock(), collections.Counter(), threading.Event()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()


def _fetch(urls, cache_dir, **kwargs):
    return cache.fetch(urls, SHA, len(PAYLOAD), NAME, cache_dir=cache_dir, progress=False, **kwargs)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _cached_files(cache_dir):
    """Every file under downloads/ but the lock files."""
    found = []
    for root, _, files in os.walk(os.path.join(cache_dir, "downloads")):
        found += [os.path.join(root, f) for f in files if f != ".lock"]
    return found


def _spawn(server, tmp_path, kind, index):
    args = [f"{server.base}/{kind}/{NAME}", SHA, str(len(PAYLOAD)), NAME, str(tmp_path)]
    args += [str(tmp_path / f"ready-{index}"), str(tmp_path / "go")]
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def _wait_for(condition, what, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_download_then_cache_hit(server, tmp_path):
    url = f"{server.base}/ok/{NAME}"
    path = _fetch([url], tmp_path)
    assert path == os.path.join(str(tmp_path), "downloads", SHA, NAME)
    assert _read(path) == PAYLOAD
    assert _fetch([url], tmp_path) == path
    assert server.counts[f"/ok/{NAME}"] == 1  # the second fetch never touched the network
    assert _cached_files(tmp_path) == [path]


def test_truncated_response_fails_and_leaves_nothing(server, tmp_path):
    url = f"{server.base}/truncated/{NAME}"
    with pytest.raises(cache.PresetDownloadError, match=f"truncated: received {len(PAYLOAD) // 2} of") as info:
        _fetch([url], tmp_path)
    assert url in str(info.value)
    assert _cached_files(tmp_path) == []  # neither the final file nor a .part


def test_checksum_mismatch_fails_and_leaves_nothing(server, tmp_path):
    with pytest.raises(cache.PresetDownloadError, match=f"checksum mismatch: expected {SHA}"):
        _fetch([f"{server.base}/wrong/{NAME}"], tmp_path)
    assert _cached_files(tmp_path) == []


def test_falls_back_to_next_url(server, tmp_path):
    path = _fetch([f"{server.base}/404/{NAME}", f"{server.base}/ok/{NAME}"], tmp_path)
    assert _read(path) == PAYLOAD
    assert server.counts[f"/404/{NAME}"] == 1 and server.counts[f"/ok/{NAME}"] == 1


def test_all_urls_fail_lists_each_reason(server, tmp_path):
    urls = [f"{server.base}/404/{NAME}", f"{server.base}/wrong/{NAME}"]
    with pytest.raises(cache.PresetDownloadError) as info:
        _fetch(urls, tmp_path)
    assert f"{urls[0]}: HTTP 404" in str(info.value) and f"{urls[1]}: checksum mismatch" in str(info.value)


def test_recovers_from_killed_download(server, tmp_path):
    proc = _spawn(server, tmp_path, "slow", 0)
    (tmp_path / "go").touch()
    folder = tmp_path / "downloads" / SHA
    _wait_for(lambda: folder.is_dir() and any(f.endswith(".part") for f in os.listdir(folder)), "a .part file")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    path = _fetch([f"{server.base}/ok/{NAME}"], tmp_path)  # the dead process's flock is gone with it
    assert _read(path) == PAYLOAD
    assert _cached_files(tmp_path) == [path]  # the stale .part was removed


def test_concurrent_loaders_download_once(server, tmp_path):
    procs = [_spawn(server, tmp_path, "delay", i) for i in range(8)]
    _wait_for(
        lambda: all((tmp_path / f"ready-{i}").exists() or procs[i].poll() is not None for i in range(8)), "loaders"
    )
    (tmp_path / "go").touch()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, [err for _, err in results]
    paths = {out.strip() for out, _ in results}
    assert paths == {os.path.join(str(tmp_path), "downloads", SHA, NAME)}
    assert _read(paths.pop()) == PAYLOAD
    assert server.counts[f"/delay/{NAME}"] == 1


@pytest.mark.parametrize("damage", ["flip_byte", "truncate"])
def test_corrupt_cache_is_fetched_again(server, tmp_path, damage):
    url = f"{server.base}/ok/{NAME}"
    path = _fetch([url], tmp_path)
    with open(path, "r+b") as f:
        if damage == "flip_byte":
            f.seek(1234)
            f.write(bytes([PAYLOAD[1234] ^ 0xFF]))
        else:
            f.truncate(len(PAYLOAD) // 3)
    with pytest.warns(UserWarning, match="corrupt"):
        assert _fetch([url], tmp_path) == path
    assert _read(path) == PAYLOAD
    assert server.counts[f"/ok/{NAME}"] == 2


def _forbid_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("offline mode opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_missing_file_raises(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "1")
    _forbid_sockets(monkeypatch)
    with pytest.raises(cache.OfflineError, match="KERAS_SSL_OFFLINE") as info:
        _fetch([f"{server.base}/ok/{NAME}"], tmp_path)
    message = str(info.value)
    assert NAME in message and os.path.join(str(tmp_path), "downloads", SHA, NAME) in message
    assert "KERAS_SSL_MIRROR" in message
    assert server.counts[f"/ok/{NAME}"] == 0


def test_offline_cached_file_is_returned(server, tmp_path, monkeypatch):
    url = f"{server.base}/ok/{NAME}"
    path = _fetch([url], tmp_path)
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "TRUE")
    _forbid_sockets(monkeypatch)
    assert _fetch([url], tmp_path) == path
    assert _read(path) == PAYLOAD


def test_offline_uses_file_mirror(server, tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / NAME).write_bytes(PAYLOAD)
    monkeypatch.setenv("KERAS_SSL_MIRROR", (tmp_path / "mirror").as_uri())
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "yes")
    _forbid_sockets(monkeypatch)
    assert _read(_fetch([f"{server.base}/ok/{NAME}"], tmp_path / "cache")) == PAYLOAD


def test_mirror_is_tried_first(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SSL_MIRROR", f"{server.base}/mirror/")
    path = _fetch([f"{server.base}/ok/{NAME}"], tmp_path)
    assert _read(path) == PAYLOAD
    assert server.counts[f"/mirror/{NAME}"] == 1 and server.counts[f"/ok/{NAME}"] == 0


def test_file_url(server, tmp_path):
    source = tmp_path / "source" / NAME
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    path = _fetch([source.as_uri()], tmp_path / "cache")
    assert _read(path) == PAYLOAD and path != str(source)


def test_cache_home(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache.cache_home() == str(tmp_path / "user" / ".cache" / "keras_ssl")
    monkeypatch.setenv("KERAS_SSL_HOME", str(tmp_path / "env"))
    assert cache.cache_home() == str(tmp_path / "env") and (tmp_path / "env").is_dir()
    assert cache.cache_home(tmp_path / "arg") == str(tmp_path / "arg")


@pytest.mark.parametrize(
    "sha256, size, filename, expected",
    [("abc", 10, NAME, "64 lowercase hex"), (SHA, 0, NAME, "positive int"), (SHA, 10, "../x", "plain file name")],
    ids=["sha256", "size", "filename"],
)
def test_bad_arguments(tmp_path, sha256, size, filename, expected):
    with pytest.raises(ValueError, match=expected):
        cache.fetch(["http://127.0.0.1:9/x"], sha256, size, filename, cache_dir=tmp_path)


def test_no_urls(server, tmp_path):
    with pytest.raises(cache.PresetDownloadError, match="no URLs"):
        _fetch([], tmp_path)
