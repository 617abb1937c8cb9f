import importlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, methods
from keras_ssl.bundle import read_metadata
from keras_ssl.testing import REPO_ROOT
from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS


def tiny_encoder():
    return backbones.ConvNet(filters=(4, 8), input_shape=(16, 16, 3))


def images(n=3):
    return np.random.default_rng(0).random((n, 16, 16, 3), dtype="float32")


def test_export_then_load_gives_the_same_outputs(tmp_path):
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    for name in (CONFIG, WEIGHTS, "metadata.json"):
        assert (tmp_path / "bundle" / ASSETS / name).is_file()
    assert (tmp_path / "bundle" / "saved_model.pb").is_file()
    restored = keras_ssl.load(path)
    np.testing.assert_allclose(restored.predict(images(), verbose=0), encoder.predict(images(), verbose=0), atol=1e-6)


def test_a_resnet_with_open_input_size_exports_with_a_fixed_serving_size(tmp_path, backend):
    encoder = backbones.ResNet18(width=0.125)  # input size left open: (None, None, 3)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    if backend == "jax":
        with pytest.raises(ValueError, match="input_shape=.*Received"):
            keras_ssl.export(encoder, tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
    restored = keras_ssl.load(keras_ssl.export(encoder, tmp_path / "bundle", input_shape=(32, 32, 3)))
    np.testing.assert_allclose(restored.predict(x, verbose=0), encoder.predict(x, verbose=0), atol=1e-5)


def test_a_method_exports_its_encoder(tmp_path):
    method = methods.SimCLR(tiny_encoder(), projection_dim=4)
    keras_ssl.export(method, tmp_path / "bundle")
    assert keras_ssl.load(tmp_path / "bundle").count_params() == method.encoder.count_params()


def test_saved_model_serves_the_same_outputs_in_a_fresh_process(tmp_path):
    encoder = tiny_encoder()
    keras_ssl.export(encoder, tmp_path / "bundle")
    x = images()
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.signatures['serve'](tf.constant(np.load(sys.argv[2])))['output_0'].numpy())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bundle"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), encoder.predict(x, verbose=0), atol=1e-5)


def test_export_never_replaces_an_existing_path_unless_asked(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_ssl.export(tiny_encoder(), target)
    assert (target / "precious.txt").read_text() == "keep me"
    keras_ssl.export(tiny_encoder(), target, overwrite=True)
    assert not (target / "precious.txt").exists() and (target / ASSETS / CONFIG).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging left behind


def test_corrupt_weights_and_lambda_layers_are_refused(tmp_path):
    path = keras_ssl.export(tiny_encoder(), tmp_path / "bundle")
    weights = os.path.join(path, ASSETS, WEIGHTS)
    with open(weights, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"garbage!")
    with pytest.raises(ValueError, match="sha256"):
        keras_ssl.load(path)

    path = keras_ssl.export(tiny_encoder(), tmp_path / "bundle", overwrite=True)
    inputs = keras.Input((4,))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    config_path = os.path.join(path, ASSETS, CONFIG)
    with open(config_path, "w") as f:
        json.dump(keras.saving.serialize_keras_object(lambda_model), f)
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        keras_ssl.load(path)


def test_load_of_a_missing_or_foreign_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        keras_ssl.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="not a keras_ssl bundle"):
        keras_ssl.load(tmp_path)


def test_the_package_installs_without_editable_mode(tmp_path):
    # `pip install .` must ship every module and the zoo cards, not only `-e`.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
    )
    installed = tmp_path / "keras_ssl"
    for module in ("methods/simclr.py", "trainers/jax.py", "trainers/tensorflow.py", "augment/image.py", "cli.py"):
        assert (installed / module).is_file(), module


# Safe loading: crafted bundles are copies of one tiny exported Dense model with an edited file.
export_module = importlib.import_module("keras_ssl.bundle")


@pytest.fixture(scope="module")
def dense_bundle(tmp_path_factory):
    inputs = keras.Input((4,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(inputs))
    return pathlib.Path(export_module.export(model, tmp_path_factory.mktemp("dense") / "bundle"))


def crafted(dense_bundle, tmp_path, edit_config=None, metadata_text=None):
    path = pathlib.Path(shutil.copytree(dense_bundle, tmp_path / "crafted"))
    if edit_config is not None:
        config_path = path / ASSETS / CONFIG
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps(edit_config(config)))
    if metadata_text is not None:
        (path / ASSETS / METADATA).write_text(metadata_text)
    return path


def lambda_config(config):
    inputs = keras.Input((4,))
    return keras.saving.serialize_keras_object(
        keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2, name="sneaky")(inputs))
    )


def dense_layer(config):
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")


def set_in_dense(key, value, inner=False):
    def edit(config):
        target = dense_layer(config)["config"]["kernel_initializer"] if inner else dense_layer(config)
        target[key] = value
        return config

    return edit


def deeply_nested(config):
    node = dense_layer(config)["config"]
    for _ in range(250):
        node["extra"] = {}
        node = node["extra"]
    return config


def test_the_untouched_crafting_bundle_loads(dense_bundle, tmp_path):
    model = export_module.load_bundle(crafted(dense_bundle, tmp_path, edit_config=lambda config: config))
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda_config, r"'Lambda'.*layer 'sneaky'"),
        (set_in_dense("module", "os"), r"module 'os'.*layer 'dense'"),
        (set_in_dense("module", "keras_sslx.layers"), r"module 'keras_sslx.layers'"),
        (set_in_dense("module", "keras\n"), r"module 'keras\\n'"),
        (set_in_dense("registered_name", "evil>Thing", inner=True), r"'evil>Thing'.*layer 'dense'"),
        (set_in_dense("class_name", "TFSMLayer"), r"'TFSMLayer'"),
        (deeply_nested, r"deeper than 200 levels.*layer 'dense'"),
    ],
    ids=["lambda", "module", "module-prefix", "module-newline", "registered-name", "tfsmlayer", "deep"],
)
def test_unsafe_configs_are_refused_before_deserialising(dense_bundle, tmp_path, monkeypatch, edit, message):
    path = crafted(dense_bundle, tmp_path, edit_config=edit)
    monkeypatch.setattr(
        keras.saving, "deserialize_keras_object", lambda *a, **k: pytest.fail("deserialised an unsafe config")
    )
    with pytest.raises(export_module.UnsafeBundleError, match=message):
        export_module.load_bundle(path)


def test_oversized_and_malformed_configs_are_refused(dense_bundle, tmp_path, monkeypatch):
    path = crafted(dense_bundle, tmp_path)
    monkeypatch.setattr(export_module, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(export_module.InvalidBundleError, match="expected at most 100 bytes"):
        export_module.load_bundle(path)
    monkeypatch.undo()
    for text, message in [("{not json", "expected valid JSON"), ("[1, 2]", "expected a JSON object. Received: list")]:
        (path / ASSETS / CONFIG).write_text(text)
        with pytest.raises(export_module.InvalidBundleError, match=message):
            export_module.load_bundle(path)


def test_metadata_with_a_bad_sha_is_refused(dense_bundle, tmp_path):
    metadata = json.loads((dense_bundle / ASSETS / METADATA).read_text())
    path = crafted(dense_bundle, tmp_path, metadata_text=json.dumps({**metadata, "weights_sha256": "ABC"}))
    with pytest.raises(
        export_module.InvalidBundleError, match="weights_sha256 to be 64 lowercase hex digits. Received: 'ABC'"
    ):
        export_module.load_bundle(path)
    with pytest.raises(export_module.InvalidBundleError, match="weights_sha256"):
        read_metadata(path)


VALID_METADATA = {
    "format": "keras_ssl.bundle/1",
    "weights_sha256": "0" * 64,
    "input_shape": [None, 4],
    "output_shape": [None, 3],
}


@pytest.mark.parametrize(
    "text, message",
    [
        (b"\xff\xfe{}", "expected UTF-8 JSON"),
        (b"[]", "expected a JSON object. Received: list"),
        (b'{"format": "keras_ssl.bundle/1", "x": NaN}', "NaN is not allowed"),
        (b'{"format": "keras_ssl.bundle/1", "x": -Infinity}', "-Infinity is not allowed"),
        (b'{"format": "keras_ssl.bundle/2"}', "expected format 'keras_ssl.bundle/1'. Received: 'keras_ssl.bundle/2'"),
        (b'{"weights_sha256": "' + b"0" * 64 + b'"}', "expected format .* Received: None"),
        (json.dumps({**VALID_METADATA, "weights_sha256": "g" * 64}), "64 lowercase hex"),
        (json.dumps({**VALID_METADATA, "weights_sha256": "0" * 64 + "\n"}), "64 lowercase hex"),
        (json.dumps({**VALID_METADATA, "input_shape": [None, "4"]}), "input_shape to be a list of ints or nulls"),
        (json.dumps({**VALID_METADATA, "output_shape": [True]}), "output_shape to be a list"),
        (json.dumps({**VALID_METADATA, "pad": "x" * 2**20}), "expected at most 1048576"),
        (b"[" * 100_000, "expected valid JSON"),
        (42, "expected JSON text. Received: int"),
    ],
)
def test_parse_metadata_refuses_anything_but_the_documented_shape(text, message):
    with pytest.raises(export_module.InvalidBundleError, match=message):
        export_module.parse_metadata(text)


def test_parse_metadata_accepts_what_export_writes(dense_bundle):
    assert export_module.parse_metadata(json.dumps(VALID_METADATA)) == VALID_METADATA
    assert export_module.parse_metadata(json.dumps({**VALID_METADATA, "input_shape": [[None, 4], [None, 2]]}))[
        "input_shape"
    ][1] == [None, 2]
    metadata = export_module.parse_metadata((dense_bundle / ASSETS / METADATA).read_bytes())
    assert metadata == read_metadata(dense_bundle) and metadata["output_shape"] == [None, 3]


def all_backbones():
    conv = backbones.ConvNet(filters=(4, 8), input_shape=(16, 16, 3))
    return {
        "ConvNet": conv,
        "MLP": backbones.MLP(4, hidden_dims=(8,), output_dim=4),
        "ResNet18": backbones.ResNet18(width=0.125),
        "ResNet34": backbones.ResNet34(width=0.125),
        "ResNet50": backbones.ResNet50(width=0.125),
        "ViT": backbones.ViT(image_size=16, patch_size=4, dim=16, depth=1, num_heads=2),
        "TransformerEncoder": backbones.TransformerEncoder(50, max_length=8, dim=16, depth=1, num_heads=2),
        "mirror_decoder": backbones.mirror_decoder(conv),
    }


def test_every_backbone_config_passes_check_config_safe():
    registered = set()
    for model in all_backbones().values():
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
        export_module.check_config_safe(config)
        registered |= set(re.findall(r'"registered_name": "(keras_ssl>\w+)"', json.dumps(config)))
    # The Transformer backbones are keras_ssl registrations (their config is their arguments), which the check lets
    # through.
    assert {"keras_ssl>ViT", "keras_ssl>TransformerEncoder"} <= registered
