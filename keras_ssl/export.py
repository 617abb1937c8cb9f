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
import hashlib
import json
import os
import shutil
import tempfile

import keras

ASSETS = os.path.join("assets", "keras_ssl")
CONFIG, WEIGHTS, METADATA = "config.json", "model.weights.h5", "metadata.json"
MAX_CONFIG_BYTES = 16 * 2**20  # a config larger than this is refused, not parsed


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def export(model, path, overwrite=False, metadata=None, input_shape=None):
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
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        bundle = os.path.join(staging, "bundle")
        try:
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
        info = {
            "format": "keras_ssl.bundle/1",
            "keras_ssl_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "input_shape": list(model.input_shape),
            "output_shape": list(model.output_shape),
            "weights_sha256": _sha256(os.path.join(assets, WEIGHTS)),
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


def read_metadata(path):
    """The parsed metadata.json of a bundle."""
    with open(os.path.join(path, ASSETS, METADATA)) as f:
        return json.load(f)


def load(path, trainable=True):
    """Rebuilds the Keras model of a bundle written by `export`.

    The model is rebuilt from its config with Keras `safe_mode` (no Lambda
    layers, no pickled code) and its weights are checked against the sha256
    recorded at export time before loading.
    """
    path = os.fspath(path)
    assets = os.path.join(path, ASSETS)
    if not os.path.isdir(assets):
        if os.path.isdir(path):
            raise ValueError(f"{path} is not a keras_ssl bundle: expected {os.path.join(ASSETS, CONFIG)} inside it.")
        raise FileNotFoundError(f"No bundle at {path}")
    config_path = os.path.join(assets, CONFIG)
    size = os.path.getsize(config_path)
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"Refusing a model config of {size} bytes (limit {MAX_CONFIG_BYTES}): {config_path}")
    with open(config_path) as f:
        config = json.load(f)
    metadata = read_metadata(path)
    weights = os.path.join(assets, WEIGHTS)
    expected = metadata.get("weights_sha256")
    if expected and _sha256(weights) != expected:
        raise ValueError(f"Corrupt bundle: {weights} does not match the sha256 recorded in {METADATA}.")
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    model.load_weights(weights)
    model.trainable = trainable
    return model
