import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, methods
from keras_ssl.export import ASSETS, CONFIG, WEIGHTS
from keras_ssl.testing import REPO_ROOT


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
        check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
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
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(tmp_path), str(REPO_ROOT)],
        check=True,
    )
    installed = tmp_path / "keras_ssl"
    for module in ("methods/simclr.py", "trainers/jax.py", "trainers/tensorflow.py", "augment/image.py", "cli.py"):
        assert (installed / module).is_file(), module
