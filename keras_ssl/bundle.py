"""The export bundle: one directory that TF Serving serves and Keras fine-tunes.

Layout:
    <bundle>/saved_model.pb, variables/      TensorFlow SavedModel, `serve` signature
    <bundle>/assets/keras_ssl/config.json    the Keras model config (rebuilt in safe_mode)
    <bundle>/assets/keras_ssl/model.weights.h5
    <bundle>/assets/keras_ssl/metadata.json  versions, input spec, sha256 of the weights

The bundle is written into a temporary directory beside `path` and renamed into
place at the end, so an interrupted export never leaves a half-written bundle
and never destroys an existing one.
"""

import datetime
import json
import os
import re
import shutil
import tempfile

import keras

# Imported for their side effect: they register the serialisable layers and backbones a bundle's config names.
from keras_ssl import augment, backbones, layers  # noqa: F401
from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS
from keras_ssl.utils.checks import host_callbacks_off
from keras_ssl.utils.files import SHA256_PATTERN, sha256_file
from keras_ssl.utils.strict_json import parse_json_object

MAX_CONFIG_BYTES = 16 * 2**20  # a config larger than this is refused, not parsed
MAX_METADATA_BYTES = 2**20
MAX_CONFIG_DEPTH = 200
BUNDLE_FORMAT = "keras_ssl.bundle/1"
SAFE_MODULE = re.compile(r"^keras(_ssl)?(\.[A-Za-z_][A-Za-z0-9_]*)*$")
UNSAFE_CLASSES = {
    "Lambda": "a Lambda layer runs arbitrary Python code",
    "TFSMLayer": "a TFSMLayer loads another SavedModel from a path",
    "__lambda__": "a serialised lambda is Python bytecode",
}


class UnsafeBundleError(ValueError):
    """A bundle whose model config would run or import code outside Keras and keras_ssl."""


class InvalidBundleError(ValueError):
    """A bundle whose files are not the documented shape (bad JSON, fields, sizes or checksums)."""


def export(model, path, overwrite=False, metadata=None, input_shape=None, extra_assets=None):
    """Writes `model` (an encoder or any Keras model) as a bundle at `path`.

    Args:
        model: a built Keras model. A keras_ssl method exports its encoder.
        path: the bundle directory to create.
        overwrite: replace an existing bundle at `path`; without it an
            existing path raises FileExistsError and is left untouched.
        metadata: extra JSON-serialisable fields for metadata.json.
        input_shape: the shape of one input the serving signature takes
            (`(height, width, channels)` for images, `(length,)` for token
            ids), for models whose input size is left open. TensorFlow can
            serve any size without it; under JAX it is required for open-size
            image models (the SavedModel's gradients cannot be traced over a
            symbolic image size through strided convolutions) and for
            Transformers over open lengths.
        extra_assets: `{file name: source path}` copied into
            `assets/keras_ssl/` (e.g. a text model's `tokenizer.json`).

    Returns:
        The bundle path.
    """
    from keras_ssl import __version__
    from keras_ssl.methods import Method

    if isinstance(model, Method):
        model = model.encoder
    if not model.built:
        raise ValueError("Expected a built model (call it on a batch first). Received: an unbuilt model")
    signature = None
    if input_shape is not None:
        spec = keras.InputSpec(shape=(None, *input_shape), dtype=model.inputs[0].dtype)
        signature = [spec]
    elif keras.backend.backend() == "jax" and len(model.input_shape) == 4 and None in model.input_shape[1:3]:
        raise _open_size_error(model)
    extra_assets = dict(extra_assets or {})
    for name in extra_assets:
        if name in (CONFIG, WEIGHTS, METADATA) or os.path.basename(name) != name or name.startswith("."):
            raise ValueError(
                f"extra_assets names must be plain file names other than the bundle's own. Received: {name!r}"
            )
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        bundle = os.path.join(staging, "bundle")
        try:
            with host_callbacks_off():  # JAX cannot serialize the token-id check's host callback
                model.export(bundle, format="tf_saved_model", input_signature=signature, verbose=False)
        except Exception as error:
            # JAX traces open sizes symbolically; some layers (attention masks) cannot compare such sizes.
            if keras.backend.backend() == "jax" and signature is None and "symbolic" in str(error):
                raise _open_size_error(model) from error
            raise
        assets = os.path.join(bundle, ASSETS)
        os.makedirs(assets, exist_ok=True)
        with open(os.path.join(assets, CONFIG), "w") as f:
            json.dump(keras.saving.serialize_keras_object(model), f)
        model.save_weights(os.path.join(assets, WEIGHTS))
        for name, source in extra_assets.items():
            shutil.copyfile(source, os.path.join(assets, name))
        info = {
            "format": BUNDLE_FORMAT,
            "keras_ssl_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "input_shape": list(model.input_shape),
            "output_shape": list(model.output_shape),
            "weights_sha256": sha256_file(os.path.join(assets, WEIGHTS)),
            **(metadata or {}),
        }
        with open(os.path.join(assets, METADATA), "w") as f:
            json.dump(info, f, indent=2)
        if os.path.exists(path):
            old = path + ".old-" + os.path.basename(staging)
            os.rename(path, old)
            os.rename(bundle, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(bundle, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _open_size_error(model):
    return ValueError(
        "Under the JAX backend this model needs a fixed input size for the serving signature: pass "
        "`input_shape=(height, width, channels)` for images or `input_shape=(length,)` for token ids. "
        f"Received: a model with input shape {model.input_shape}"
    )


def parse_metadata(text, source=METADATA):
    """Parses and validates metadata.json text or bytes; returns a dict or raises `InvalidBundleError`.

    Expected: at most 1 MiB of UTF-8 JSON holding an object whose `format` is
    "keras_ssl.bundle/1"; `weights_sha256`, if present, 64 lowercase hex
    digits; `input_shape` / `output_shape`, if present, lists of ints or nulls
    (or, for several inputs or outputs, lists of such lists); no NaN or
    Infinity anywhere.
    """
    info = parse_json_object(text, source, MAX_METADATA_BYTES, error=InvalidBundleError)
    if info.get("format") != BUNDLE_FORMAT:
        raise InvalidBundleError(f"{source}: expected format {BUNDLE_FORMAT!r}. Received: {_short(info.get('format'))}")
    sha = info.get("weights_sha256")
    if "weights_sha256" in info and not (isinstance(sha, str) and SHA256_PATTERN.fullmatch(sha)):
        raise InvalidBundleError(
            f"{source}: expected weights_sha256 to be 64 lowercase hex digits. Received: {_short(sha)}"
        )
    for key in ("input_shape", "output_shape"):
        if key in info and not _is_shape(info[key], nested=True):
            raise InvalidBundleError(
                f"{source}: expected {key} to be a list of ints or nulls (or a list of such lists). "
                f"Received: {_short(info[key])}"
            )
    return info


def _is_shape(value, nested):
    if not isinstance(value, list):
        return False
    if nested and value and all(isinstance(v, list) for v in value):
        return all(_is_shape(v, nested=False) for v in value)
    return all(v is None or (type(v) is int and v >= 0) for v in value)


def _read_limited(path, limit):
    """The bytes of `path`, refusing a file larger than `limit` before reading it."""
    size = os.path.getsize(path)
    if size > limit:
        raise InvalidBundleError(
            f"{path}: expected at most {limit} bytes. Received: {size} bytes; refusing to parse it"
        )
    with open(path, "rb") as f:
        return f.read(limit + 1)


def read_metadata(path):
    """The parsed, validated metadata.json of a bundle (see `parse_metadata`)."""
    metadata_path = os.path.join(path, ASSETS, METADATA)
    return parse_metadata(_read_limited(metadata_path, MAX_METADATA_BYTES), source=metadata_path)


def check_config_safe(config):
    """Refuses a serialised Keras config that would run or import code outside Keras and keras_ssl.

    Walks the nested dicts and lists before anything is deserialised and
    raises `UnsafeBundleError`, naming the layer, for: a `Lambda` or
    `TFSMLayer` class, a serialised lambda (`__lambda__`, or a Keras 2
    `function_type` of "lambda"), a `module` other than `keras`, `keras.*`,
    `keras_ssl` or `keras_ssl.*`, a `registered_name` "package>Name" whose
    package is not `keras_ssl`, and nesting deeper than 200 levels.
    """
    stack = [(config, "config", 1, None)]
    while stack:
        node, where, depth, layer = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise UnsafeBundleError(
                f"Unsafe bundle config: nested deeper than {MAX_CONFIG_DEPTH} levels at {_place(where, layer)}."
            )
        if isinstance(node, list):
            stack.extend((item, f"{where}[{i}]", depth + 1, layer) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        layer = _layer_name(node) or layer
        reason = _unsafe_reason(node)
        if reason:
            raise UnsafeBundleError(f"Unsafe bundle config: {reason} in {_place(where, layer)}; refusing to load it.")
        stack.extend((value, f"{where}.{key}", depth + 1, layer) for key, value in node.items())


def _unsafe_reason(node):
    class_name = node.get("class_name")
    if isinstance(class_name, str) and class_name in UNSAFE_CLASSES:
        return f"class_name {_short(class_name)} ({UNSAFE_CLASSES[class_name]})"
    if node.get("function_type") == "lambda":
        return "a function_type of 'lambda' (a serialised lambda is Python bytecode)"
    module = node.get("module")
    if "module" in node and module is not None and not (isinstance(module, str) and SAFE_MODULE.fullmatch(module)):
        return f"module {_short(module)} (only keras and keras_ssl modules are allowed)"
    registered = node.get("registered_name")
    if registered is not None and not isinstance(registered, str):
        return f"registered_name {_short(registered)} (expected a string or null)"
    if isinstance(registered, str) and ">" in registered and registered.split(">", 1)[0] != "keras_ssl":
        return f"registered_name {_short(registered)} (only keras_ssl>... registrations are allowed)"
    return None


def _layer_name(node):
    """The name of a serialised layer or model (its config has `name` and `trainable`), else None."""
    config = node.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str) and "trainable" in config:
        return config["name"]
    return None


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _place(where, layer):
    where = where if len(where) <= 200 else "..." + where[-200:]
    return f"layer {_short(layer)} at {where}" if layer else where


def load_bundle(path, trainable=True):
    """Rebuilds the Keras model of a bundle written by `export` (`keras_ssl.load` calls it for bundles).

    The config is parsed and checked with `check_config_safe` (no Lambda
    layers, no modules outside Keras and keras_ssl), then rebuilt with Keras
    `safe_mode`; metadata.json is validated with `parse_metadata`, and the
    weights are checked against the sha256 recorded at export time before
    loading.

    Raises:
        FileNotFoundError: nothing at `path`.
        InvalidBundleError: not a bundle, a config that is too large or not a
            JSON object, invalid metadata, or weights that do not match their
            sha256.
        UnsafeBundleError: a config that `check_config_safe` refuses.
    """
    path = os.fspath(path)
    assets = os.path.join(path, ASSETS)
    if not os.path.isdir(assets):
        if os.path.isdir(path):
            raise InvalidBundleError(
                f"{path} is not a keras_ssl bundle: expected {os.path.join(ASSETS, CONFIG)} inside it."
            )
        raise FileNotFoundError(f"No bundle at {path}")
    config_path = os.path.join(assets, CONFIG)
    config = parse_json_object(
        _read_limited(config_path, MAX_CONFIG_BYTES), config_path, MAX_CONFIG_BYTES, error=InvalidBundleError
    )
    check_config_safe(config)
    metadata = read_metadata(path)
    weights = os.path.join(assets, WEIGHTS)
    expected = metadata.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise InvalidBundleError(f"Corrupt bundle: {weights} does not match the sha256 recorded in {METADATA}.")
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    model.load_weights(weights)
    model.trainable = trainable
    return model


def load_saved_model(path, trainable=True, endpoint="serve"):
    """A plain TensorFlow SavedModel (no keras_ssl assets) as a Keras layer that fine-tunes with any optimizer.

    TensorFlow backend only: the SavedModel's graph is TensorFlow code.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "A plain SavedModel (no assets/keras_ssl inside) can only be loaded under the TensorFlow backend; "
            f"export it with keras_ssl.export to get a bundle that loads on every backend. Received: backend "
            f"{keras.backend.backend()!r} for {path}"
        )
    return _SavedModelLayer(os.fspath(path), call_endpoint=endpoint, trainable=trainable)


class _SavedModelLayer(keras.layers.TFSMLayer):
    """TFSMLayer whose variables get Keras-valid names.

    TFSMLayer names each wrapped variable after the SavedModel's ("dense/kernel:0"
    -> "dense_kernel:0"); Adam and AdamW name their slots after it, and ":" is not
    a valid TensorFlow scope name, so fitting fails (SGD has no slots and works).
    The wrapper still holds the SavedModel's own tf.Variable, so training updates
    the variables the restored graph reads.
    """

    def _add_existing_weight(self, weight):
        name = weight.name.replace("/", "_").replace(":", "_")
        variable = keras.Variable(
            initializer=weight, trainable=weight.trainable, dtype=weight.dtype, shape=weight.shape, name=name
        )
        self._track_variable(variable)
