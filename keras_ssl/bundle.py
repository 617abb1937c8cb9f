"""The export bundle: one directory that TF Serving serves and Keras fine-tunes.

Layout:
    <bundle>/saved_model.pb, variables/      TensorFlow SavedModel, `serve` signature
    <bundle>/assets/keras_ssl/config.json    the Keras model config (rebuilt in safe_mode)
    <bundle>/assets/keras_ssl/model.weights.h5
    <bundle>/assets/keras_ssl/metadata.json  versions, input spec, sha256 of the weights

The bundle is written into a temporary directory beside `path` and renamed into
place at the end, so an interrupted export never leaves a half-written bundle
and never destroys an existing one. An export killed outright (SIGKILL, power
loss) cannot clean up; the next export or load of the same path does (see
`recover_interrupted_export`).
"""

import collections
import copy
import datetime
import inspect
import json
import math
import os
import re
import shutil
import tempfile
import warnings

import keras
import numpy as np

# Imported for their side effect: they register the serialisable layers and backbones a bundle's config names.
from keras_ssl import augment, backbones, layers  # noqa: F401
from keras_ssl.layers.pixels import ImageModel
from keras_ssl.utils.bundle_layout import ASSETS, CONFIG, METADATA, WEIGHTS
from keras_ssl.utils.checks import host_callbacks_off
from keras_ssl.utils.files import SHA256_PATTERN, sha256_file
from keras_ssl.utils.strict_json import parse_json_object

MAX_CONFIG_BYTES = 16 * 2**20  # a config larger than this is refused, not parsed
MAX_METADATA_BYTES = 2**20
MAX_CONFIG_DEPTH = 200
BUNDLE_FORMAT = "keras_ssl.bundle/1"
SAFE_MODULE = re.compile(r"^keras(_ssl)?(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# The load budget: bundles whose config or weights ask for more memory are refused before anything is allocated.
MAX_BYTES_ENV = "KERAS_SSL_MAX_BUNDLE_BYTES"
DEFAULT_MAX_BYTES = 2 * 2**30
MAX_WEIGHT_ENTRIES = 100_000  # HDF5 groups, datasets and links visited in model.weights.h5 before refusing
BYTES_PER_PARAMETER = 4  # the config estimate assumes float32 weights; the built model's check uses real dtypes
# Python objects per Keras layer: ~13-16 KiB measured (TransformerBlock sublayers, both backends), doubled.
LAYER_OVERHEAD_BYTES = 32 * 2**10
UNSAFE_CLASSES = {
    "Lambda": "a Lambda layer runs arbitrary Python code",
    "TFSMLayer": "a TFSMLayer loads another SavedModel from a path",
    "__lambda__": "a serialised lambda is Python bytecode",
}


class UnsafeBundleError(ValueError):
    """A bundle whose model config would run or import code outside Keras and keras_ssl."""


class InvalidBundleError(ValueError):
    """A bundle whose files are not the documented shape (bad JSON, fields, sizes or checksums)."""


class BundleTooLargeError(InvalidBundleError):
    """A bundle whose config or weights file asks for more memory than the load budget (`max_bytes`) allows."""


FORMATS = ("tf_saved_model", "onnx")
FLOAT_ENDPOINT, UINT8_ENDPOINT = "serve", "serve_uint8"
FEATURES = "features"  # the output name of every served signature


def export(
    model,
    path,
    overwrite=False,
    metadata=None,
    input_shape=None,
    extra_assets=None,
    format="tf_saved_model",  # noqa: A002 (Keras's own name for it, as in `model.export(path, format=...)`)
):
    """Writes `model` (an encoder or any Keras model) as a bundle at `path`, or as one ONNX file.

    An image model (one input, a batch of float images) is first wrapped in
    `keras_ssl.layers.ImageModel`, so the bundle carries its preprocessing:
    the Keras model it loads back and the served SavedModel both take uint8
    pixels in [0, 255] and float pixels in [0, 1] and give the same features.
    The SavedModel's signatures have stable names (see `signature_specs`):
    `serve` (the default) takes `images` as float32 in [0, 1] (or
    `token_ids` as int32 for text encoders, `inputs` otherwise), `serve_uint8`
    takes `images` as uint8, and both return `features`.

    Args:
        model: a built Keras model. A keras_ssl method exports its encoder.
        path: the bundle directory to create (for `format="onnx"`, the .onnx file).
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
        format: "tf_saved_model" (the default: the bundle) or "onnx": one
            ONNX file written by Keras's exporter (`model.export(path,
            format="onnx")`; tf2onnx under TensorFlow, jax2onnx under JAX),
            whose input is float32 `images` in [0, 1] (or the model's own
            input for other models) and whose output is `features`.

    Returns:
        The bundle path (the .onnx file's path for ONNX).

    Raises:
        NotImplementedError: under the torch backend (export from TensorFlow or JAX).
        ValueError: an unbuilt model, or a format other than the two above.
    """
    from keras_ssl.methods import Method

    if format not in FORMATS:
        raise ValueError(
            f"Expected format to be one of {', '.join(repr(f) for f in FORMATS)} (a bundle, or one ONNX file). "
            f"Received: format={format!r}"
        )
    # --- torch: no SavedModel export (Keras writes one from torch only through torch_xla) ---
    if keras.backend.backend() == "torch":
        raise NotImplementedError(
            "keras_ssl.export writes a TensorFlow SavedModel, which it cannot write from the torch backend. "
            'Save the encoder\'s weights with `encoder.save_weights("encoder.weights.h5")`, then, under '
            "KERAS_BACKEND=tensorflow or jax, rebuild the same encoder, `load_weights` and call keras_ssl.export. "
            "Received: KERAS_BACKEND=torch"
        )
    # --- end torch ---
    if isinstance(model, Method):
        model = model.encoder
    if not model.built:
        raise ValueError("Expected a built model (call it on a batch first). Received: an unbuilt model")
    if input_shape is None and keras.backend.backend() == "jax" and _open_image_size(model):
        raise _open_size_error(model)
    model = with_pixel_scaling(model)
    specs = signature_specs(model, input_shape)
    path = os.path.abspath(os.fspath(path))
    if format == "onnx":
        return _export_onnx(model, path, overwrite, specs)
    extra_assets = dict(extra_assets or {})
    for name in extra_assets:
        if name in (CONFIG, WEIGHTS, METADATA) or os.path.basename(name) != name or name.startswith("."):
            raise ValueError(
                f"extra_assets names must be plain file names other than the bundle's own. Received: {name!r}"
            )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    recover_interrupted_export(path)
    staging = tempfile.mkdtemp(prefix=f".export-{os.path.basename(path)}-{os.getpid()}-", dir=parent)
    try:
        bundle = os.path.join(staging, "bundle")
        _write_saved_model(model, bundle, specs, input_shape)
        _write_keras_assets(model, bundle, specs, metadata, extra_assets)
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


def is_image_model(model):
    """Whether `model` has one input that is a batch of float images `(batch, height, width, channels)`."""
    inputs = getattr(model, "inputs", None)
    if isinstance(model, ImageModel) or not isinstance(model, keras.Model) or not inputs or len(inputs) != 1:
        return isinstance(model, ImageModel)
    return len(inputs[0].shape) == 4 and keras.backend.is_float_dtype(inputs[0].dtype)


def with_pixel_scaling(model):
    """`model` wrapped in `ImageModel` (uint8 and float pixels) when it is an image model not yet wrapped."""
    if is_image_model(model) and not isinstance(model, ImageModel):
        return ImageModel(model)
    return model


def signature_specs(model, input_shape=None):
    """`{endpoint: (input name, InputSpec)}` of the served signatures of `model`, or None when Keras names them.

    An image model gets `serve` (float32 `images`) and `serve_uint8` (uint8
    `images`); a model over integer ids (a text encoder) gets `serve` with
    int32 `token_ids`; another model with one input and one output gets
    `serve` with `inputs`. Every one of them returns `{"features": ...}`.
    Models with several inputs or outputs keep Keras's own `serve`
    signature (None).
    """
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
        return None
    shape = (None, *input_shape) if input_shape is not None else tuple(inputs[0].shape)
    dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    if isinstance(model, ImageModel):
        return {
            FLOAT_ENDPOINT: ("images", keras.InputSpec(shape=shape, dtype=dtype, name="images")),
            UINT8_ENDPOINT: ("images", keras.InputSpec(shape=shape, dtype="uint8", name="images")),
        }
    name = "inputs" if keras.backend.is_float_dtype(dtype) else "token_ids"
    return {FLOAT_ENDPOINT: (name, keras.InputSpec(shape=shape, dtype=dtype, name=name))}


def _features_fn(model, name):
    """A function of one argument called `name` returning `{"features": model(x)}` (the signature's names)."""

    def features(x):
        return {FEATURES: model(x, training=False)}

    # The SavedModel names a signature's inputs after the function's parameters.
    features.__signature__ = inspect.Signature([inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    return features


def _write_saved_model(model, bundle, specs, input_shape):
    with host_callbacks_off():  # JAX cannot serialize the token-id check's host callback
        try:
            if specs is None:
                signature = None
                if input_shape is not None:
                    signature = [keras.InputSpec(shape=(None, *input_shape), dtype=model.inputs[0].dtype)]
                model.export(bundle, format="tf_saved_model", input_signature=signature, verbose=False)
                return
            archive = keras.export.ExportArchive()
            archive.track(model)
            for endpoint, (name, spec) in specs.items():
                archive.add_endpoint(endpoint, _features_fn(model, name), input_signature=[spec])
            archive.write_out(bundle, verbose=False)
        except Exception as error:
            # JAX traces open sizes symbolically; some layers (attention masks) cannot compare such sizes.
            if keras.backend.backend() == "jax" and input_shape is None and "symbolic" in str(error):
                raise _open_size_error(model) from error
            raise


def _write_keras_assets(model, bundle, specs, metadata, extra_assets):
    from keras_ssl import __version__

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
        **({"signatures": describe_signatures(model, specs)} if specs else {}),
        **(metadata or {}),
    }
    with open(os.path.join(assets, METADATA), "w") as f:
        json.dump(info, f, indent=2)


def describe_signatures(model, specs):
    """`{endpoint: {"inputs": {name: {shape, dtype}}, "outputs": {"features": {shape, dtype}}}}` for metadata."""
    output = {"shape": list(model.output_shape), "dtype": keras.backend.standardize_dtype(model.outputs[0].dtype)}
    return {
        endpoint: {
            "inputs": {name: {"shape": list(spec.shape), "dtype": keras.backend.standardize_dtype(spec.dtype)}},
            "outputs": {FEATURES: output},
        }
        for endpoint, (name, spec) in specs.items()
    }


def format_signatures(signatures):
    """One line per signature, e.g. `serve: images float32 (None, 32, 32, 3) -> features float32 (None, 64)`."""
    lines = []
    for endpoint, signature in signatures.items():
        parts = []
        for side in ("inputs", "outputs"):
            parts.append(
                ", ".join(
                    f"{name} {spec['dtype']} ({', '.join(str(d) for d in spec['shape'])})"
                    for name, spec in signature[side].items()
                )
            )
        lines.append(f"{endpoint}: {parts[0]} -> {parts[1]}")
    return lines


def _export_onnx(model, path, overwrite, specs):
    """Writes one ONNX file at `path` with Keras's exporter, atomically (a temporary file renamed into place)."""
    if os.path.isdir(path) or (os.path.exists(path) and not overwrite):
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    if specs is not None:
        name, spec = specs[FLOAT_ENDPOINT]
        exported = _Features(model, name)
        signature = [spec]
    else:
        exported, signature = model, None
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".export-{os.path.basename(path)}-{os.getpid()}-", dir=parent)
    os.close(handle)
    try:
        with host_callbacks_off():
            exported.export(staging, format="onnx", input_signature=signature, verbose=False)
        if specs is not None:
            _name_onnx_output(staging, FEATURES)
            check_onnx(staging, model, specs[FLOAT_ENDPOINT][1])
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def _name_onnx_output(path, name):
    """Renames the one output of the ONNX file at `path` to `name` (jax2onnx calls it `v_0`; tf2onnx keeps the key)."""
    import onnx

    proto = onnx.load(path)
    (output,) = proto.graph.output
    old = output.name
    if old == name:
        return
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    output.name = name
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def check_onnx(path, model, spec):
    """Runs the ONNX file at `path` once in onnxruntime and refuses it unless it gives `model`'s features.

    A converter can write a graph that onnxruntime cannot run or that computes
    something else (jax2onnx 0.17 writes Keras's MaxPooling2D as a MaxPool
    that onnxruntime refuses); the export then fails here instead of at
    serving time. Skipped when onnxruntime is not installed or the input size
    is open.
    """
    try:
        import onnxruntime
    except ImportError:
        return
    shape = tuple(spec.shape)
    if None in shape[1:]:
        return
    dtype = keras.backend.standardize_dtype(spec.dtype)
    rng = np.random.default_rng(0)
    x = (
        rng.random((2, *shape[1:])).astype(dtype)
        if keras.backend.is_float_dtype(dtype)
        else np.ones((2, *shape[1:]), dtype)
    )
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (served,) = session.run([FEATURES], {spec.name: x})
    except Exception as error:
        raise RuntimeError(
            f"The ONNX file written under the {keras.backend.backend()} backend does not run in onnxruntime: "
            f"{type(error).__name__}: {error}. Try exporting under another backend (KERAS_BACKEND=tensorflow uses "
            "tf2onnx, jax uses jax2onnx)."
        ) from error
    difference = float(np.max(np.abs(served - expected))) if served.shape == expected.shape else math.inf
    if not difference <= 1e-3:
        raise RuntimeError(
            f"The ONNX file written under the {keras.backend.backend()} backend does not compute the model: expected "
            f"features of shape {expected.shape} within 1e-3 of Keras's. Received: shape {served.shape}, largest "
            f"difference {difference}"
        )


class _Features(keras.Model):
    """Export-only wrapper: `{"features": model(x)}`, so exported graphs name their output."""

    def __init__(self, model, input_name):
        super().__init__(name=f"{input_name}_to_{FEATURES}")
        self.wrapped = model
        self.built = True  # its variables are the wrapped model's

    def call(self, inputs):
        return {FEATURES: self.wrapped(inputs, training=False)}


def recover_interrupted_export(path):
    """Tidies what an export of `path` killed mid-way left beside it; warns and returns what it did, a line each.

    A staging folder (`.export-<name>-<pid>-*`) of a process that is gone is
    removed. A previous bundle moved aside for an overwrite (`<name>.old-...`)
    is put back when the new bundle never took its place, and removed when it
    did. Folders of a process still running are left alone (it may be exporting
    now), as is everything on Windows, where liveness is not checked.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    done = []
    if not os.path.isdir(parent):
        return done
    pattern = re.compile(rf"(?:{re.escape(name)}\.old-)?\.export-{re.escape(name)}-(\d+)-[a-z0-9_]{{8}}")
    for entry in sorted(os.listdir(parent)):
        match = pattern.fullmatch(entry)
        if not match or _process_alive(int(match.group(1))):
            continue
        leftover = os.path.join(parent, entry)
        if entry.startswith(".export-") or os.path.exists(path):
            shutil.rmtree(leftover, ignore_errors=True)
            done.append(f"removed {leftover}, left by an interrupted export")
        else:
            os.rename(leftover, path)
            done.append(f"restored {path} from {leftover}: an overwriting export was interrupted before replacing it")
    for line in done:
        warnings.warn(line, stacklevel=3)
    return done


def _process_alive(pid):
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_image_size(model):
    """Whether `model` takes images whose height or width is left open."""
    shape = getattr(model, "input_shape", None)
    return isinstance(shape, tuple) and len(shape) == 4 and None in shape[1:3]


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


def max_load_bytes(max_bytes=None):
    """The load budget in bytes: `max_bytes`, else $KERAS_SSL_MAX_BUNDLE_BYTES, else 2 GiB.

    The variable takes a number of bytes with an optional unit: `4294967296`,
    `4GiB`, `500MB` (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024).
    """
    if max_bytes is None:
        text = os.environ.get(MAX_BYTES_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_BYTES
        return _parse_bytes(text, MAX_BYTES_ENV)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"Expected max_bytes to be a positive int (bytes) or None. Received: {_short(max_bytes)}")
    return max_bytes


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def _parse_bytes(text, source):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise ValueError(
            f"{source}: expected a positive number of bytes, optionally with a unit (e.g. 4294967296 or 4GiB). "
            f"Received: {_short(text)}"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _readable(n):
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _budget_hint(budget):
    return (
        f"over the load budget of {_readable(budget)} ({budget} bytes). Refusing it before allocating anything. "
        f"If you trust this bundle, raise the budget: keras_ssl.load(..., max_bytes=<bytes>) or "
        f"{MAX_BYTES_ENV}=<bytes, e.g. 8GiB>."
    )


class ConfigEstimate(collections.namedtuple("ConfigEstimate", ["parameters", "layers", "largest"])):
    """What a config asks for: `parameters` (all variables' values), `layers` (Keras layers to create) and
    `largest` ((parameters, layer name, class name) of the largest layer, or None)."""

    __slots__ = ()

    @property
    def nbytes(self):
        """The estimated memory in bytes: float32 weights plus a fixed overhead per layer."""
        return self.parameters * BYTES_PER_PARAMETER + self.layers * LAYER_OVERHEAD_BYTES


def estimate_config_size(config):
    """Estimates the weights and layers a serialised Keras config asks for, from the config alone.

    Nothing is built: the sizes are read from the layers' arguments and the
    input shapes Keras builds each layer with (`build_config`). Counted
    exactly: Dense, Conv1D/2D/3D (and transposed), Depthwise/SeparableConv,
    Embedding, Batch/Layer/GroupNormalization, MultiHeadAttention, and
    keras_ssl's PatchEmbedding, PositionEmbedding, ClassToken,
    TransformerBlock, PrototypeLayer, FeatureQueue, ViT (its `dim`, `depth`,
    `num_heads`, `mlp_ratio`, `image_size`, `patch_size`) and
    TransformerEncoder (`vocabulary_size`, `max_length`, `dim`, `depth`).
    Other layers count as layers with no weights; `load_bundle` checks the
    built model's exact variables afterwards.

    Returns:
        A `ConfigEstimate`; its `nbytes` is what `check_config_size` compares
        with the budget.
    """
    parameters, layers_count, largest = 0, 0, None
    for node in _layer_nodes(config):
        count, sublayers = _layer_parameters(node)
        parameters += count
        layers_count += 1 + sublayers
        if count and (largest is None or count > largest[0]):
            largest = (count, _layer_name(node), node["class_name"])
    return ConfigEstimate(parameters, layers_count, largest)


def check_config_size(config, max_bytes=None, source=CONFIG):
    """Refuses, with `BundleTooLargeError`, a config whose `estimate_config_size` exceeds the load budget."""
    budget = max_load_bytes(max_bytes)
    estimate = estimate_config_size(config)
    if estimate.nbytes > budget:
        largest = ""
        if estimate.largest:
            count, name, class_name = estimate.largest
            largest = f"; the largest is layer {_short(name)} ({class_name}) with {count:,} parameters"
        raise BundleTooLargeError(
            f"{source}: the config asks for about {estimate.parameters:,} parameters in {estimate.layers:,} layers "
            f"({_readable(estimate.nbytes)}, {estimate.nbytes} bytes{largest}), {_budget_hint(budget)}"
        )
    return estimate


def _layer_nodes(config):
    """Every serialised layer or model in `config`: a dict with a class_name and a config holding name and trainable."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and _layer_name(node) is not None:
                yield node
            stack.extend(value for value in node.values() if isinstance(value, (dict, list, tuple)))


def _size(value, default=0):
    """A non-negative int from a config value (an int or integral float), else `default`."""
    if isinstance(value, bool):
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else default


def _product(values):
    return math.prod(_size(v, 1) for v in values)


def _build_shape(node, key="input_shape"):
    """The shape a layer is built with (its `build_config`), the first one for several inputs; None if unknown."""
    build = node.get("build_config")
    if isinstance(build, dict) and isinstance(build.get("shapes_dict"), dict):
        build = build["shapes_dict"]  # layers built from several named shapes (MultiHeadAttention)
    shape = build.get(key) if isinstance(build, dict) else None
    if isinstance(shape, dict):
        shape = next(iter(shape.values()), None)
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        shape = shape[0]
    return shape if isinstance(shape, (list, tuple)) else None


def _input_dim(node, axis=-1, key="input_shape"):
    """The size of one axis of the layer's build shape; 1 (the least it can be) when unknown."""
    shape = _build_shape(node, key)
    axis = axis if isinstance(axis, int) and not isinstance(axis, bool) else -1
    if not shape or not -len(shape) <= axis < len(shape):
        return 1
    return _size(shape[axis], 1) or 1


def _transformer_block(dim, mlp_dim):
    """Parameters of a TransformerBlock over `dim`-vectors: attention (q, k, v, output), two LayerNorms, the MLP."""
    return 4 * dim * dim + 4 * dim + 4 * dim + 2 * dim * mlp_dim + mlp_dim + dim


TRANSFORMER_BLOCK_LAYERS = 13  # the block, its MultiHeadAttention (7 with its Dense, softmax, dropout), 2 norms, MLP


def _layer_parameters(node):
    """(parameters, sublayers its config does not list) of one serialised layer."""
    name, c = node["class_name"], node["config"]
    if name in ("ViT", "TransformerEncoder"):
        return _backbone_parameters(name, c)
    channels_axis = 1 if c.get("data_format") == "channels_first" else -1
    if name == "Dense":
        units = _size(c.get("units"))
        return _input_dim(node) * units + (units if c.get("use_bias", True) else 0), 0
    conv = re.fullmatch(r"(Separable|Depthwise)?Conv([123])D(Transpose)?", name)
    if conv:
        rank = int(conv.group(2))
        kernel = c.get("kernel_size", 1)
        kernel = _product(kernel) if isinstance(kernel, (list, tuple)) else _size(kernel, 1) ** rank
        channels = _input_dim(node, channels_axis)
        filters, multiplier = _size(c.get("filters")), _size(c.get("depth_multiplier"), 1)
        if conv.group(1) == "Depthwise":
            weights, bias = kernel * channels * multiplier, channels * multiplier
        elif conv.group(1) == "Separable":
            weights, bias = kernel * channels * multiplier + channels * multiplier * filters, filters
        else:
            weights, bias = kernel * (channels // max(_size(c.get("groups"), 1), 1) or 1) * filters, filters
        return weights + (bias if c.get("use_bias", True) else 0), 0
    if name == "Embedding":
        return _size(c.get("input_dim")) * _size(c.get("output_dim")), 0
    if name in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        axis = c.get("axis", -1)
        dim = _input_dim(node, axis if isinstance(axis, int) else -1)
        scale, center = bool(c.get("scale", True)), bool(c.get("center", True)) and not c.get("rms_scaling")
        return dim * (scale + center + (2 if name == "BatchNormalization" else 0)), 0
    if name == "MultiHeadAttention":
        heads, key_dim = _size(c.get("num_heads")), _size(c.get("key_dim"))
        value_dim = _size(c.get("value_dim"), key_dim) or key_dim
        query = _input_dim(node, key="query_shape")
        value = _input_dim(node, key="value_shape")
        key = _input_dim(node, key="key_shape") if _build_shape(node, "key_shape") else value
        output = c.get("output_shape")
        output = _product(output) if isinstance(output, (list, tuple)) else _size(output, query) or query
        bias = heads * (2 * key_dim + value_dim) + output if c.get("use_bias", True) else 0
        return heads * key_dim * (query + key) + heads * value_dim * (value + output) + bias, 6
    if name == "PatchEmbedding":
        dim = _size(c.get("dim"))
        return _size(c.get("patch_size")) ** 2 * _input_dim(node) * dim + dim, 1
    if name == "PositionEmbedding":
        grid = c.get("grid")
        positions = _product(grid) if isinstance(grid, (list, tuple)) else _size(c.get("num_positions"))
        return positions * _input_dim(node), 0
    if name == "ClassToken":
        return _input_dim(node), 0
    if name == "TransformerBlock":
        return _transformer_block(_input_dim(node), _size(c.get("mlp_dim"))), TRANSFORMER_BLOCK_LAYERS - 1
    if name == "PrototypeLayer":
        return _input_dim(node) * _size(c.get("num_prototypes")), 0
    if name == "FeatureQueue":
        return _size(c.get("size")) * _size(c.get("dim")) + 1, 0
    return 0, 0


def _backbone_parameters(name, c):
    """(parameters, layers) of a keras_ssl ViT or TransformerEncoder, whose config holds its arguments."""
    table = backbones.VIT_SIZES if name == "ViT" else backbones.TEXT_SIZES
    size = c.get("size", "tiny")
    base_dim, base_depth, _ = table.get(size, (0, 0, 0)) if isinstance(size, str) else (0, 0, 0)
    dim, depth = _size(c.get("dim")) or base_dim, _size(c.get("depth")) or base_depth
    ratio = c.get("mlp_ratio", 4.0)
    valid = isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio) and ratio >= 0
    ratio = ratio if valid else 4.0
    blocks = depth * _transformer_block(dim, int(ratio * dim))
    if name == "ViT":
        image_size = _size(c.get("image_size"), 32)
        patch = _size(c.get("patch_size"), 0) or (4 if image_size <= 64 else 16)
        channels, patches = _size(c.get("channels"), 3), (image_size // patch) ** 2
        class_token = dim if c.get("pool", "cls") == "cls" else 0
        parameters = patch * patch * channels * dim + dim + patches * dim + class_token + blocks + 2 * dim
        return parameters, depth * TRANSFORMER_BLOCK_LAYERS + 6
    embeddings = (_size(c.get("vocabulary_size")) + _size(c.get("max_length"), 128)) * dim
    return embeddings + blocks + 2 * dim, depth * TRANSFORMER_BLOCK_LAYERS + 5


def read_weight_shapes(path, max_bytes=None):
    """The datasets of a Keras weights file as `{name: (shape, dtype)}`, read from the HDF5 metadata only.

    No tensor data is read. Refused with `BundleTooLargeError`: datasets (and
    attributes) declaring more bytes in total than the load budget, or more
    than 100,000 HDF5 objects (links and attributes included, so a linked
    cycle ends here too). Refused with `InvalidBundleError`: a file that is
    not HDF5, soft or external links, and datasets stored in other files
    (external or virtual datasets).
    """
    import h5py

    budget = max_load_bytes(max_bytes)
    shapes, declared, visited = {}, 0, 0
    try:
        with h5py.File(path, "r") as f:
            stack = [("", f)]
            while stack:
                prefix, item = stack.pop()
                visited += 1 + len(item.attrs)
                if visited > MAX_WEIGHT_ENTRIES:
                    raise BundleTooLargeError(f"{path}: more than {MAX_WEIGHT_ENTRIES:,} HDF5 objects; refusing it.")
                for key in item.attrs:
                    attribute = item.attrs.get_id(key)
                    declared += math.prod(attribute.shape or ()) * attribute.dtype.itemsize
                if isinstance(item, h5py.Dataset):
                    if item.external or item.is_virtual:
                        raise InvalidBundleError(
                            f"{path}: expected datasets stored in the file. Received: {_short(prefix)} stored "
                            "elsewhere (an external or virtual dataset)"
                        )
                    shapes[prefix] = (tuple(item.shape), item.dtype)
                    declared += math.prod(item.shape) * item.dtype.itemsize
                    continue
                for key in item:
                    name = f"{prefix}/{key}" if prefix else key
                    link = item.get(key, getlink=True)
                    if not isinstance(link, h5py.HardLink):
                        raise InvalidBundleError(
                            f"{path}: expected plain HDF5 groups and datasets. Received: a {type(link).__name__} at "
                            f"{_short(name)}"
                        )
                    stack.append((name, item[key]))
    except OSError as error:
        raise InvalidBundleError(f"{path}: expected an HDF5 weights file. Received: unreadable ({error})") from None
    if declared > budget:
        largest = max(shapes, key=lambda n: math.prod(shapes[n][0]) * shapes[n][1].itemsize, default=None)
        largest = (
            f" (the largest, {largest}, has shape {shapes[largest][0]} of {shapes[largest][1]})" if largest else ""
        )
        raise BundleTooLargeError(
            f"{path}: the weights file declares {_readable(declared)} ({declared} bytes) of tensors{largest}, "
            f"{_budget_hint(budget)}"
        )
    return shapes


def _build_unallocated(config):
    """Deserialises `config` with every Keras variable created but not allocated.

    Variables created inside a `keras.StatelessScope` get their shapes but no
    values: Keras queues them and initialises them when the outermost scope
    exits. Returns `(model, created, discard)`: the variables this build
    queued, and a function that drops them from Keras's queue (a refused
    model must not be allocated later, when any other scope exits).
    """
    from keras.src.backend.common import global_state  # Keras's queue of variables awaiting initialisation

    if global_state.get_global_attribute("stateless_scope") is not None:
        raise RuntimeError("load_bundle cannot run inside a keras.StatelessScope: it initialises the weights it loads.")
    before = list(global_state.get_global_attribute("uninitialized_variables", None) or [])

    def discard():
        global_state.set_global_attribute("uninitialized_variables", before)

    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except BaseException:
        discard()
        raise
    created = (global_state.get_global_attribute("uninitialized_variables", None) or [])[len(before) :]
    return model, created, discard


def _variable_bytes(variable):
    bits = re.search(r"\d+", keras.backend.standardize_dtype(variable.dtype))  # float32 -> 32; bool -> 1 byte
    return math.prod(variable.shape) * max(int(bits.group()) // 8 if bits else 1, 1)


def _is_optimizer_state(name):
    """Whether a weights-file dataset belongs to an optimizer (a compiled model saves its state beside the weights)."""
    return "optimizer" in name.split("/")[:-1]


def _check_shapes_match(variables, shapes, weights_path, what):
    """Refuses `shapes` ({dataset: (shape, dtype)}) that are not exactly the shapes of `variables`.

    Compared as multisets (Keras maps datasets to variables by its own object
    walk, not by name): the same number of tensors with the same shapes, so
    loading reads exactly what the variables hold; Keras's own per-variable
    check still refuses a shuffled file.
    """
    expected = collections.Counter(tuple(v.shape) for v in variables)
    declared = collections.Counter(shape for shape, _ in shapes.values())
    if expected == declared:
        return
    extra = [f"{name} {shape}" for name, (shape, _) in sorted(shapes.items()) if (declared - expected)[shape]]
    missing = [f"{v.path} {tuple(v.shape)}" for v in variables if (expected - declared)[tuple(v.shape)]]
    raise InvalidBundleError(
        f"{weights_path} does not match the model its {CONFIG} builds: expected {len(variables)} tensors with "
        f"the shapes of {what}. Received: {len(shapes)} tensors; in the file but not the model: "
        f"{_short(extra[:5], 600)}; in the model but not the file: {_short(missing[:5], 600)}"
    )


def load_bundle(path, trainable=True, max_bytes=None):
    """Rebuilds the Keras model of a bundle written by `export` (`keras_ssl.load` calls it for bundles).

    Everything is checked before the weights are allocated: the config is
    parsed and checked with `check_config_safe` (no Lambda layers, no modules
    outside Keras and keras_ssl) and `check_config_size` (its estimated size
    within the load budget); metadata.json is validated with
    `parse_metadata`; the weights file must match the sha256 recorded at
    export time, and `read_weight_shapes` reads the tensor shapes it declares
    (without their data) and checks them against the budget. The model is then
    built in Keras `safe_mode` with its variables created but not allocated;
    their exact size is checked against the budget and their shapes against the
    weights file's, and only then are they allocated and loaded. A model saved
    compiled is compiled after the allocation, and its optimizer's saved state
    is checked the same way before it is read.

    Args:
        path: the bundle directory.
        trainable: whether the loaded model's weights train.
        max_bytes: the load budget in bytes; default $KERAS_SSL_MAX_BUNDLE_BYTES,
            else 2 GiB (see `max_load_bytes`).

    Raises:
        FileNotFoundError: nothing at `path`.
        InvalidBundleError: not a bundle, a config that is too large, not a
            JSON object or not a model Keras can rebuild, invalid metadata,
            weights that do not match their sha256, or a weights file whose
            tensors are not the model's.
        BundleTooLargeError: (an `InvalidBundleError`) a config or weights
            file asking for more memory than the budget.
        UnsafeBundleError: a config that `check_config_safe` refuses.
    """
    path = os.fspath(path)
    assets = os.path.join(path, ASSETS)
    if not os.path.exists(path):
        recover_interrupted_export(path)
    if not os.path.isdir(assets):
        if os.path.isdir(path):
            raise InvalidBundleError(
                f"{path} is not a keras_ssl bundle: expected {os.path.join(ASSETS, CONFIG)} inside it."
            )
        raise FileNotFoundError(f"No bundle at {path}")
    budget = max_load_bytes(max_bytes)
    config_path = os.path.join(assets, CONFIG)
    config = parse_json_object(
        _read_limited(config_path, MAX_CONFIG_BYTES), config_path, MAX_CONFIG_BYTES, error=InvalidBundleError
    )
    check_config_safe(config)
    check_config_size(config, budget, source=config_path)
    metadata = read_metadata(path)
    weights = os.path.join(assets, WEIGHTS)
    expected = metadata.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise InvalidBundleError(f"Corrupt bundle: {weights} does not match the sha256 recorded in {METADATA}.")
    shapes = read_weight_shapes(weights, budget)
    # Keras's deserialisation consumes parts of the config it is given. A compiled model's optimizer makes its
    # variables from values, which a StatelessScope refuses: it is compiled once the weights exist, as Keras would.
    unbuilt = copy.deepcopy(config)
    compile_config = unbuilt.pop("compile_config", None)
    for node in _layer_nodes(unbuilt):
        node.pop("compile_config", None)  # a compiled model nested in another: its optimizer is unused
    try:
        model, created, discard = _build_unallocated(unbuilt)
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidBundleError(
            f"{config_path}: expected a config Keras can rebuild. Received: {type(error).__name__}: {error}"
        ) from error
    try:
        allocated = sum(_variable_bytes(v) for v in created)
        if allocated > budget:
            raise BundleTooLargeError(
                f"{config_path}: the model it builds has {_readable(allocated)} ({allocated} bytes) of variables "
                f"({sum(math.prod(v.shape) for v in created):,} values), {_budget_hint(budget)}"
            )
        weight_shapes = {name: shape for name, shape in shapes.items() if not _is_optimizer_state(name)}
        _check_shapes_match(model.weights, weight_shapes, weights, "the model's weights")
    except BaseException:
        discard()
        raise
    with keras.StatelessScope():
        pass  # leaving the outermost scope allocates and initialises the queued variables
    if compile_config:
        model.compile_from_config(compile_config)
        # Keras restores the optimizer's saved state only when it has as many variables (else it warns and skips).
        saved = {name: shape for name, shape in shapes.items() if name.startswith("optimizer/")}
        if getattr(model, "optimizer", None) is not None and len(saved) == len(model.optimizer.variables):
            _check_shapes_match(model.optimizer.variables, saved, weights, "the optimizer's variables")
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
