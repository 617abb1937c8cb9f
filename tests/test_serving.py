"""Inputs that cannot be fed wrongly, named signatures, a client without keras_ssl, and ONNX.

An image bundle carries its preprocessing (`keras_ssl.layers.ImageModel`):
the Keras model it loads back and its SavedModel both take uint8 pixels in
[0, 255] and float pixels in [0, 1] and give the same features.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones
from keras_ssl.bundle import read_metadata
from keras_ssl.layers import ImageModel, PixelScaling
from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS
from keras_ssl.utils.files import sha256_file


def tiny_encoder():
    return backbones.ConvNet(filters=(4, 8), input_shape=(16, 16, 3))


def pixels(n=3, size=16):
    """A uint8 batch and the same batch as float32 in [0, 1]."""
    x = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype="uint8")
    return x, x.astype("float32") / 255


def test_pixel_scaling_decides_by_dtype():
    x8, xf = pixels()
    layer = PixelScaling()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x8)), xf, atol=1e-7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(xf)), xf)  # float passes through, unscaled
    for wrong in (x8.astype("int32"), x8.astype("uint16"), x8 > 0):
        # torch has no uint16 tensors: Keras converts that array to int32 first, refused all the same.
        with pytest.raises(ValueError, match=rf"Expected images as uint8 .* Received: dtype ({wrong.dtype}|int32)"):
            layer(wrong)


def test_image_model_gives_the_same_features_for_uint8_and_float():
    encoder = tiny_encoder()
    wrapped = ImageModel(encoder)
    x8, xf = pixels()
    expected = encoder.predict(xf, verbose=0)
    np.testing.assert_allclose(wrapped.predict(x8, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(wrapped.predict(xf, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(wrapped(x8)), expected, atol=1e-6)
    # What the wrapper prevents: the bare encoder takes uint8 silently and gives other features.
    assert np.abs(encoder.predict(x8, verbose=0) - expected).max() > 1e-2
    assert wrapped.input_shape == encoder.input_shape and wrapped.output_shape == encoder.output_shape
    assert wrapped.count_params() == encoder.count_params()


def test_image_model_round_trips_its_config_in_safe_mode():
    wrapped = ImageModel(tiny_encoder())
    config = keras.saving.serialize_keras_object(wrapped)
    assert config["registered_name"] == "keras_ssl>ImageModel"
    rebuilt = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)), safe_mode=True)
    assert isinstance(rebuilt, ImageModel)
    rebuilt.set_weights(wrapped.get_weights())
    x8, xf = pixels()
    np.testing.assert_allclose(rebuilt.predict(x8, verbose=0), wrapped.predict(xf, verbose=0), atol=1e-6)


def test_image_model_refuses_models_that_do_not_take_float_images():
    expected = r"one input, a batch of images .* Received: Functional with inputs \[\(None, 8\)\]"
    with pytest.raises(ValueError, match=expected):
        ImageModel(backbones.MLP(8, hidden_dims=(4,), output_dim=4))
    with pytest.raises(ValueError, match=r"floating-point pixels in \[0, 1\]. Received: a model whose input is uint8"):
        inputs = keras.Input((4, 4, 3), dtype="uint8")
        ImageModel(keras.Model(inputs, keras.layers.Flatten()(keras.ops.cast(inputs, "float32"))))


def test_a_classifier_on_the_wrapper_feeds_uint8_through_a_uint8_input():
    wrapped = ImageModel(tiny_encoder())
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    classifier = keras.Model(inputs, keras.layers.Dense(2)(wrapped(inputs)))
    x8, xf = pixels()
    features = wrapped.predict(xf, verbose=0)
    dense = classifier.layers[-1]
    expected = features @ keras.ops.convert_to_numpy(dense.kernel) + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(classifier.predict(x8, verbose=0), expected, atol=1e-5)


def test_unsupported_formats_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"Expected format to be one of 'tf_saved_model', 'onnx' .* format='tflite'"):
        keras_ssl.export(tiny_encoder(), tmp_path / "model", format="tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.savedmodel
def test_a_loaded_image_bundle_takes_uint8_and_float(tmp_path):
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    loaded = keras_ssl.load(path)
    assert isinstance(loaded, ImageModel)
    x8, xf = pixels()
    expected = encoder.predict(xf, verbose=0)
    np.testing.assert_allclose(loaded.predict(x8, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(loaded.predict(xf, verbose=0), expected, atol=1e-5)
    # Exporting the loaded model again does not wrap it twice.
    again = keras_ssl.load(keras_ssl.export(loaded, tmp_path / "again"))
    assert isinstance(again.model, keras.Model) and not isinstance(again.model, ImageModel)
    assert read_metadata(path)["signatures"] == {
        "serve": {
            "inputs": {"images": {"shape": [None, 16, 16, 3], "dtype": "float32"}},
            "outputs": {"features": {"shape": [None, 8], "dtype": "float32"}},
        },
        "serve_uint8": {
            "inputs": {"images": {"shape": [None, 16, 16, 3], "dtype": "uint8"}},
            "outputs": {"features": {"shape": [None, 8], "dtype": "float32"}},
        },
    }


@pytest.mark.savedmodel
def test_a_bundle_without_the_pixel_scaling_still_loads(tmp_path):
    """Bundles written before ImageModel hold the bare encoder's config and weights: they load as they were."""
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    assets = tmp_path / "bundle" / ASSETS
    (assets / CONFIG).write_text(json.dumps(keras.saving.serialize_keras_object(encoder)))
    encoder.save_weights(assets / WEIGHTS)
    metadata = json.loads((assets / METADATA).read_text())
    metadata.pop("signatures")
    metadata["weights_sha256"] = sha256_file(assets / WEIGHTS)
    (assets / METADATA).write_text(json.dumps(metadata))
    loaded = keras_ssl.load(path)
    assert not isinstance(loaded, ImageModel)
    _, xf = pixels()
    np.testing.assert_allclose(loaded.predict(xf, verbose=0), encoder.predict(xf, verbose=0), atol=1e-6)


def saved_model_cli():
    """The TensorFlow CLI: beside this Python, else on PATH, else run as a module."""
    beside = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    found = beside if os.path.isfile(beside) else shutil.which("saved_model_cli")
    return [found] if found else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.large  # three TensorFlow start-ups: ~50 s on a loaded 2-core CPU
@pytest.mark.savedmodel
def test_saved_model_cli_serves_named_signatures_for_uint8_and_float(tmp_path):
    """A client that never imports keras_ssl: TensorFlow's saved_model_cli, fed uint8 and float images."""
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    x8, xf = pixels()
    np.save(tmp_path / "x8.npy", x8)
    np.save(tmp_path / "xf.npy", xf)
    expected = encoder.predict(xf, verbose=0)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": ""}
    shown = subprocess.run(
        [*saved_model_cli(), "show", "--dir", path, "--all"], capture_output=True, text=True, env=env, timeout=300
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for endpoint in ("serve", "serve_uint8", "serving_default"):
        assert f"signature_def['{endpoint}']" in text
    uint8_part = text.split("signature_def['serve_uint8']")[1].split("signature_def[")[0]
    assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8" in uint8_part
    assert "outputs['features'] tensor_info:\n        dtype: DT_FLOAT" in uint8_part
    float_part = text.split("signature_def['serve']")[1].split("signature_def[")[0]
    assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT" in float_part
    for endpoint, batch in (("serve_uint8", "x8"), ("serve", "xf")):
        out = tmp_path / f"out_{batch}"
        run = subprocess.run(
            [*saved_model_cli(), "run", "--dir", path, "--tag_set", "serve", "--signature_def", endpoint]
            + ["--inputs", f"images={tmp_path / batch}.npy", "--outdir", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        np.testing.assert_allclose(np.load(out / "features.npy"), expected, atol=1e-5, err_msg=endpoint)


@pytest.mark.savedmodel
def test_a_text_encoder_serves_token_ids(tmp_path):
    encoder = backbones.TransformerEncoder(vocabulary_size=20, max_length=8, dim=8, depth=1, num_heads=2)
    ids = np.random.default_rng(0).integers(1, 20, (2, 8)).astype("int32")
    path = keras_ssl.export(encoder, tmp_path / "bundle", input_shape=(8,))
    signatures = read_metadata(path)["signatures"]
    assert list(signatures) == ["serve"]
    assert signatures["serve"]["inputs"] == {"token_ids": {"shape": [None, 8], "dtype": "int32"}}
    assert list(signatures["serve"]["outputs"]) == ["features"]
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serve"](token_ids=tf.constant(ids))["features"].numpy()
    np.testing.assert_allclose(served, encoder.predict(ids, verbose=0), atol=1e-5)


def run_onnx(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].type == "tensor(float)"
    assert [o.name for o in session.get_outputs()] == ["features"]
    (served,) = session.run(None, {"images": x})
    return served


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="keras_ssl.export refuses the torch backend")
def test_an_onnx_export_names_its_input_and_output_and_matches_keras(tmp_path):
    # One stage: no max pooling, which jax2onnx 0.17 writes as a MaxPool onnxruntime refuses ("Unsupported pooling
    # size"); the ResNet below has none either (CIFAR stem).
    encoder = backbones.ConvNet(filters=(4,), input_shape=(16, 16, 3))
    _, xf = pixels()
    path = keras_ssl.export(encoder, tmp_path / "encoder.onnx", format="onnx")
    assert path == str(tmp_path / "encoder.onnx") and os.listdir(tmp_path) == ["encoder.onnx"]
    np.testing.assert_allclose(run_onnx(path, xf), encoder.predict(xf, verbose=0), atol=1e-5)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        keras_ssl.export(encoder, path, format="onnx")


@pytest.mark.large  # ~35 s under JAX on a loaded 2-core CPU (jax2onnx), ~7 s under TensorFlow
@pytest.mark.skipif(keras.backend.backend() == "torch", reason="keras_ssl.export refuses the torch backend")
def test_an_onnx_export_of_a_resnet_matches_keras(tmp_path):
    encoder = backbones.ResNet18(width=0.125, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    path = keras_ssl.export(encoder, tmp_path / "encoder.onnx", format="onnx")
    np.testing.assert_allclose(run_onnx(path, x), encoder.predict(x, verbose=0), atol=1e-4)


@pytest.mark.savedmodel
def test_the_cli_export_prints_the_signatures(tmp_path, capsys):
    from keras_ssl import cli

    bundle = keras_ssl.export(tiny_encoder(), tmp_path / "bundle")
    assert cli.main(["export", bundle, str(tmp_path / "again")]) == cli.EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "signature serve: images float32 (None, 16, 16, 3) -> features float32 (None, 8)",
        "signature serve_uint8: images uint8 (None, 16, 16, 3) -> features float32 (None, 8)",
    ]
    assert cli.main(["export", bundle, str(tmp_path / "again.tar.gz")]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert set(json.loads(out)) == {"file", "sha256", "size"}  # stdout stays the card's fields
    assert "signature serve_uint8: images uint8 (None, 16, 16, 3)" in err


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="keras_ssl.export refuses the torch backend")
def test_an_onnx_file_that_does_not_compute_the_model_is_refused(tmp_path):
    from keras_ssl.bundle import check_onnx

    encoder = backbones.ConvNet(filters=(4,), input_shape=(16, 16, 3))
    path = keras_ssl.export(encoder, tmp_path / "encoder.onnx", format="onnx")
    spec = keras.InputSpec(shape=(None, 16, 16, 3), dtype="float32", name="images")
    check_onnx(path, encoder, spec)  # the file it wrote: accepted
    other = backbones.ConvNet(filters=(4,), input_shape=(16, 16, 3))  # other random weights
    with pytest.raises(RuntimeError, match=r"does not compute the model: expected features of shape \(2, 4\)"):
        check_onnx(path, other, spec)
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeError, match="does not run in onnxruntime"):
        check_onnx(str(tmp_path / "broken.onnx"), encoder, spec)
