"""Image folders and TFRecord files as resumable pretraining input.

Keras's `keras.utils.image_dataset_from_directory` reads a folder too, but it
does not fit long runs: its order is one `tf.data` shuffle per iteration, so
a run resumed in the middle of epoch `e` cannot replay the batches an
uninterrupted run would have seen; it stops at the first undecodable file;
and it expects one sub-folder per class. The readers here enumerate the
files once (paths only, never the pixels), give every epoch an order that is
a pure function of `(seed, epoch)`, skip the already-trained part of a
resumed epoch before anything is decoded, and report and skip unreadable
files.

Both readers implement the *resumable-input protocol* that `Method.fit` uses:

- `steps_per_epoch`: full batches per epoch (the remainder is dropped);
- `batch_size`, and `input_shape`: one sample's shape, `(size, size, channels)`;
- `fit_input(start_epoch, first_step, end_epoch)`: a batched `tf.data.Dataset`
  with exactly `(end_epoch - start_epoch) * steps_per_epoch - first_step`
  batches: epoch `start_epoch` from its batch `first_step` on, then every
  following epoch in full.

TensorFlow is imported lazily, inside the functions that need it.
"""

import concurrent.futures
import os
import struct
import warnings

import numpy as np

from keras_ssl.data.arrays import draw_seed

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrec")
DEFAULT_BATCH_SIZE = 256
# Serialized records mixed together in a TFRecord epoch (see `TFRecordImages`).
MIN_SHUFFLE_WINDOW = 1024
# Unreadable files named one by one in a warning; the rest are counted.
NAMES_IN_WARNING = 10


class UnreadableImageWarning(UserWarning):
    """Some image files or records could not be decoded and were skipped."""


def _check_size_and_channels(image_size, channels, batch_size):
    for name, value in (("image_size", image_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grayscale) or 3 (RGB). Received: channels={channels!r}")


def _check_seed(seed):
    if seed is None:
        return draw_seed()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
    return int(seed) % 2**63  # the stateless TensorFlow ops take int64 seeds


def _decode(contents, image_size, channels):
    """Encoded JPEG/PNG/BMP/GIF bytes -> (image_size, image_size, channels) uint8.

    The central square of the image (its full shorter side) is resized to
    `image_size` with antialiased bilinear interpolation, so nothing is
    stretched; a smaller image is upscaled. Grayscale becomes RGB and RGB
    becomes grayscale as `channels` asks; an alpha channel is dropped (as
    PIL's `convert("RGB")` does), CMYK JPEGs are converted to RGB by the
    decoder, and a GIF gives its first frame.
    """
    import tensorflow as tf

    image = tf.cond(
        tf.io.is_jpeg(contents),
        # decode_image's JPEG path uses libjpeg's fast integer IDCT, which is off by up to ~8 levels on small
        # images; the accurate one matches PIL's decoding (and other pipelines) for a few percent more time.
        lambda: tf.io.decode_jpeg(contents, channels=0, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=0, expand_animations=False),
    )
    count = tf.shape(image)[-1]  # 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    if channels == 3:
        image = tf.cond(count < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]), lambda: image[..., :3])
    else:
        image = tf.cond(count < 3, lambda: image[..., :1], lambda: tf.image.rgb_to_grayscale(image[..., :3]))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, (image_size, image_size, channels))


class _ResumableImages:
    """What both readers share: the protocol's attributes and the stream of batches.

    A subclass implements `_records(start_epoch, first_step, end_epoch)`, the
    dataset of what `_load` turns into one image (a path, a serialized
    record), and `_describe_skipped`.
    """

    def __init__(self, num_images, image_size, batch_size, shuffle, seed, channels, source):
        self.num_images = int(num_images)
        self.image_size, self.batch_size, self.channels = int(image_size), int(batch_size), int(channels)
        self.shuffle, self.seed, self.source = bool(shuffle), _check_seed(seed), source
        self.steps_per_epoch = self.num_images // self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{source} holds fewer images than one batch: lower `batch_size`. "
                f"Received: {self.num_images} image(s), batch_size={self.batch_size}"
            )

    @property
    def input_shape(self):
        """The shape of one image: `(image_size, image_size, channels)`."""
        return (self.image_size, self.image_size, self.channels)

    def __len__(self):
        return self.steps_per_epoch

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.source!r}, images={self.num_images}, input_shape={self.input_shape}, "
            f"batch_size={self.batch_size}, steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle}, "
            f"seed={self.seed})"
        )

    def _check_position(self, start_epoch, first_step, end_epoch):
        for name, value in (("start_epoch", start_epoch), ("first_step", first_step), ("end_epoch", end_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative int. Received: {name}={value!r}")
        if first_step >= self.steps_per_epoch:
            raise ValueError(
                f"`first_step` must be below steps_per_epoch={self.steps_per_epoch}. Received: first_step={first_step}"
            )
        if end_epoch < start_epoch or (end_epoch == start_epoch and first_step):
            raise ValueError(
                "`end_epoch` must be after `start_epoch` (the stream ends before `end_epoch`). "
                f"Received: start_epoch={start_epoch}, first_step={first_step}, end_epoch={end_epoch}"
            )
        return int(start_epoch), int(first_step), int(end_epoch)

    def fit_input(self, start_epoch, first_step, end_epoch):
        """Batches of epochs `start_epoch` to `end_epoch - 1`, starting at batch `first_step` of the first.

        Returns a `tf.data.Dataset` of uint8 batches `(batch_size, *input_shape)`
        with exactly `(end_epoch - start_epoch) * steps_per_epoch - first_step`
        elements. Epoch `e` always yields the same batches, in the same order,
        whatever `start_epoch` and `first_step` were: a run resumed at
        `(e, s)` sees what an uninterrupted run saw from there. The skipped
        part of the first epoch is never read or decoded.

        A file or record that fails to decode here (the up-front checks catch
        most) is skipped with an `UnreadableImageWarning`; the stream is then
        topped up from its own beginning so the batch count still holds, and
        the batches after it shift by one image.
        """
        import tensorflow as tf

        start_epoch, first_step, end_epoch = self._check_position(start_epoch, first_step, end_epoch)
        total = (end_epoch - start_epoch) * self.steps_per_epoch * self.batch_size - first_step * self.batch_size
        records = self._records(start_epoch, first_step, end_epoch).enumerate()
        images = records.map(
            lambda position, record: (position, self._load(record)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,  # the order is the point
        )
        images = images.ignore_errors(log_warning=False)
        images = self._report_gaps(images, start_epoch, first_step, total)
        # repeat(2) tops up what decoding errors removed; `take` stops before the second pass when none did.
        batches = images.repeat(2).batch(self.batch_size, drop_remainder=True)
        return batches.take(total // self.batch_size).prefetch(tf.data.AUTOTUNE)

    def dataset(self, epoch=0):
        """The batches of one epoch, in epoch `epoch`'s order: a plain `tf.data.Dataset` for your own loops.

        `fit_input(epoch, 0, epoch + 1)`. Iterating it again replays the same
        epoch; call `dataset(e)` for each epoch `e` to get a new order.
        """
        return self.fit_input(epoch, 0, epoch + 1)

    def _report_gaps(self, images, start_epoch, first_step, total):
        """Warns about the positions `ignore_errors` dropped, naming what they were; yields the images."""
        import tensorflow as tf

        end = tf.data.Dataset.from_tensors((tf.constant(total, tf.int64), tf.zeros(self.input_shape, tf.uint8)))

        def report(low, high):
            self._warn_runtime_skips(start_epoch, first_step, int(low), int(high))
            return np.int64(0)

        def step(expected, element):
            position, image = element
            gap = tf.cond(
                position > expected,
                lambda: tf.py_function(report, [expected, position], tf.int64),
                lambda: tf.constant(0, tf.int64),
            )
            with tf.control_dependencies([gap]):
                return position + 1, (position < total, image)

        # A sentinel at `total` reveals a gap at the very end; it is filtered out again.
        images = images.concatenate(end).scan(tf.constant(0, tf.int64), step)
        images = images.filter(lambda real, _: real)
        return images.map(lambda _, image: image)

    def _warn_runtime_skips(self, start_epoch, first_step, low, high):
        names = self._describe_skipped(start_epoch, first_step, low, high)
        warnings.warn(
            f"Skipped {high - low} image(s) of {self.source} that could not be decoded: {names}. "
            "The stream is topped up to keep its batch count.",
            UnreadableImageWarning,
            stacklevel=2,
        )


def _sniff(path):
    """None when `path` looks like a complete JPEG/PNG/GIF/BMP file, else why it does not.

    Reads the first and last bytes only. Files that fail this are decoded once
    up front to be sure (TensorFlow's decoders are the judge), so an image
    with trailing data (e.g. a phone's motion photo) is still read.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(max(0, size - 16))
            tail = f.read(16)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    end = tail.rstrip(b"\x00")
    if head.startswith(b"\xff\xd8\xff"):
        return None if end.endswith(b"\xff\xd9") else "JPEG without its end marker (truncated?)"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if b"IEND" in tail else "PNG without its IEND chunk (truncated?)"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return None if end.endswith(b";") else "GIF without its trailer (truncated?)"
    if head.startswith(b"BM") and len(head) >= 30:
        declared, bits = struct.unpack("<I", head[2:6])[0], struct.unpack("<H", head[28:30])[0]
        if size < declared:
            return f"BMP of {size} bytes, its header says {declared} (truncated?)"
        return None if bits in (8, 24, 32) else f"BMP of {bits} bits per pixel"
    return f"not a JPEG, PNG, GIF or BMP file (starts with {head[:8]!r})"


def _decodes(path):
    """None when TensorFlow decodes the file, else its error message."""
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        return getattr(error, "message", str(error)).strip().splitlines()[0]
    return None


def list_image_files(directory):
    """The image files below `directory`, at any depth, as sorted absolute paths.

    Files whose name ends in .jpg, .jpeg, .png, .bmp or .gif (any case) count;
    hidden files and folders (name starting with ".", e.g. macOS `._x.jpg`
    resource forks) are ignored. Symbolic links to files are followed, links
    to folders are not. Raises ValueError, naming the folder and the
    extensions, when there is no such file.
    """
    directory = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(directory):
        raise ValueError(f"Expected a directory of images. Received: {directory} (not a directory)")
    found, others = [], 0
    for root, folders, files in os.walk(directory):
        folders[:] = [f for f in folders if not f.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), directory))
            else:
                others += 1
    if not found:
        held = f"{others} file(s) with other extensions" if others else "no files"
        raise ValueError(
            f"Found no image files ({', '.join(IMAGE_EXTENSIONS)}, any case) below {directory}. Received: {held}"
        )
    # Sorted relative paths: the same order wherever the folder is mounted and whatever os.walk's order.
    return [os.path.join(directory, name) for name in sorted(found)]


class ImageFolder(_ResumableImages):
    """The images below a folder, as resumable uint8 batches; build it with `image_folder`.

    Attributes:
        files: the readable image files, sorted (absolute paths).
        skipped: `(path, reason)` of the files found unreadable up front.
        num_images, image_size, channels, batch_size, steps_per_epoch,
        input_shape, shuffle, seed: as given or derived.
    """

    def __init__(self, directory, image_size, batch_size=DEFAULT_BATCH_SIZE, shuffle=True, seed=None, channels=3):
        _check_size_and_channels(image_size, channels, batch_size)
        self.directory = os.path.abspath(os.fspath(directory))
        files = list_image_files(self.directory)
        self.files, self.skipped = _readable(files)
        if self.skipped:
            _warn_skipped(self.skipped, self.directory, len(files))
        if not self.files:
            raise ValueError(f"None of the {len(files)} image file(s) below {self.directory} can be decoded.")
        super().__init__(len(self.files), image_size, batch_size, shuffle, seed, channels, self.directory)

    def order(self, epoch):
        """The file indices (into `files`) of epoch `epoch`'s images, in order (the dropped remainder excluded)."""
        import tensorflow as tf

        positions = tf.range(self.steps_per_epoch * self.batch_size, dtype=tf.int64)
        return self._file_index(positions, tf.constant(epoch, tf.int64)).numpy()

    def _file_index(self, position, epoch):
        import tensorflow as tf

        if not self.shuffle:
            return position
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
        # A stateless bijection of [0, num_images): any position of any epoch without materialising the order.
        return tf.random.experimental.index_shuffle(position, seed, tf.constant(self.num_images - 1, tf.int64))

    def _records(self, start_epoch, first_step, end_epoch):
        import tensorflow as tf

        per_epoch = self.steps_per_epoch * self.batch_size
        first = start_epoch * per_epoch + first_step * self.batch_size
        paths = tf.constant(self.files)
        positions = tf.data.Dataset.range(first, end_epoch * per_epoch)
        return positions.map(lambda g: tf.gather(paths, self._file_index(g % per_epoch, g // per_epoch)))

    def _load(self, path):
        import tensorflow as tf

        return _decode(tf.io.read_file(path), self.image_size, self.channels)

    def _describe_skipped(self, start_epoch, first_step, low, high):
        import tensorflow as tf

        per_epoch = self.steps_per_epoch * self.batch_size
        first = start_epoch * per_epoch + first_step * self.batch_size
        names = []
        for position in range(first + low, first + min(high, low + NAMES_IN_WARNING)):  # one seed per call
            index = int(self._file_index(tf.constant(position % per_epoch, tf.int64), position // per_epoch))
            names.append(os.path.relpath(self.files[index], self.directory))
        more = f" and {high - low - NAMES_IN_WARNING} more" if high - low > NAMES_IN_WARNING else ""
        return ", ".join(names) + more


def _readable(files):
    """`(readable files, [(path, reason), ...])`: a header check for all, a trial decode for the suspicious."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        reasons = list(pool.map(_sniff, files, chunksize=64))
    kept, skipped = [], []
    for path, reason in zip(files, reasons):
        if reason is not None:
            error = _decodes(path)
            if error is not None:
                skipped.append((path, f"{reason}; {error}"))
                continue
        kept.append(path)
    return kept, skipped


def _warn_skipped(skipped, directory, found):
    shown = "; ".join(f"{os.path.relpath(path, directory)} ({reason})" for path, reason in skipped[:NAMES_IN_WARNING])
    more = f"; and {len(skipped) - NAMES_IN_WARNING} more" if len(skipped) > NAMES_IN_WARNING else ""
    warnings.warn(
        f"Skipping {len(skipped)} of {found} image file(s) below {directory} that cannot be decoded: {shown}{more}",
        UnreadableImageWarning,
        stacklevel=3,
    )


def image_folder(directory, image_size, batch_size=DEFAULT_BATCH_SIZE, shuffle=True, seed=None, channels=3):
    """The images below a folder as resumable batches of uint8 `(batch, image_size, image_size, channels)`.

    Every JPEG, PNG, BMP and GIF file below `directory`, at any depth, is one
    sample (see `list_image_files`); sub-folders and labels play no role. The
    list of paths is built once; the pixels are read as batches are needed.
    Each image's central square (its whole shorter side) is resized to
    `image_size` (antialiased bilinear): the aspect ratio is kept and the
    borders of the longer side are cut. Smaller images are upscaled the same
    way, so a 20x20 image in a 224 pipeline is blurry but accepted. Images are
    converted to `channels` (grayscale <-> RGB; alpha dropped; CMYK JPEG to
    RGB; a GIF's first frame).

    Files that cannot be decoded are skipped with an `UnreadableImageWarning`
    that names them. The check reads each file's first and last bytes (a
    pool of threads); files that look truncated or are not images are decoded
    once to be sure. Nothing in the folder is written.

    Args:
        directory: the folder.
        image_size: the side of the square images the batches hold.
        batch_size: images per batch; the last partial batch of each epoch is dropped.
        shuffle: a new order each epoch (else the sorted file order every epoch).
        seed: the order's seed; default: drawn from NumPy's global generator,
            which `keras.utils.set_random_seed` seeds. Epoch `e`'s order depends
            on `(seed, e)` only.
        channels: 3 (RGB) or 1 (grayscale).

    Returns:
        An `ImageFolder`: `fit_input(start_epoch, first_step, end_epoch)` for
        `Method.fit`, `dataset(epoch=0)` for a plain `tf.data.Dataset`, and
        `steps_per_epoch`, `batch_size`, `input_shape`, `files`, `skipped`.
    """
    return ImageFolder(directory, image_size, batch_size=batch_size, shuffle=shuffle, seed=seed, channels=channels)


# --- TFRecords ------------------------------------------------------------------------


def _record_count_and_features(path):
    """`(records, feature names of the first record)` of an uncompressed TFRecord file.

    Walks the record framing (8-byte length, 4-byte CRC, data, 4-byte CRC)
    and seeks over the data, so counting reads a few bytes per record.
    """
    import tensorflow as tf

    count, features = 0, None
    with tf.io.gfile.GFile(path, "rb") as f:
        size = f.size()
        while f.tell() < size:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"Expected a TFRecord file. Received: {path} ends inside a record header")
            (length,) = struct.unpack("<Q", header[:8])
            if f.tell() + length + 4 > size:
                raise ValueError(
                    f"Expected a TFRecord file. Received: {path}, whose record {count} claims {length} bytes "
                    "past the end of the file (truncated, or compressed: only uncompressed TFRecords are read)"
                )
            if features is None:
                example = tf.train.Example()
                try:
                    example.ParseFromString(f.read(length))
                except Exception as error:  # protobuf's DecodeError lives in a module that varies by version
                    raise ValueError(
                        f"Expected serialized tf.train.Example records. Received: {path}, whose first record "
                        f"does not parse ({error})"
                    ) from error
                features = example.features.feature
                f.seek(4, 1)
            else:
                f.seek(length + 4, 1)
            count += 1
    return count, features


def _check_feature(path, features, feature):
    if feature not in features:
        raise ValueError(
            f"Expected records with an encoded-image bytes feature {feature!r}. Received: {path}, whose first "
            f"record has the features {sorted(features)}; pass `feature=` the one holding the encoded images."
        )
    kind = features[feature].WhichOneof("kind")
    if kind != "bytes_list":
        raise ValueError(
            f"Expected feature {feature!r} to hold encoded image bytes. Received: {path}, where it is a {kind}."
        )


class TFRecordImages(_ResumableImages):
    """Encoded images in TFRecord files of `tf.train.Example`, as resumable batches; build it with `tfrecord_images`.

    TFRecords cannot be read at random, so an epoch's order is built in two
    stages, each a pure function of `(seed, epoch)`: the files are permuted,
    read interleaved (deterministically), and the records are mixed within
    consecutive windows of `window` records by a stateless permutation. Write
    the records in random order across files for a well-mixed stream, as for
    any TFRecord pipeline. A resumed epoch reads the records it skips but does
    not decode them.

    Attributes:
        files: the matched files, sorted.
        records_per_file: how many records each holds.
        window: records mixed together (max(1024, 4 * batch_size)).
    """

    def __init__(
        self, pattern, image_size, batch_size=DEFAULT_BATCH_SIZE, feature="image", shuffle=True, seed=None, channels=3
    ):
        import tensorflow as tf

        _check_size_and_channels(image_size, channels, batch_size)
        patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
        files = sorted({path for p in patterns for path in tf.io.gfile.glob(os.fspath(p))})
        if not files:
            raise ValueError(f"Expected TFRecord files. Received: no file matches {pattern!r}")
        self.files, self.feature, self.records_per_file = files, str(feature), []
        for path in files:
            count, features = _record_count_and_features(path)
            if count:
                _check_feature(path, features, self.feature)
            self.records_per_file.append(count)
        if not sum(self.records_per_file):
            raise ValueError(
                f"Expected TFRecord files with records. Received: {len(files)} empty file(s) for {pattern!r}"
            )
        self.window = max(MIN_SHUFFLE_WINDOW, 4 * int(batch_size))
        super().__init__(sum(self.records_per_file), image_size, batch_size, shuffle, seed, channels, str(pattern))

    def _epoch(self, epoch):
        """The serialized records of one epoch, in its order (the dropped remainder excluded)."""
        import tensorflow as tf

        seed = tf.stack([tf.constant(self.seed, tf.int64), epoch])
        files = tf.constant(self.files)
        if self.shuffle:
            files = tf.random.experimental.stateless_shuffle(files, seed)
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(16, len(self.files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if self.shuffle:
            windows = records.batch(self.window).enumerate()

            def mix(index, window):
                window_seed = tf.random.experimental.stateless_fold_in(seed, index)
                return tf.random.experimental.stateless_shuffle(window, window_seed)

            records = windows.map(mix).unbatch()
        return records.take(self.steps_per_epoch * self.batch_size)

    def _records(self, start_epoch, first_step, end_epoch):
        import tensorflow as tf

        skip, none = tf.constant(first_step * self.batch_size, tf.int64), tf.constant(0, tf.int64)
        epochs = tf.data.Dataset.range(start_epoch, end_epoch)
        return epochs.flat_map(lambda e: self._epoch(e).skip(tf.where(e == start_epoch, skip, none)))

    def _load(self, record):
        import tensorflow as tf

        parsed = tf.io.parse_single_example(record, {self.feature: tf.io.FixedLenFeature([], tf.string)})
        return _decode(parsed[self.feature], self.image_size, self.channels)

    def _describe_skipped(self, start_epoch, first_step, low, high):
        return (
            f"record(s) {low} to {high - 1} of this stream (counted from epoch {start_epoch}, step {first_step}), "
            f"without {self.feature!r} or not decodable"
        )


def tfrecord_images(
    pattern, image_size, batch_size=DEFAULT_BATCH_SIZE, feature="image", shuffle=True, seed=None, channels=3
):
    """Encoded images stored in TFRecord files, as resumable batches of uint8 `(batch, size, size, channels)`.

    Each record is a serialized `tf.train.Example` whose bytes feature
    `feature` holds one encoded JPEG/PNG/BMP/GIF image (labels and other
    features are ignored); images are converted and resized as in
    `image_folder`. Files must be uncompressed. Up front, every file's records
    are counted (by their framing: a few bytes read per record) and its first
    record must have `feature`: a file whose first record lacks it is a
    ValueError naming the file and the features it has. A later record that
    fails is skipped with an `UnreadableImageWarning`.

    Args:
        pattern: a glob (e.g. "data/train-*.tfrecord"), a file, or a list of
            either; `tf.io.gfile` paths such as gs:// work too.
        image_size, batch_size, shuffle, seed, channels: as in `image_folder`.
        feature: the name of the encoded-image feature.

    Returns:
        A `TFRecordImages` (the same protocol as `image_folder`'s result).
    """
    return TFRecordImages(
        pattern, image_size, batch_size=batch_size, feature=feature, shuffle=shuffle, seed=seed, channels=channels
    )


def write_tfrecords(images, prefix, shards=1, feature="image"):
    """Writes images as TFRecord shards `{prefix}-00000-of-0000N.tfrecord`; returns their paths.

    `images` is a uint8 NHWC array (each image encoded as PNG) or an
    `ImageFolder` (each file's bytes copied as they are, in sorted order, so
    nothing is re-encoded). Image `i` goes to shard `i % shards`. The folder
    of `prefix` is created if needed; existing files are never overwritten:
    a path that exists raises FileExistsError before anything is written.
    """
    import tensorflow as tf

    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"`shards` must be a positive int. Received: shards={shards!r}")
    prefix = os.fspath(prefix)
    paths = [f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
    existing = [p for p in paths if os.path.exists(p)]
    if existing:
        raise FileExistsError(f"Refusing to overwrite existing TFRecord files: {existing}")
    if isinstance(images, ImageFolder):

        def encoded():
            for path in images.files:
                with open(path, "rb") as f:
                    yield f.read()

    else:
        from keras_ssl.data.arrays import check_images

        array = check_images(images)
        if array.dtype != np.uint8:
            raise ValueError(f"Expected uint8 images to encode as PNG. Received: dtype={array.dtype}")

        def encoded():
            for image in array:
                yield tf.io.encode_png(image).numpy()

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    try:
        for i, contents in enumerate(encoded()):
            bytes_feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[contents]))
            example = tf.train.Example(features=tf.train.Features(feature={feature: bytes_feature}))
            writers[i % shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return paths
