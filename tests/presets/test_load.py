"""keras_ssl.load: bundle directories, archives, file:// and http(s):// URLs, preset names, plain SavedModels."""

import functools
import http.server
import json
import os
import pathlib
import socket
import threading

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import presets
from keras_ssl.bundle import BundleTooLargeError
from keras_ssl.presets.archive import make_archive
from keras_ssl.utils.files import sha256_file

X = np.random.default_rng(0).random((5, 8), dtype=np.float32)


def tiny_model():
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(4, name="proj")(keras.layers.Dense(6, activation="relu")(inputs)))


@pytest.fixture
def bundle(tmp_path):
    if keras.backend.backend() == "torch":  # every test built on this bundle (or its archive) skips there
        pytest.skip("keras_ssl.export writes no SavedModel under KERAS_BACKEND=torch")
    model = tiny_model()
    path = keras_ssl.export(model, tmp_path / "bundle")
    return path, model.predict(X, verbose=0)


@pytest.fixture
def archive(bundle, tmp_path):
    path, expected = bundle
    sha256 = make_archive(path, str(tmp_path / "tiny.tar.gz"))
    return str(tmp_path / "tiny.tar.gz"), sha256, expected


@pytest.fixture
def cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KERAS_SSL_HOME", str(home))
    for name in ("KERAS_SSL_OFFLINE", "KERAS_SSL_MIRROR", presets.ZOO_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path on 127.0.0.1; counts requests per path."""
    hits = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def card(name, archive_file, sha256, size, urls=()):
    return {
        "format": "keras_ssl.preset/1",
        "name": name,
        "description": "tiny",
        "method": "simclr",
        "backbone": {"class_name": "MLP", "config": {}},
        "input": {"kind": "vectors", "shape": [8]},
        "recipe": {"epochs": 1},
        "metrics": {},
        "weights": {"file": archive_file, "sha256": sha256, "size": size, "urls": list(urls)},
    }


def private_zoo(root, monkeypatch, entry, shipped_archive=None):
    folder = root / entry["name"]
    folder.mkdir(parents=True)
    (folder / "preset.json").write_text(json.dumps(entry))
    if shipped_archive:
        with open(shipped_archive, "rb") as src, open(folder / entry["weights"]["file"], "wb") as dst:
            dst.write(src.read())
    monkeypatch.setenv(presets.ZOO_PATH_ENV, str(root))


def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_bundle_directory_and_file_url(bundle, cache):
    path, expected = bundle
    for source in (path, "file://" + path):
        model = keras_ssl.load(source)
        np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
    assert keras_ssl.load(path, trainable=False).trainable is False


def test_archive_is_unpacked_once_into_the_cache(archive, cache):
    path, sha256, expected = archive
    model = keras_ssl.load(path)
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
    unpacked = cache / "bundles" / sha256
    stamp = os.stat(unpacked).st_mtime_ns
    keras_ssl.load("file://" + path)
    assert os.stat(unpacked).st_mtime_ns == stamp


def test_damaged_unpacked_copy_is_unpacked_again(archive, cache):
    path, sha256, expected = archive
    keras_ssl.load(path)
    weights = cache / "bundles" / sha256 / "assets" / "keras_ssl" / "model.weights.h5"
    weights.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="model.weights.h5 has 7 bytes"):
        model = keras_ssl.load(path)
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
    assert sha256_file(weights) != sha256_file(path)  # a real weights file again, not the garbage


def lambda_config():
    inputs = keras.Input((8,))
    return keras.saving.serialize_keras_object(keras.Model(inputs, keras.layers.Lambda(lambda t: t)(inputs)))


def test_edited_unpacked_config_is_unpacked_again_on_every_kind_of_edit(archive, cache):
    path, sha256, expected = archive
    keras_ssl.load(path)
    unpacked = cache / "bundles" / sha256
    manifest = json.loads((cache / "bundles" / f"{sha256}.manifest.json").read_text())
    config = unpacked / "assets" / "keras_ssl" / "config.json"
    assert manifest["files"]["assets/keras_ssl/config.json"] == config.stat().st_size
    assert manifest["sha256"]["assets/keras_ssl/config.json"] == sha256_file(config)
    original = config.read_bytes()
    # A same-size edit (only the sha256 tells), then a config the loader refuses outright (it used to fail every load).
    edits = [original.replace(b'"proj"', b'"prox"'), json.dumps(lambda_config()).encode()]
    for edited in edits:
        config.write_bytes(edited)
        with pytest.warns(UserWarning, match="config.json (does not match its sha256|has)"):
            model = keras_ssl.load(path)
        np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
        assert config.read_bytes() == original
    (unpacked / "stray.txt").write_text("added")
    with pytest.warns(UserWarning, match="files added or removed: stray.txt"):
        keras_ssl.load(path)
    assert not (unpacked / "stray.txt").exists()


def test_cache_entry_without_a_manifest_is_unpacked_again(archive, cache):
    path, sha256, expected = archive
    keras_ssl.load(path)
    (cache / "bundles" / f"{sha256}.manifest.json").unlink()  # an entry from an older keras_ssl, or a killed unpack
    (cache / "bundles" / sha256 / "assets" / "keras_ssl" / "config.json").write_text(json.dumps(lambda_config()))
    np.testing.assert_allclose(keras_ssl.load(path).predict(X, verbose=0), expected, atol=1e-6)
    assert (cache / "bundles" / f"{sha256}.manifest.json").is_file()


def test_checksum_fragment_is_verified_on_every_kind_of_location(archive, cache, tmp_path, monkeypatch):
    path, sha256, expected = archive
    size = os.path.getsize(path)
    wrong = "0" * 64
    for location in (path, pathlib.Path(path).as_uri()):
        model = keras_ssl.load(f"{location}#sha256={sha256.upper()}&size={size}")
        np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
        with pytest.raises(presets.ChecksumMismatchError, match=f"expected sha256 {wrong}.*Received: {sha256}"):
            keras_ssl.load(f"{location}#sha256={wrong}")
        with pytest.raises(presets.ChecksumMismatchError, match=f"expected {size + 1} bytes.*Received: {size} bytes"):
            keras_ssl.load(f"{location}#sha256={sha256}&size={size + 1}")
        with pytest.raises(ValueError, match="64 hex digits. Received: 'sha256=abc'"):
            keras_ssl.load(f"{location}#sha256=abc")
    bundle_dir = os.path.join(os.path.dirname(path), "bundle")
    with pytest.raises(ValueError, match="is a directory"):
        keras_ssl.load(f"{bundle_dir}#sha256={sha256}")
    # A preset name: the fragment must agree with the card, checked before anything is fetched.
    private_zoo(tmp_path / "zoo", monkeypatch, card("tiny_mlp_toy", "tiny.tar.gz", sha256, size), shipped_archive=path)
    with pytest.raises(presets.ChecksumMismatchError, match="tiny_mlp_toy#sha256=0+: expected sha256"):
        keras_ssl.load(f"tiny_mlp_toy#sha256={wrong}")
    np.testing.assert_allclose(
        keras_ssl.load(f"tiny_mlp_toy#sha256={sha256}").predict(X, verbose=0), expected, atol=1e-6
    )


def test_a_hash_sign_in_a_file_name_is_not_a_fragment(archive, cache, tmp_path):
    path, sha256, expected = archive
    renamed = tmp_path / "tiny#1.tar.gz"
    os.rename(path, renamed)
    np.testing.assert_allclose(keras_ssl.load(str(renamed)).predict(X, verbose=0), expected, atol=1e-6)


def test_max_bytes_reaches_the_bundle_checks(archive, bundle, cache):
    path, _, _ = archive
    for source in (path, bundle[0]):
        with pytest.raises(BundleTooLargeError, match=r"over the load budget of 1\.0 KiB"):
            keras_ssl.load(source, max_bytes=1024)


def test_https_url_needs_and_checks_its_sha256(archive, cache, server):
    path, sha256, expected = archive
    base, hits = server
    with pytest.raises(ValueError, match="#sha256="):
        keras_ssl.load(f"{base}/tiny.tar.gz")
    with pytest.raises(presets.PresetDownloadError, match="checksum mismatch"):
        keras_ssl.load(f"{base}/tiny.tar.gz#sha256={'0' * 64}")
    model = keras_ssl.load(f"{base}/tiny.tar.gz#sha256={sha256}&size={os.path.getsize(path)}")
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)
    assert hits["/tiny.tar.gz"] == 2


def test_preset_downloads_then_loads_offline(archive, cache, server, tmp_path, monkeypatch):
    path, sha256, expected = archive
    base, hits = server
    private_zoo(
        tmp_path / "zoo",
        monkeypatch,
        card("tiny_mlp_toy", "tiny.tar.gz", sha256, os.path.getsize(path), [f"{base}/tiny.tar.gz"]),
    )
    np.testing.assert_allclose(keras_ssl.load("tiny_mlp_toy").predict(X, verbose=0), expected, atol=1e-6)
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "1")
    no_sockets(monkeypatch)
    np.testing.assert_allclose(keras_ssl.load("tiny_mlp_toy").predict(X, verbose=0), expected, atol=1e-6)
    assert hits["/tiny.tar.gz"] == 1


def test_offline_preset_not_cached_is_a_clear_error(archive, cache, tmp_path, monkeypatch):
    path, sha256, _ = archive
    private_zoo(
        tmp_path / "zoo",
        monkeypatch,
        card("tiny_mlp_toy", "tiny.tar.gz", sha256, os.path.getsize(path), ["https://example.invalid/tiny.tar.gz"]),
    )
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "1")
    no_sockets(monkeypatch)
    with pytest.raises(presets.OfflineError, match="KERAS_SSL_OFFLINE"):
        keras_ssl.load("tiny_mlp_toy")


def test_shipped_archive_loads_without_network(archive, cache, tmp_path, monkeypatch):
    path, sha256, expected = archive
    private_zoo(
        tmp_path / "zoo",
        monkeypatch,
        card("tiny_mlp_toy", "tiny.tar.gz", sha256, os.path.getsize(path)),
        shipped_archive=path,
    )
    no_sockets(monkeypatch)
    np.testing.assert_allclose(keras_ssl.load("tiny_mlp_toy").predict(X, verbose=0), expected, atol=1e-6)


def test_shipped_archive_that_does_not_match_its_card_is_refused(archive, cache, tmp_path, monkeypatch):
    path, sha256, _ = archive
    private_zoo(
        tmp_path / "zoo",
        monkeypatch,
        card("tiny_mlp_toy", "tiny.tar.gz", "f" * 64, os.path.getsize(path)),
        shipped_archive=path,
    )
    with pytest.raises(presets.PresetUnavailableError, match="does not match the sha256"):
        keras_ssl.load("tiny_mlp_toy")


def test_missing_paths_are_clear_errors(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="No bundle"):
        keras_ssl.load(str(tmp_path / "nowhere" / "bundle"))
    with pytest.raises(FileNotFoundError, match="No bundle"):
        keras_ssl.load("file://" + str(tmp_path / "nowhere.tar.gz"))


@pytest.mark.savedmodel
def test_plain_savedmodel_fine_tunes_with_adamw(tmp_path, backend):
    model = tiny_model()
    model.export(str(tmp_path / "plain"), verbose=False)  # a SavedModel without keras_ssl assets
    if backend != "tensorflow":
        with pytest.raises(ValueError, match="TensorFlow backend"):
            keras_ssl.load(str(tmp_path / "plain"))
        return
    layer = keras_ssl.load(str(tmp_path / "plain"))
    before = layer(X).numpy()
    np.testing.assert_allclose(before, model.predict(X, verbose=0), atol=1e-6)
    classifier = keras.Sequential([keras.Input((8,)), layer, keras.layers.Dense(1)])
    classifier.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
    classifier.fit(X, np.ones((5, 1)), epochs=3, verbose=0)
    assert np.abs(layer(X).numpy() - before).max() > 1e-4  # the SavedModel's own variables were trained


def test_publish_puts_a_bundle_behind_a_card(bundle, cache, tmp_path, monkeypatch):
    from keras_ssl.presets.publish import publish

    path, expected = bundle
    entry = card("tiny_mlp_toy", "unused.tar.gz", "0" * 64, 1)
    entry["weights"] = None
    private_zoo(tmp_path / "zoo", monkeypatch, entry)
    assert "tiny_mlp_toy" in presets.list_recipes() and "tiny_mlp_toy" not in presets.list_presets()
    published = publish(path, tmp_path / "zoo" / "tiny_mlp_toy", metrics={"knn": 0.5}, notes="trained for a test")
    archive = tmp_path / "zoo" / "tiny_mlp_toy" / "tiny_mlp_toy.tar.gz"
    assert published.weights.sha256 == sha256_file(archive) and published.weights.size == os.path.getsize(archive)
    assert published.metrics == {"knn": 0.5} and published.notes == "trained for a test"
    assert "tiny_mlp_toy" in presets.list_presets()
    no_sockets(monkeypatch)
    np.testing.assert_allclose(keras_ssl.load("tiny_mlp_toy").predict(X, verbose=0), expected, atol=1e-6)
    archive.write_bytes(b"the archive a refused edit must not touch")
    with pytest.raises(ValueError, match="Metrics must be numbers"):
        publish(path, tmp_path / "zoo" / "tiny_mlp_toy", metrics={"knn": "high"})
    assert presets.get_preset("tiny_mlp_toy").metrics == {"knn": 0.5}  # the refused edit left the card as it was
    assert archive.read_bytes() == b"the archive a refused edit must not touch"  # and the archive


def test_every_preset_loads_offline_in_a_fresh_cache(cache, monkeypatch):
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "1")
    no_sockets(monkeypatch)
    names = presets.list_presets()
    assert names, "the package ships no preset"
    for name in names:
        card = presets.get_preset(name)
        encoder = keras_ssl.load(name)
        shape = [1 if d is None else d for d in card.input["shape"]]
        if card.input_kind == "images":
            features = encoder.predict(np.full((2, *shape), 0.5, "float32"), verbose=0)
        else:
            features = encoder.predict(np.full((2, *shape), 7, "int32"), verbose=0)
        assert np.isfinite(features).all() and features.shape[0] == 2, name


def test_text_presets_come_with_their_tokenizers(cache, monkeypatch):
    monkeypatch.setenv("KERAS_SSL_OFFLINE", "1")
    no_sockets(monkeypatch)
    text_presets = [n for n in presets.list_presets() if presets.get_preset(n).input_kind == "tokens"]
    assert {presets.get_preset(n).method for n in text_presets} >= {"word2vec"}
    sentence = "the film is a charming and often affecting journey"
    for name in text_presets:
        tokenizer, encoder = keras_ssl.load_tokenizer(name), keras_ssl.load(name)
        if presets.get_preset(name).method == "masked_lm":
            ids = np.asarray(tokenizer.encode([sentence], max_length=encoder.input_shape[1]))
        else:
            ids = keras.ops.convert_to_numpy(tokenizer(sentence.split()))[None]
        assert (ids > 1).sum() >= 5, f"{name}: most words of an ordinary sentence are unknown to its tokenizer"
        features = keras.ops.convert_to_numpy(encoder(ids))
        assert np.isfinite(features).all() and features.shape[0] == 1, name
    with pytest.raises(ValueError, match="has no tokenizer"):
        keras_ssl.load_tokenizer("simclr_resnet")


def test_the_shipped_simclr_preset_gives_the_same_features_for_uint8_and_float(cache):
    """The preset carries its pixel scaling: a uint8 batch and the same batch / 255 as float32 agree."""
    from keras_ssl.layers import ImageModel
    from keras_ssl.testing import cifar10_sample

    encoder = keras_ssl.load("simclr_resnet18_cifar10")
    assert isinstance(encoder, ImageModel)
    x8 = np.asarray(cifar10_sample()[0][0][:8])
    assert x8.dtype == np.uint8 and x8.shape == (8, 32, 32, 3)
    from_float = encoder.predict(x8.astype("float32") / 255, verbose=0)
    np.testing.assert_allclose(encoder.predict(x8, verbose=0), from_float, atol=1e-5)
    # Not vacuous: the bare encoder inside, fed the uint8 values as floats, gives other features.
    assert np.abs(encoder.model.predict(x8.astype("float32"), verbose=0) - from_float).max() > 1e-2
