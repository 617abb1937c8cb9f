"""`keras-ssl pretrain`: train a method (or a preset's recipe) on images or text and export the encoder.

Imported only when the command runs: Keras and the backend load here, not at `keras-ssl --help`.
"""

import contextlib
import glob
import os
import sys

from keras_ssl.cli import UsageError, runs
from keras_ssl.cli.arguments import APPLICATIONS_PREFIX
from keras_ssl.cli.arrays import load_npz_images, resize_images

DEFAULT_IMAGE_SIZE = 32
DEFAULT_RESNET_WIDTH = 0.125  # the zoo's CPU-sized width; 1.0 is the papers'
CONVNET_FILTERS = (32, 64, 128)
TFRECORD_MARKERS = (".tfrecord", ".tfrec")
TFDS_PREFIX = "tfds:"


# --- the target: a method or a preset ------------------------------------------------------------------


def resolve_target(target):
    """`(card or None, method name)` for a preset name or alias, or a method name."""
    from keras_ssl import methods, presets

    if target in methods.list_methods():
        return None, target
    try:
        card = presets.get_preset(target)
    except presets.UnknownPresetError as error:
        raise UsageError(f"{error} Methods: {', '.join(methods.list_methods())}.") from None
    return card, card.method


def _epochs_batch_rate_seed(args, recipe, default_rate):
    return (
        args.epochs or recipe.get("epochs", 1),
        args.batch_size or recipe.get("batch_size", 256),
        args.learning_rate or recipe.get("learning_rate", default_rate),
        args.seed if args.seed is not None else recipe.get("seed", 0),
    )


# --- backbones ------------------------------------------------------------------------------------------


def backbone_spec(args, card, method_name, image_size, channels):
    """What to build, checked before anything is built: `{"name", "image_size", "channels", ...}`."""
    if card is not None:
        chosen = [
            f"--{name.replace('_', '-')}"
            for name in ("backbone", "width", "stem", "backbone_weights")
            if getattr(args, name, None) is not None
        ]
        if chosen:
            raise UsageError(
                f"Preset {card.name!r} fixes its backbone ({card.backbone['class_name']} "
                f"{card.backbone['config']}). Received: {', '.join(chosen)}; pretrain the method "
                f"({card.method}) to choose one."
            )
        return {"name": "preset", "class_name": card.backbone["class_name"], "config": dict(card.backbone["config"])}
    name = args.backbone or ("vit-nano" if method_name == "mae" else "resnet18")
    if method_name == "mae" and not name.startswith("vit"):
        raise UsageError(f"mae runs a ViT on the visible patches only: pass --backbone vit-*. Received: {name}")
    spec = {"name": name, "image_size": image_size, "channels": channels}
    weights = getattr(args, "backbone_weights", None)
    if weights is not None and not name.startswith(APPLICATIONS_PREFIX):
        raise UsageError(f"--backbone-weights applies to keras.applications backbones. Received it with {name}")
    if name.startswith(APPLICATIONS_PREFIX):
        for option in ("width", "stem"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} applies to ResNets (and --width to convnet). Received it with {name}")
        if channels != 3:
            raise UsageError(
                f"keras.applications models take RGB images (3 channels). Received: {name} with {channels}-channel "
                "images"
            )
        if weights is not None and weights != "imagenet":
            weights = os.path.abspath(weights)
            if not os.path.isfile(weights):
                raise UsageError(f"--backbone-weights names no file. Received: {args.backbone_weights}")
        spec["weights"] = weights
    elif name.startswith("vit"):
        for option in ("width", "stem"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} applies to ResNets (and --width to convnet). Received it with {name}")
        patch = 4 if image_size <= 64 else 16  # ViT's default patch size
        if image_size % patch:
            raise UsageError(
                f"{name} cuts {image_size}x{image_size} images into {patch}x{patch} patches: --image-size must be a "
                f"multiple of {patch}. Received: --image-size {image_size}"
            )
        spec["size"] = name.split("-", 1)[1]
    elif name == "convnet":
        if args.stem is not None:
            raise UsageError(f"--stem applies to ResNets. Received it with {name}")
        width = args.width or 1.0
        spec["width"], spec["filters"] = width, [max(1, round(f * width)) for f in CONVNET_FILTERS]
    else:
        spec["width"] = args.width or DEFAULT_RESNET_WIDTH
        spec["stem"] = args.stem or ("cifar" if image_size <= 64 else "imagenet")
    return spec


def describe_backbone(spec):
    if spec["name"] == "preset":
        return f"{spec['class_name']} {spec['config']} (the preset's)"
    if spec["name"].startswith(APPLICATIONS_PREFIX):
        return f"{spec['name']} ({'random weights' if spec['weights'] is None else 'weights ' + spec['weights']})"
    if spec["name"].startswith("vit"):
        return spec["name"]
    if spec["name"] == "convnet":
        return f"convnet (width {spec['width']:g}: filters {tuple(spec['filters'])})"
    return f"{spec['name']} ({spec['stem']} stem, width {spec['width']:g})"


def build_backbone(spec):
    from keras_ssl import backbones

    shape = (spec.get("image_size"), spec.get("image_size"), spec.get("channels"))
    name = spec["name"]
    if name == "preset":
        factory = getattr(backbones, spec["class_name"], None)
        if factory is None:
            raise UsageError(f"The preset's card names an unknown backbone {spec['class_name']!r}.")
        config = dict(spec["config"])
        if "input_shape" in config:
            config["input_shape"] = tuple(config["input_shape"])
        return factory(**config)
    if name.startswith(APPLICATIONS_PREFIX):
        return backbones.from_keras_applications(name, input_shape=shape, weights=spec["weights"])
    if name.startswith("vit"):
        return backbones.ViT(spec["size"], image_size=spec["image_size"], channels=spec["channels"])
    if name == "convnet":
        return backbones.ConvNet(filters=tuple(spec["filters"]), input_shape=shape)
    depth = int(name.removeprefix("resnet"))
    return backbones.ResNet(depth, stem=spec["stem"], width=spec["width"], input_shape=shape)


# --- image data -------------------------------------------------------------------------------------------


class ImageData:
    """The training input and what the start-up summary says about it.

    `kind` is "arrays", "folder", "tfrecord" or "tfds"; `source` the images (an array, a reader, a dataset
    or a TFDS name); `num_images` and `steps` are None when unknown.
    """

    def __init__(self, kind, source, description, image_size, channels, num_images=None):
        self.kind, self.source, self.description = kind, source, description
        self.image_size, self.channels, self.num_images = image_size, channels, num_images


def classify_data(path):
    """`(kind, location)` of a --data value for images: "folder", "tfrecord", "npz" or "tfds"."""
    if path.startswith(TFDS_PREFIX):
        return "tfds", path[len(TFDS_PREFIX) :]
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        return "folder", expanded
    name = os.path.basename(expanded).lower()
    if any(marker in name for marker in TFRECORD_MARKERS):
        if "://" not in expanded and not glob.glob(expanded):
            raise UsageError(f"--data names TFRecord files, and none matches. Received: {path!r}")
        return "tfrecord", expanded
    if name.endswith(".npz"):
        if not os.path.isfile(expanded):
            raise UsageError(f"--data: expected an existing .npz file. Received: {path!r} (no such file)")
        return "npz", expanded
    looks_like_name = not (os.path.splitext(path)[1] or "/" in path or os.sep in path or glob.has_magic(path))
    if looks_like_name and not os.path.exists(expanded):
        return "tfds", path  # a bare TFDS name ("cifar10"), as `Method.fit` reads it
    raise UsageError(
        "--data for an image method: expected a folder of images, an .npz of images, TFRecord files "
        f"('shards-*.tfrecord') or tfds:NAME. Received: {path!r}"
        + ("" if os.path.exists(expanded) else " (no such file or folder)")
    )


def load_image_data(path, image_size, batch_size):
    """Reads (arrays) or indexes (folders, TFRecords) the images of --data; nothing is decoded for files yet."""
    from keras_ssl import data

    kind, location = classify_data(path)
    if kind == "npz":
        key, images = load_npz_images(location)
        images = data.check_images(images, name=f"{path}[{key}]")
        height, width, channels = images.shape[1:]
        size = image_size or (height if height == width else DEFAULT_IMAGE_SIZE)
        description = f"{path} [{key}]: {len(images)} images of {height}x{width}x{channels}"
        if (height, width) != (size, size):
            images = resize_images(images, size)
            description += f", resized to {size}x{size}"
        return ImageData("arrays", images, description, size, channels, len(images))
    size = image_size or DEFAULT_IMAGE_SIZE
    if kind == "folder":
        reader = data.image_folder(location, size, batch_size=batch_size)
        skipped = f", {len(reader.skipped)} unreadable file(s) skipped" if reader.skipped else ""
        description = f"{path}: {reader.num_images} images (an image folder, labels ignored{skipped}), read at {size}px"
        return ImageData("folder", reader, description, size, reader.channels, reader.num_images)
    if kind == "tfrecord":
        reader = data.tfrecord_images(location, size, batch_size=batch_size)
        description = f"{path}: {reader.num_images} records in {len(reader.files)} TFRecord file(s), read at {size}px"
        return ImageData("tfrecord", reader, description, size, reader.channels, reader.num_images)
    dataset = _tfds_dataset(location, size, batch_size)
    batches = int(dataset.cardinality())
    count = batches * batch_size if batches > 0 else None
    description = f"TFDS {location}: {count if count else 'an unknown number of'} images, resized to {size}px"
    channels = int(dataset.element_spec.shape[-1])
    return ImageData("tfds", dataset, description, size, channels, count)


def _tfds_dataset(name, size, batch_size):
    import tensorflow as tf

    from keras_ssl import data

    dataset = data.tfds_images(name, batch_size=batch_size)
    if tuple(dataset.element_spec.shape[1:3]) != (size, size):

        def resize(images):
            images = tf.image.resize(tf.cast(images, tf.float32), (size, size), antialias=True)
            return tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)

        dataset = dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset


def fit_input(images, method, batch_size, max_steps, num_replicas):
    """`(x, batch_size for fit, steps per epoch)`: what `Method.fit` trains on; --max-steps goes to fit.

    `fit(steps_per_epoch=N)` trains the first N batches of each epoch's order (arrays, folders, TFRecords);
    a TFDS dataset is cut to its first N batches here.
    """
    if images.kind in ("folder", "tfrecord"):
        reader = images.source
        _check_batch(reader.batch_size, method, num_replicas)
        return reader, None, min(reader.steps_per_epoch, max_steps or reader.steps_per_epoch)
    if images.kind == "tfds":
        dataset = images.source.take(max_steps) if max_steps else images.source
        steps = int(dataset.cardinality())
        if steps < 1:
            raise UsageError(f"The size of TFDS {images.description} is unknown: pass --max-steps.")
        return dataset, None, steps
    array = images.source
    batch_size = min(batch_size, len(array))
    _check_batch(batch_size, method, num_replicas)
    steps = len(array) // batch_size
    return array, batch_size, min(steps, max_steps or steps)


def _check_batch(batch_size, method, num_replicas):
    from keras_ssl import data

    if batch_size < method.min_batch_size:
        raise UsageError(
            f"{type(method).__name__} needs at least {method.min_batch_size} images per batch. "
            f"Received: --batch-size {batch_size}"
        )
    try:
        data.check_replica_batch(batch_size, num_replicas, method.min_batch_size, type(method).__name__)
    except ValueError as error:
        raise UsageError(f"--batch-size: {error}") from None


# --- the command ----------------------------------------------------------------------------------------------


def _print_summary(rows):
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        print(f"  {label:<{width}}  {text}")
    sys.stdout.flush()


def _batch_split(batch_size, placement):
    import keras

    devices = keras.distribution.list_devices()
    shown = ", ".join(devices[:4]) + (f", ... ({len(devices)} in all)" if len(devices) > 4 else "")
    replicas = placement.num_replicas
    split = f"{replicas} replica(s) x {batch_size // replicas}" if replicas else ""
    where = placement.description + (f" of {placement.num_processes} processes" if placement.num_processes > 1 else "")
    return f"global {batch_size} = {split} (--distribute {placement.kind}: {where}; devices here: {shown})"


def _seed_everything(args, seed):
    """--seed: full determinism (set_deterministic); otherwise the recipe's seed for weights and data order."""
    import keras

    from keras_ssl.utils.determinism import set_deterministic

    if args.seed is not None:
        set_deterministic(seed)
    else:
        keras.utils.set_random_seed(seed)


def _check_output(args):
    output = os.path.abspath(os.path.expanduser(args.output))
    if os.path.exists(output) and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it.")
    return output


def _run_paths(args, output):
    run_dir = os.path.abspath(os.path.expanduser(args.run_dir)) if args.run_dir else runs.default_run_dir(output)
    if args.checkpoint_dir:
        checkpoint_dir = os.path.abspath(os.path.expanduser(args.checkpoint_dir))
    else:
        checkpoint_dir = os.path.join(run_dir, runs.BACKUPS)
    return run_dir, checkpoint_dir


def _resume_position(args, checkpoint_dir, epochs):
    """The backup's `(epoch, step, epoch_logs)` when the run resumes; None for a fresh start."""
    if args.restart:
        return None
    position = runs.backup_position(checkpoint_dir)
    if position is not None and (position[0] > epochs or (position[0] == epochs and position[1])):
        raise UsageError(
            f"The backup in {checkpoint_dir} has trained {position[0]} epoch(s) and {position[1]} step(s), more "
            f"than --epochs {epochs}. Pass a larger --epochs to continue it, or --restart to start over."
        )
    return position


def _remove_backup(checkpoint_dir):
    from keras_ssl.callbacks.backup import BACKUP_FILE

    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(checkpoint_dir, BACKUP_FILE))


def _training_callbacks(args, run_dir, checkpoint_dir, earlier_logs, title, chief, epochs):
    import keras

    from keras_ssl.callbacks import BackupAndRestore

    class AnnouncedBackup(BackupAndRestore):
        """Says where the run resumes once `Method.fit` has accepted the backup (another run's is refused)."""

        def attach(self, method, fingerprint, steps_per_epoch, data_seed):
            position = super().attach(method, fingerprint, steps_per_epoch, data_seed)
            if position is not None:
                epoch, step = position
                if epoch >= epochs:
                    print(f"nothing left to train: the backup in {checkpoint_dir} has finished {epoch} epoch(s)")
                else:
                    print(
                        f"resuming at epoch {epoch + 1}/{epochs}, step {step} ({epoch} epoch(s) already trained; "
                        f"backup in {checkpoint_dir})"
                    )
                sys.stdout.flush()
            return position

    callbacks = [AnnouncedBackup(checkpoint_dir, save_freq=args.checkpoint_every, delete_on_end=False)]
    if chief:  # one process writes the run's logs
        callbacks.append(runs.history_recorder(run_dir, earlier_logs, title=title))
        callbacks.append(
            keras.callbacks.TensorBoard(os.path.join(run_dir, runs.TENSORBOARD), write_graph=False, update_freq="epoch")
        )
    return callbacks


def _every(save_freq):
    return "at every epoch end" if save_freq == "epoch" else f"every {save_freq} steps and at epoch ends"


def _fit_options():
    """Keras progress bars (with an ETA) on a terminal, one line per epoch otherwise."""
    return {"verbose": 1 if sys.stdout.isatty() else 2}


def _train(method, x, fit_batch, epochs, callbacks, checkpoint_dir, steps):
    try:
        return method.fit(
            x, batch_size=fit_batch, epochs=epochs, callbacks=callbacks, steps_per_epoch=steps, **_fit_options()
        )
    except KeyboardInterrupt:
        print(
            f"Interrupted: run the same command again to resume from the backup in {checkpoint_dir}.", file=sys.stderr
        )
        raise


def run(args, argv):
    """The `pretrain` command; returns the exit code."""
    import keras

    from keras_ssl import methods

    if keras.backend.backend() == "torch":  # checked before hours of training, not at the export that ends them
        raise UsageError(
            "pretrain ends by writing a TensorFlow SavedModel bundle, which Keras cannot write from the torch "
            "backend: run it with KERAS_BACKEND=tensorflow or jax. Received: KERAS_BACKEND=torch"
        )

    card, method_name = resolve_target(args.target)
    recipe = card.recipe if card else {}
    if "command" in recipe:
        raise UsageError(
            f"{card.name}'s recipe has several stages and is trained by a script, not by one keras-ssl pretrain run:\n"
            f"    {recipe['command']}\n"
            f"Or pretrain the method on your data: keras-ssl pretrain {method_name} --data PATH --output DIR"
        )
    data_path = args.data or recipe.get("data")
    if not data_path:
        raise UsageError(
            "Pass --data: a folder of images, an .npz of images, TFRecord files or tfds:NAME (a text file, folder "
            "or glob of .txt files for text methods)."
        )
    if card is not None and not args.data and not os.path.exists(data_path):
        raise UsageError(f"The recipe's data {data_path} is not here; pass --data with its path.")
    if method_name in methods.list_methods(data="text"):
        return run_text(args, argv, card, method_name, recipe, data_path)
    return run_images(args, argv, card, method_name, recipe, data_path)


def _preset_image_size(card, args):
    shape = card.input.get("shape") or [None]
    size = shape[0] if len(shape) == 3 else None
    if args.image_size is not None and size is not None and args.image_size != size:
        raise UsageError(
            f"Preset {card.name!r} takes {size}x{size} images. Received: --image-size {args.image_size}; pretrain "
            f"the method ({card.method}) with --backbone to choose another size."
        )
    return size, (shape[2] if len(shape) == 3 else 3)


def run_images(args, argv, card, method_name, recipe, data_path):
    import keras

    from keras_ssl import methods
    from keras_ssl.bundle import export
    from keras_ssl.trainers.distribution import distribution_scope

    epochs, batch_size, learning_rate, seed = _epochs_batch_rate_seed(args, recipe, 2e-3)
    image_size = args.image_size
    if card is not None:
        image_size, _ = _preset_image_size(card, args)
    output = _check_output(args)
    run_dir, checkpoint_dir = _run_paths(args, output)
    _seed_everything(args, seed)
    images = load_image_data(data_path, image_size, batch_size)
    spec = backbone_spec(args, card, method_name, images.image_size, images.channels)

    with contextlib.ExitStack() as stack:
        try:
            placement = stack.enter_context(distribution_scope(args.distribute, timeout_seconds=args.timeout))
        except ValueError as error:
            raise UsageError(str(error)) from None
        chief = placement.process_id == 0
        if placement.num_processes > 1:  # each process keeps its own backup (local or shared disks alike)
            checkpoint_dir = os.path.join(checkpoint_dir, f"process-{placement.process_id}")
        position = _resume_position(args, checkpoint_dir, epochs)
        try:
            encoder = build_backbone(spec)
        except ValueError as error:
            raise UsageError(f"--backbone: {error}") from None
        method = methods.get_method(method_name)(encoder, **recipe.get("method_config", {}))
        method.compile(learning_rate=learning_rate)
        x, fit_batch, steps = fit_input(images, method, batch_size, args.max_steps, placement.num_replicas)

        print(f"keras-ssl pretrain {card.name if card else method_name} ({keras.backend.backend()} backend)")
        _print_summary(
            [
                ("method", f"{method_name}" + (f" (preset {card.name})" if card else "")),
                (
                    "backbone",
                    f"{describe_backbone(spec)}: {images.image_size}x{images.image_size}x{images.channels} "
                    f"-> {encoder.output_shape[-1]} features",
                ),
                ("data", images.description),
                ("steps", f"{steps} per epoch" + (f" (--max-steps {args.max_steps})" if args.max_steps else "")),
                ("batch", _batch_split(batch_size if fit_batch is None else fit_batch, placement)),
                ("training", f"{epochs} epoch(s), learning rate {learning_rate:g}, seed {seed}"),
                ("run", f"{run_dir} (backups: {checkpoint_dir}, {_every(args.checkpoint_every)})"),
            ]
        )
        if args.restart:
            _remove_backup(checkpoint_dir)
        line = runs.command_line(argv, keras.backend.backend())
        if chief:
            os.makedirs(run_dir, exist_ok=True)
            runs.write_command(run_dir, line)
        title = f"{method_name}, {describe_backbone(spec)}"
        earlier = position[2] if position else []
        callbacks = _training_callbacks(args, run_dir, checkpoint_dir, earlier, title, chief, epochs)
        history = _train(method, x, fit_batch, epochs, callbacks, checkpoint_dir, steps)

    if not chief:
        print(f"process {placement.process_id}: done (process 0 writes the bundle and the run folder)")
        return 0
    epoch_logs = [dict(zip(history.history, values)) for values in zip(*history.history.values())]
    runs.write_history(run_dir, epoch_logs, title=title)
    metadata = {
        "preset": card.name if card else None,
        "method": method_name,
        "recipe": {
            **recipe,
            "data": data_path,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "image_size": images.image_size,
            "backbone": spec,
            "distribute": placement.kind,
            **({"steps_per_epoch": args.max_steps} if args.max_steps else {}),
        },
        "command": line,
        "run_dir": run_dir,
    }
    path = export(method, output, overwrite=args.overwrite, metadata=metadata)
    print(f"bundle: {path}")
    print(f"run: {run_dir}")
    return 0


def run_text(args, argv, card, method_name, recipe, data_path):
    """MaskedLM (WordPiece tokenizer + Transformer) or Word2Vec on text; the bundle carries its vocabulary."""
    import tempfile

    import keras

    from keras_ssl import backbones, data, methods
    from keras_ssl.bundle import export
    from keras_ssl.trainers.distribution import distribution_scope

    for option in ("backbone", "backbone_weights", "width", "stem", "image_size"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option.replace('_', '-')} applies to image methods. Received it for {method_name}")
    epochs, batch_size, learning_rate, seed = _epochs_batch_rate_seed(args, recipe, 1e-3)
    output = _check_output(args)
    run_dir, checkpoint_dir = _run_paths(args, output)
    config = dict(card.backbone["config"]) if card else {}
    max_length = config.get("max_length", 128)
    texts = _read_text(data_path)
    line = runs.command_line(argv, keras.backend.backend())
    metadata = {
        "preset": card.name if card else None,
        "method": method_name,
        "recipe": {**recipe, "data": data_path},
        "command": line,
        "run_dir": run_dir,
    }
    print(f"keras-ssl pretrain {card.name if card else method_name} ({keras.backend.backend()} backend)")
    with tempfile.TemporaryDirectory() as scratch:
        if method_name == "word2vec":
            if args.distribute not in ("auto", "none"):
                raise UsageError(
                    f"word2vec trains with gensim on CPU threads. Received: --distribute {args.distribute}"
                )
            _print_summary([("method", "word2vec (gensim)"), ("data", f"{data_path}: {len(texts)} lines")])
            os.makedirs(run_dir, exist_ok=True)
            runs.write_command(run_dir, line)
            corpus = data_path if os.path.isfile(os.path.expanduser(data_path)) else [t.split() for t in texts]
            # The recipe's worker count (1: bit-for-bit reproducible with a fixed PYTHONHASHSEED; more: gensim races).
            model = methods.Word2Vec(**{**config, "seed": seed, "workers": recipe.get("workers")}).fit(corpus)
            vocabulary = os.path.join(scratch, "vocabulary.txt")
            with open(vocabulary, "w", encoding="utf-8") as f:
                f.write("\n".join(model.vocabulary) + "\n")
            encoder, assets = model.as_embedding(), {"vocabulary.txt": vocabulary}
        else:
            _seed_everything(args, seed)
            tokenizer = data.WordPieceTokenizer.train(texts, vocabulary_size=config.pop("vocabulary_size", 8000))
            ids = tokenizer.pack(texts, max_length)
            metadata["recipe"].update(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
            with contextlib.ExitStack() as stack:
                try:
                    placement = stack.enter_context(distribution_scope(args.distribute, timeout_seconds=args.timeout))
                except ValueError as error:
                    raise UsageError(str(error)) from None
                if placement.num_processes > 1:
                    raise UsageError(
                        "keras-ssl pretrain trains text methods on one machine. Received: --distribute "
                        f"{args.distribute} over {placement.num_processes} processes"
                    )
                position = _resume_position(args, checkpoint_dir, epochs)
                encoder = backbones.TransformerEncoder(tokenizer.vocabulary_size, **config)
                method = methods.MaskedLM(encoder, **recipe.get("method_config", {}))
                method.compile(learning_rate=learning_rate)
                token_data = ImageData("arrays", ids, "", None, None, len(ids))
                x, fit_batch, steps = fit_input(token_data, method, batch_size, args.max_steps, placement.num_replicas)
                _print_summary(
                    [
                        ("method", "masked_lm" + (f" (preset {card.name})" if card else "")),
                        (
                            "backbone",
                            f"TransformerEncoder {config or '(defaults)'}, {tokenizer.vocabulary_size} "
                            "WordPiece tokens",
                        ),
                        ("data", f"{data_path}: {len(texts)} lines -> {len(ids)} rows of {max_length} tokens"),
                        ("steps", f"{steps} per epoch"),
                        ("batch", _batch_split(fit_batch or batch_size, placement)),
                        ("training", f"{epochs} epoch(s), learning rate {learning_rate:g}, seed {seed}"),
                        ("run", f"{run_dir} (backups: {checkpoint_dir})"),
                    ]
                )
                if args.restart:
                    _remove_backup(checkpoint_dir)
                os.makedirs(run_dir, exist_ok=True)
                runs.write_command(run_dir, line)
                earlier = position[2] if position else []
                callbacks = _training_callbacks(args, run_dir, checkpoint_dir, earlier, "masked_lm", True, epochs)
                history = _train(method, x, fit_batch, epochs, callbacks, checkpoint_dir, steps)
            epoch_logs = [dict(zip(history.history, values)) for values in zip(*history.history.values())]
            runs.write_history(run_dir, epoch_logs, title="masked_lm")
            encoder, assets = method.encoder, {"tokenizer.json": tokenizer.save(scratch)}
        path = export(
            encoder,
            output,
            overwrite=args.overwrite,
            metadata=metadata,
            extra_assets=assets,
            input_shape=(max_length,) if method_name == "masked_lm" else None,
        )
    print(f"bundle: {path}")
    print(f"run: {run_dir}")
    return 0


def _read_text(path):
    """The lines of a text file, folder or glob; WikiText's `.tokens` files get their `<unk>` mapped to `[UNK]`."""
    from keras_ssl import data

    expanded = os.path.expanduser(path)
    if os.path.isfile(expanded) and expanded.endswith(".tokens"):
        return data.load_wikitext(expanded)
    if not (os.path.exists(expanded) or glob.has_magic(expanded)):
        raise UsageError(f"--data for a text method: expected a text file, a folder or a glob. Received: {path!r}")
    return data.read_text_files(expanded)
