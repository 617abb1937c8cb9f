import importlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, layers, methods
from keras_ssl.bundle import read_metadata
from keras_ssl.testing import REPO_ROOT
from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS
from keras_ssl.utils.files import sha256_file


def tiny_encoder():
    return backbones.ConvNet(filters=(4, 8), input_shape=(16, 16, 3))


def images(n=3):
    return np.random.default_rng(0).random((n, 16, 16, 3), dtype="float32")


# keras_ssl.export's own advice under torch: save the weights, rebuild the model and export under TensorFlow.
EXPORT_UNDER_TENSORFLOW = """
import json, sys, keras, keras_ssl
model = keras.saving.deserialize_keras_object(json.load(open(sys.argv[1])))
model.load_weights(sys.argv[2])
keras_ssl.export(model, sys.argv[3])
"""


def export_under_tensorflow(model, path):
    """Writes `model`'s bundle from a TensorFlow process (what a torch user does); returns the path."""
    parts = path.parent / f"{path.name}.parts"
    parts.mkdir()
    (parts / "config.json").write_text(json.dumps(keras.saving.serialize_keras_object(model)))
    model.save_weights(parts / "model.weights.h5")
    subprocess.run(
        [
            sys.executable,
            "-c",
            EXPORT_UNDER_TENSORFLOW,
            str(parts / "config.json"),
            str(parts / "model.weights.h5"),
            path,
        ],
        check=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)},
    )
    return path


def test_export_under_torch_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    encoder = tiny_encoder()
    # The refusal comes before any backend work, so every backend's suite checks it by posing as torch.
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(NotImplementedError, match=r"save_weights.*KERAS_BACKEND=tensorflow or jax.*Received: "):
        keras_ssl.export(encoder, tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the recipe of export's torch error; others export")
def test_a_torch_encoder_exported_by_the_recipe_loads_back_under_torch(tmp_path):
    encoder = tiny_encoder()
    restored = keras_ssl.load(export_under_tensorflow(encoder, tmp_path / "bundle"))
    assert read_metadata(tmp_path / "bundle")["backend"] == "tensorflow"
    np.testing.assert_allclose(restored.predict(images(), verbose=0), encoder.predict(images(), verbose=0), atol=1e-5)


@pytest.mark.savedmodel
def test_export_then_load_gives_the_same_outputs(tmp_path):
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    for name in (CONFIG, WEIGHTS, "metadata.json"):
        assert (tmp_path / "bundle" / ASSETS / name).is_file()
    assert (tmp_path / "bundle" / "saved_model.pb").is_file()
    restored = keras_ssl.load(path)
    np.testing.assert_allclose(restored.predict(images(), verbose=0), encoder.predict(images(), verbose=0), atol=1e-6)


@pytest.mark.large
@pytest.mark.savedmodel
def test_a_resnet_with_open_input_size_exports_with_a_fixed_serving_size(tmp_path, backend):
    encoder = backbones.ResNet18(width=0.125)  # input size left open: (None, None, 3)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    if backend == "jax":
        with pytest.raises(ValueError, match="input_shape=.*Received"):
            keras_ssl.export(encoder, tmp_path / "refused")
        assert not (tmp_path / "refused").exists()
    restored = keras_ssl.load(keras_ssl.export(encoder, tmp_path / "bundle", input_shape=(32, 32, 3)))
    np.testing.assert_allclose(restored.predict(x, verbose=0), encoder.predict(x, verbose=0), atol=1e-5)


@pytest.mark.savedmodel
def test_a_method_exports_its_encoder(tmp_path):
    method = methods.SimCLR(tiny_encoder(), projection_dim=4)
    keras_ssl.export(method, tmp_path / "bundle")
    assert keras_ssl.load(tmp_path / "bundle").count_params() == method.encoder.count_params()


@pytest.mark.savedmodel
def test_saved_model_serves_the_same_outputs_in_a_fresh_process(tmp_path):
    encoder = tiny_encoder()
    keras_ssl.export(encoder, tmp_path / "bundle")
    x = images()
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.signatures['serve'](tf.constant(np.load(sys.argv[2])))['features'].numpy())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bundle"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), encoder.predict(x, verbose=0), atol=1e-5)


@pytest.mark.savedmodel
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


# Exports `sys.argv[1]` again with overwrite=True and dies by SIGKILL once the old bundle has been moved aside,
# before the new one takes its place: the worst moment to lose power.
KILLED_BETWEEN_RENAMES = """
import os, signal, sys, keras, keras_ssl
rename = os.rename
def rename_then_die(src, dst):
    rename(src, dst)
    if ".old-" in os.path.basename(dst):
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename_then_die
keras_ssl.export(keras_ssl.backbones.ConvNet(filters=(4, 8), input_shape=(16, 16, 3)), sys.argv[1], overwrite=True)
"""


@pytest.mark.large
@pytest.mark.savedmodel
def test_an_export_killed_mid_way_loses_nothing_and_is_tidied_next_time(tmp_path):
    encoder = tiny_encoder()
    path = keras_ssl.export(encoder, tmp_path / "bundle")
    expected = encoder.predict(images(), verbose=0)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BETWEEN_RENAMES, path],
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert killed.returncode == -9
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert (
        "bundle" not in leftovers
        and any(".old-" in n for n in leftovers)
        and any(n.startswith(".export-") for n in leftovers)
    )
    with pytest.warns(UserWarning, match="restored .*bundle"):
        reloaded = keras_ssl.load(path)  # the old bundle comes back, untouched
    np.testing.assert_allclose(reloaded.predict(images(), verbose=0), expected, atol=1e-5)
    keras_ssl.export(tiny_encoder(), path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the dead export's staging is gone too


@pytest.mark.savedmodel
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


@pytest.mark.large
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
    for module in (
        "methods/simclr.py",
        "trainers/jax.py",
        "trainers/tensorflow.py",
        "trainers/torch.py",
        "augment/image.py",
        "cli/__init__.py",
        "presets/publish.py",
        "layers/pixels.py",
    ):
        assert (installed / module).is_file(), module


# Safe loading: crafted bundles are copies of one tiny exported Dense model with an edited file.
export_module = importlib.import_module("keras_ssl.bundle")


@pytest.fixture(scope="module")
def dense_bundle(tmp_path_factory):
    inputs = keras.Input((4,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(inputs))
    path = tmp_path_factory.mktemp("dense") / "bundle"
    if keras.backend.backend() == "torch":  # export refuses there; loading a bundle works on every backend
        return export_under_tensorflow(model, path)
    return pathlib.Path(export_module.export(model, path))


def crafted(dense_bundle, tmp_path, edit_config=None, metadata_text=None, name="crafted"):
    path = pathlib.Path(shutil.copytree(dense_bundle, tmp_path / name))
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


@pytest.mark.savedmodel
def test_a_compiled_model_loads_compiled_with_its_optimizer_state(tmp_path):
    # Its optimizer makes variables from values, which the unallocated build cannot: it is compiled afterwards, and
    # the optimizer's saved state (in model.weights.h5 beside the weights) is checked against it like the weights.
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(5, name="hidden")(inputs)))
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
    x, y = np.random.default_rng(0).random((8, 4), dtype="float32"), np.zeros((8, 3))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = pathlib.Path(export_module.export(model, tmp_path / "bundle"))
    loaded = export_module.load_bundle(path)
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW) and int(loaded.optimizer.iterations.numpy()) == 2
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    before = loaded.get_weights()
    loaded.fit(x, y, epochs=1, verbose=0)
    assert all(not np.allclose(a, b) for a, b in zip(before, loaded.get_weights()))

    weights = path / ASSETS / WEIGHTS
    slot = next(
        name
        for name, shape in sorted(weight_datasets(weights).items())
        if name.startswith("optimizer/") and shape == (5, 3)
    )
    with h5py.File(weights, "r+") as f:
        del f[slot]
        f.create_dataset(slot, shape=(5, 2**20), dtype="float32")
    metadata = json.loads((path / ASSETS / METADATA).read_text())
    (path / ASSETS / METADATA).write_text(json.dumps({**metadata, "weights_sha256": sha256_file(weights)}))
    with pytest.raises(export_module.InvalidBundleError, match=r"the optimizer's variables.*\(5, 1048576\)"):
        export_module.load_bundle(path)


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


# Size-safe loading: refusals before anything is allocated.


@pytest.fixture(scope="module")
def conv_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("conv") / "bundle"
    if keras.backend.backend() == "torch":  # as dense_bundle
        return export_under_tensorflow(tiny_encoder(), path)
    return pathlib.Path(export_module.export(tiny_encoder(), path))


def weight_datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.update({name: item.shape}) if isinstance(item, h5py.Dataset) else None)
    return found


def declaring(bundle, tmp_path, shape, name):
    """A copy of `bundle` whose first 4-D kernel declares `shape` with no data stored, and matching metadata.

    An attacker controls metadata.json too, so its weights_sha256 is updated: only the size checks stand in the way.
    """
    path = crafted(bundle, tmp_path, name=name)
    weights = path / ASSETS / WEIGHTS
    kernel = next(key for key, old in sorted(weight_datasets(weights).items()) if len(old) == 4)
    with h5py.File(weights, "r+") as f:
        del f[kernel]
        f.create_dataset(kernel, shape=shape, dtype="float32", chunks=(3, 3, 3, 2**12), compression="gzip")
    metadata = json.loads((path / ASSETS / METADATA).read_text())
    (path / ASSETS / METADATA).write_text(json.dumps({**metadata, "weights_sha256": sha256_file(weights)}))
    return path


def dense_units(units):
    def edit(config):
        dense_layer(config)["config"]["units"] = units
        return config

    return edit


def image_encoder(config):
    """The encoder's config inside an exported image model's (export wraps it in keras_ssl.layers.ImageModel)."""
    assert config["registered_name"] == "keras_ssl>ImageModel"
    return config["config"]["model"]


def every_conv(key, value):
    def edit(config):
        for layer in image_encoder(config)["config"]["layers"]:
            if layer["class_name"] == "Conv2D":
                layer["config"][key] = value
        return config

    return edit


# Loads each bundle in a fresh process and reports its time and peak memory growth (VmHWM, reset before each load
# through /proc/self/clear_refs). The address space is capped 2 GiB above the start, so a check that fails to
# refuse hits a MemoryError instead of exhausting a shared machine.
MEASURE_REFUSALS = """
import json, resource, sys, time
import keras_ssl.bundle as bundle


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + 2 * 2**30, resource.RLIM_INFINITY))
results = []
for path, max_bytes in json.loads(sys.argv[1]):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start, before = time.perf_counter(), status("VmRSS")
    try:
        bundle.load_bundle(path, max_bytes=max_bytes)
        error = None
    except Exception as e:
        error = [type(e).__name__, str(e)]
    results.append({"seconds": time.perf_counter() - start, "growth": status("VmHWM") - before, "error": error})
print(json.dumps(results))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures memory through /proc")
def test_oversized_weights_and_configs_are_refused_fast_without_allocating(conv_bundle, dense_bundle, tmp_path):
    """The reported attacks: a tiny bundle whose weights declare a (3, 3, 3, 2**25) tensor (3.4 GiB), and configs
    asking for 2**22 filters: in every convolution (over the budget) or in the first one only (453 MiB, within the
    budget, but the layer after it was built for 4 channels). With the budget raised, the same weights and a
    2**28-unit Dense layer (4 GiB) are still refused, by comparing shapes on a model built without allocating."""
    huge_kernel = declaring(conv_bundle, tmp_path, (3, 3, 3, 2**25), "huge_kernel")
    assert os.path.getsize(huge_kernel / ASSETS / WEIGHTS) < 100_000  # declared, not stored
    many_filters = crafted(conv_bundle, tmp_path, edit_config=every_conv("filters", 2**22), name="many_filters")

    def first_conv_filters(config):
        next(layer for layer in image_encoder(config)["config"]["layers"] if layer["class_name"] == "Conv2D")["config"][
            "filters"
        ] = 2**22
        return config

    first_filters = crafted(conv_bundle, tmp_path, edit_config=first_conv_filters, name="first_filters")
    wide_dense = crafted(dense_bundle, tmp_path, edit_config=dense_units(2**28), name="wide_dense")
    cases = [
        (huge_kernel, None),
        (many_filters, None),
        (first_filters, None),
        (huge_kernel, 2**40),
        (wide_dense, 2**40),
    ]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_REFUSALS, json.dumps([(str(path), budget) for path, budget in cases])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.splitlines()[-1])
    too_large_weights, too_many_filters, unbuildable, mismatched_kernel, mismatched_dense = results
    assert too_large_weights["error"][0] == "BundleTooLargeError"
    assert re.search(
        r"declares 3\.4 GiB \(36238\d{5} bytes\).*\(3, 3, 3, 33554432\).*over the load budget of 2\.0 GiB"
        r".*KERAS_SSL_MAX_BUNDLE_BYTES",
        too_large_weights["error"][1],
    )
    assert too_many_filters["error"][0] == "BundleTooLargeError"
    assert re.search(
        r"config asks for about 717,\d{3},\d{3} parameters.*layer 'stage2_conv2' \(Conv2D\) with 301,989,888",
        too_many_filters["error"][1],
    )
    assert unbuildable["error"][0] == "InvalidBundleError"
    assert re.search(r"expected a config Keras can rebuild.*4194304", unbuildable["error"][1])
    for case in (mismatched_kernel, mismatched_dense):
        assert case["error"][0] == "InvalidBundleError"
        assert "does not match the model its config.json builds" in case["error"][1]
    assert "(3, 3, 3, 33554432)" in mismatched_kernel["error"][1] and "(4, 268435456)" in mismatched_dense["error"][1]
    for case in results:
        assert case["seconds"] < 2 and case["growth"] < 2**30, case


def test_config_size_estimate_is_exact_for_every_backbone():
    models = all_backbones()
    inputs = keras.Input((8, 16))
    x = layers.TransformerBlock(2, 32)(inputs)
    x = keras.layers.MultiHeadAttention(2, 4, value_dim=3)(x, x)
    x = keras.layers.SeparableConv1D(6, 3)(keras.layers.Conv1D(5, 3)(x))
    x = keras.layers.LayerNormalization(center=False)(keras.layers.DepthwiseConv1D(3, depth_multiplier=2)(x))
    x = keras.layers.Conv1DTranspose(4, 2)(keras.layers.Dense(7)(keras.layers.GroupNormalization(groups=3)(x)))
    models["other layers"] = keras.Model(inputs, layers.PrototypeLayer(9)(x))
    models["ViT in a classifier"] = keras.Sequential([keras.Input((16, 16, 3)), models["ViT"], keras.layers.Dense(3)])
    for name, model in models.items():
        config = keras.saving.serialize_keras_object(model)  # tuples, as Keras returns it, and lists, as JSON parses it
        estimate = export_module.estimate_config_size(json.loads(json.dumps(config)))
        assert estimate.parameters == model.count_params() == export_module.estimate_config_size(config).parameters, (
            name
        )
        assert estimate.layers >= len(model.layers) and estimate.nbytes < 2**26, name


@pytest.mark.parametrize(
    "config, message",
    [
        ({"class_name": "ViT", "config": {"name": "vit", "trainable": True, "depth": 2**22, "dim": 128}}, "ViT"),
        (
            {"class_name": "TransformerEncoder", "config": {"name": "t", "trainable": True, "vocabulary_size": 2**40}},
            "TransformerEncoder",
        ),
        (
            {
                "class_name": "Embedding",
                "config": {"name": "e", "trainable": True, "input_dim": 2**20, "output_dim": 2**10},
            },
            "Embedding",
        ),
    ],
    ids=["vit-depth", "vocabulary", "embedding"],
)
def test_check_config_size_refuses_backbone_arguments_over_the_budget(config, message):
    with pytest.raises(export_module.BundleTooLargeError, match="over the load budget.*max_bytes") as info:
        export_module.check_config_size(config)
    assert f"({message})" in str(info.value)
    assert export_module.check_config_size(config, max_bytes=2**50).parameters > 2**29


def test_load_budget_from_argument_environment_and_default(dense_bundle, monkeypatch):
    monkeypatch.delenv("KERAS_SSL_MAX_BUNDLE_BYTES", raising=False)
    assert export_module.max_load_bytes() == 2 * 2**30 and export_module.max_load_bytes(123) == 123
    for text, expected in [("4GiB", 4 * 2**30), ("500MB", 500 * 10**6), (" 1.5 KiB ", 1536), ("4096", 4096)]:
        monkeypatch.setenv("KERAS_SSL_MAX_BUNDLE_BYTES", text)
        assert export_module.max_load_bytes() == expected
    for bad in ("-1", "4 parsecs", "0.1", "lots"):
        monkeypatch.setenv("KERAS_SSL_MAX_BUNDLE_BYTES", bad)
        with pytest.raises(ValueError, match="KERAS_SSL_MAX_BUNDLE_BYTES: expected a positive number.*Received"):
            export_module.max_load_bytes()
    with pytest.raises(ValueError, match="max_bytes to be a positive int"):
        export_module.max_load_bytes(0)
    monkeypatch.setenv("KERAS_SSL_MAX_BUNDLE_BYTES", "1KiB")  # less than one layer's overhead
    with pytest.raises(export_module.BundleTooLargeError, match=r"1\.0 KiB \(1024 bytes\)"):
        keras_ssl.load(dense_bundle)
    assert keras_ssl.load(dense_bundle, max_bytes=2**30).output_shape == (None, 3)  # the argument wins


def test_read_weight_shapes_reads_the_declared_shapes_only(dense_bundle, tmp_path, monkeypatch):
    weights = dense_bundle / ASSETS / WEIGHTS
    shapes = export_module.read_weight_shapes(weights)
    assert {name: shape for name, (shape, _) in shapes.items()} == weight_datasets(weights)
    assert sorted(shape for shape, _ in shapes.values()) == [(3,), (4, 3)]
    monkeypatch.setattr(export_module, "MAX_WEIGHT_ENTRIES", 3)
    with pytest.raises(export_module.BundleTooLargeError, match="more than 3 HDF5 objects"):
        export_module.read_weight_shapes(weights)


@pytest.mark.parametrize("kind", ["soft-link", "external-link", "external-data", "not-hdf5"])
def test_weights_stored_elsewhere_are_refused(dense_bundle, tmp_path, kind):
    weights = tmp_path / "model.weights.h5"
    shutil.copyfile(dense_bundle / ASSETS / WEIGHTS, weights)
    (tmp_path / "secret.bin").write_bytes(bytes(48))
    if kind == "not-hdf5":
        weights.write_bytes(b"not an HDF5 file")
    else:
        with h5py.File(weights, "r+") as f:
            if kind == "soft-link":
                f["layers/extra"] = h5py.SoftLink("/layers/dense")
            elif kind == "external-link":
                f["layers/extra"] = h5py.ExternalLink(str(tmp_path / "secret.h5"), "/")
            else:
                f.create_dataset(
                    "layers/extra", shape=(12,), dtype="float32", external=[(str(tmp_path / "secret.bin"), 0, 48)]
                )
    message = {"not-hdf5": "expected an HDF5 weights file", "external-data": "stored elsewhere"}.get(kind, "Link at")
    with pytest.raises(export_module.InvalidBundleError, match=message):
        export_module.read_weight_shapes(weights)


def test_a_refused_build_leaves_no_variables_for_keras_to_allocate(dense_bundle, tmp_path):
    from keras.src.backend.common import global_state

    queued = list(global_state.get_global_attribute("uninitialized_variables", None) or [])
    path = crafted(dense_bundle, tmp_path, edit_config=dense_units(2**28))
    with pytest.raises(
        export_module.InvalidBundleError, match=r"in the model but not the file: \['dense/kernel \(4, 268435456\)"
    ):
        export_module.load_bundle(path, max_bytes=2**40)
    assert list(global_state.get_global_attribute("uninitialized_variables", None) or []) == queued
    with keras.StatelessScope():
        pass  # would allocate 4 GiB here if the refused model's variables were still queued
    assert export_module.load_bundle(dense_bundle).count_params() == 15  # and a good bundle still loads


def test_config_whose_built_variables_exceed_the_budget_is_refused(dense_bundle, tmp_path, monkeypatch):
    # Without its build_config the Dense layer is built when called, on 4 features, where the estimate assumes 1.
    def unbuilt_wide_dense(config):
        dense = dense_layer(config)
        dense.pop("build_config")
        dense["config"]["units"] = 1000
        return config

    path = crafted(dense_bundle, tmp_path, edit_config=unbuilt_wide_dense)
    monkeypatch.setattr(export_module, "LAYER_OVERHEAD_BYTES", 0)
    assert export_module.estimate_config_size(json.loads((path / ASSETS / CONFIG).read_text())).nbytes == 8000
    with pytest.raises(export_module.BundleTooLargeError, match=r"the model it builds has 19\.5 KiB \(20000 bytes\)"):
        export_module.load_bundle(path, max_bytes=10_000)
    with pytest.raises(
        export_module.InvalidBundleError, match=r"in the model but not the file: \['dense/kernel \(4, 1000\)"
    ):
        export_module.load_bundle(path, max_bytes=20_000)
