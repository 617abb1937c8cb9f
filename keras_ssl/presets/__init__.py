"""Pretrained presets: zoo cards, downloads into a verified cache, and `load` by name.

    encoder = keras_ssl.load("simclr_resnet")          # a preset name or alias
    encoder = keras_ssl.load("path/to/bundle")          # a bundle written by keras_ssl.export
    encoder = keras_ssl.load("file:///data/x.tar.gz")   # a bundle archive
    encoder = keras_ssl.load("https://host/x.tar.gz#sha256=<64 hex>")
    encoder = keras_ssl.load("x.tar.gz#sha256=<64 hex>&size=<bytes>")  # any location may pin its checksum

Cards are read from the zoo that ships with the package and from the folders
in `KERAS_SSL_ZOO_PATH` (a private zoo; its cards win over packaged ones of the
same name). Archives are verified by sha256 before use and unpacked once into
the cache (`KERAS_SSL_HOME`, default ~/.cache/keras_ssl), beside a manifest of
the unpacked files that every load checks.
"""

import contextlib
import difflib
import json
import os
import shutil
import urllib.parse
import urllib.request
import warnings

from keras_ssl.presets.cache import OfflineError, PresetDownloadError, cache_home, fetch
from keras_ssl.presets.cards import InvalidCardError, PresetCard, Weights, parse_card
from keras_ssl.utils.files import SHA256_PATTERN, atomic_write, file_lock, is_verified, sha256_file

ZOO_PATH_ENV = "KERAS_SSL_ZOO_PATH"
CARD_FILE = "preset.json"

__all__ = [
    "ChecksumMismatchError",
    "InvalidCardError",
    "OfflineError",
    "PresetCard",
    "PresetDownloadError",
    "PresetUnavailableError",
    "UnknownPresetError",
    "Weights",
    "get_preset",
    "list_presets",
    "list_recipes",
    "load",
    "load_tokenizer",
    "parse_card",
    "zoo_directories",
]


class UnknownPresetError(ValueError):
    """A name that is neither a preset, an alias, a path nor a URL."""


class PresetUnavailableError(RuntimeError):
    """A known preset whose weights cannot be obtained here."""


class ChecksumMismatchError(ValueError):
    """A location whose `#sha256=` (or `&size=`) fragment does not match what is there."""


def packaged_zoo():
    """The zoo/ folder: beside the package in a checkout, inside it once installed."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (os.path.join(os.path.dirname(package), "zoo"), os.path.join(package, "zoo")):
        if os.path.isdir(candidate):
            return candidate
    return None


def zoo_directories():
    """Folders searched for cards, highest precedence first."""
    extra = [d for d in os.environ.get(ZOO_PATH_ENV, "").split(os.pathsep) if d]
    packaged = packaged_zoo()
    return extra + ([packaged] if packaged else [])


def _cards():
    """name -> card and alias -> name over all zoo folders (earlier folders win)."""
    cards, aliases = {}, {}
    for zoo in reversed(zoo_directories()):
        if not os.path.isdir(zoo):
            continue
        for entry in sorted(os.listdir(zoo)):
            path = os.path.join(zoo, entry, CARD_FILE)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                card = parse_card(f.read(), source=path, directory=os.path.dirname(path))
            if card.name != entry:
                raise InvalidCardError(f"{path}: the card's name must match its folder. Received: name {card.name!r}")
            cards[card.name] = card
            aliases.update(dict.fromkeys(card.aliases, card.name))
    return cards, aliases


def list_presets(include_aliases=False):
    """Sorted names of the presets: the cards with published weights, each loadable by `load` (aliases when asked)."""
    cards, aliases = _cards()
    published = {name for name, card in cards.items() if card.weights is not None}
    names = published | ({a for a, name in aliases.items() if name in published} if include_aliases else set())
    return sorted(names)


def list_recipes():
    """Sorted names of the recipes: cards without published weights (`keras-ssl pretrain <name>` trains them)."""
    cards, _ = _cards()
    return sorted(name for name, card in cards.items() if card.weights is None)


def get_preset(name):
    """The card of a preset or recipe, by name or alias; unknown names list the close matches."""
    cards, aliases = _cards()
    key = aliases.get(name, name)
    if key in cards:
        return cards[key]
    known = sorted(set(cards) | set(aliases))
    close = difflib.get_close_matches(str(name), known, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownPresetError(
        f"Unknown preset {name!r}.{hint} Known presets: {', '.join(known) or 'none'}. "
        "A path to a bundle directory or archive, or a file:// or https:// URL, is also accepted."
    )


def load(name_or_path_or_uri, trainable=True, cache_dir=None, progress=None, max_bytes=None):
    """Returns a pretrained encoder as a Keras model, ready for a downstream model.

    Args:
        name_or_path_or_uri: a preset name or alias (`keras_ssl.list_presets()`),
            a bundle directory written by `keras_ssl.export`, a bundle archive
            (.tar.gz), a plain TensorFlow SavedModel directory (TensorFlow
            backend; returned as a fine-tunable layer), a `file://` URL, or an
            `https://` URL of an archive with `#sha256=<hex>` (and optionally
            `&size=<bytes>`) so the download can be verified. The same fragment
            on an archive path, a `file://` URL or a preset name is verified too
            (a preset's card must give that sha256); on a directory it is refused,
            as a directory has no single checksum.
        trainable: whether the encoder's weights train in the downstream model.
        cache_dir: the cache folder; default `KERAS_SSL_HOME` or ~/.cache/keras_ssl.
        progress: show a download progress bar (default: when stderr is a terminal).
        max_bytes: the memory a bundle may ask for, in bytes; larger configs or
            weights files are refused before anything is allocated. Default
            $KERAS_SSL_MAX_BUNDLE_BYTES, else 2 GiB.

    Raises:
        ChecksumMismatchError: a local archive that does not match its `#sha256=` or `&size=`.
        keras_ssl.bundle.BundleTooLargeError: a bundle asking for more than `max_bytes`.
    """
    from keras_ssl.bundle import load_bundle, load_saved_model

    kind, location = _resolve(name_or_path_or_uri, cache_dir, progress)
    if kind == "saved_model":
        return load_saved_model(location, trainable=trainable)
    return load_bundle(location, trainable=trainable, max_bytes=max_bytes)


def load_tokenizer(name_or_path_or_uri, cache_dir=None, progress=None):
    """The tokenizer of a text preset or bundle, as its encoder expects token ids.

    A MaskedLM bundle carries `tokenizer.json`: a `keras_ssl.data.WordPieceTokenizer`
    is returned (`tokenizer.pack(sentences, max_length)` gives the ids). A
    Word2Vec bundle carries `vocabulary.txt`: a `keras.layers.StringLookup`
    is returned, mapping words to ids (0 padding, 1 unknown, word i of the
    vocabulary to i + 2). Accepts everything `load` accepts.
    """
    from keras_ssl.utils.bundle_layout import ASSETS, TOKENIZER_FILE, VOCABULARY_FILE

    kind, location = _resolve(name_or_path_or_uri, cache_dir, progress)
    assets = os.path.join(location, ASSETS)
    if os.path.isfile(os.path.join(assets, TOKENIZER_FILE)):
        from keras_ssl.data.tokenizer import WordPieceTokenizer

        return WordPieceTokenizer.load(location)
    if os.path.isfile(os.path.join(assets, VOCABULARY_FILE)):
        import keras

        with open(os.path.join(assets, VOCABULARY_FILE), encoding="utf-8") as f:
            words = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        return keras.layers.StringLookup(vocabulary=words, mask_token="[PAD]", oov_token="[UNK]")
    raise ValueError(
        f"{name_or_path_or_uri} has no tokenizer: expected {os.path.join(ASSETS, TOKENIZER_FILE)} (MaskedLM) or "
        f"{os.path.join(ASSETS, VOCABULARY_FILE)} (Word2Vec) in the bundle. Received: an image encoder's bundle"
    )


def _resolve(name_or_path_or_uri, cache_dir, progress):
    """`("bundle" | "saved_model", directory)` of a preset name, path, archive or URL (archives unpacked, verified)."""
    from keras_ssl.utils.bundle_layout import ASSETS

    source = os.fspath(name_or_path_or_uri)
    if not isinstance(source, str):
        raise TypeError(f"Expected a preset name, path or URL as a string. Received: {type(source).__name__}")
    if source.startswith(("https://", "http://")):
        return "bundle", _unpacked(*_fetch_url(source, cache_dir, progress), cache_dir)
    location, sha256, size = _split_checksum(source)
    if location.startswith("file://"):
        location = urllib.request.url2pathname(urllib.parse.urlparse(location).path)
        if not os.path.exists(location):
            raise FileNotFoundError(f"No bundle at {name_or_path_or_uri}")
    if not os.path.exists(location) and os.path.dirname(location):
        from keras_ssl.bundle import recover_interrupted_export

        recover_interrupted_export(location)  # a bundle an interrupted overwrite moved aside comes back
    if os.path.isdir(location):
        if sha256 or size:
            raise ValueError(
                f"A #sha256= or &size= fragment verifies an archive file, and {location} is a directory. Pack it "
                "with `keras-ssl export <dir> <file>.tar.gz` and load the archive with its checksum, or drop the "
                f"fragment. Received: {source}"
            )
        if os.path.isdir(os.path.join(location, ASSETS)) or not os.path.isfile(
            os.path.join(location, "saved_model.pb")
        ):
            return "bundle", location
        return "saved_model", location
    if os.path.isfile(location):
        actual = sha256_file(location)
        _check_checksum(source, sha256, size, actual, os.path.getsize(location))
        return "bundle", _unpacked(location, actual, cache_dir)
    if os.sep in location or location.endswith((".tar.gz", ".tgz", ".tar")):
        raise FileNotFoundError(f"No bundle at {location}")
    card = get_preset(location)
    if card.weights is not None:
        _check_checksum(source, sha256, size, card.weights.sha256, card.weights.size)
    archive = _preset_archive(card, cache_dir, progress)
    return "bundle", _unpacked(archive, card.weights.sha256, cache_dir)


def _split_checksum(location):
    """(location, sha256 or None, size or None) from a location that may end in `#sha256=<hex>[&size=<bytes>]`.

    On a plain path, `#` starts a fragment only when what follows names a
    sha256 or a size, so other file names with `#` still load.
    """
    head, hash_sign, fragment = location.rpartition("#")
    if not hash_sign:
        return location, None, None
    fields = urllib.parse.parse_qs(fragment, keep_blank_values=True)
    if not location.startswith("file://") and not {"sha256", "size"} & set(fields):
        return location, None, None
    sha256 = (fields.get("sha256") or [None])[0]
    if sha256 is not None:
        sha256 = sha256.lower()
        if not SHA256_PATTERN.fullmatch(sha256):
            raise ValueError(f"Expected #sha256= to give 64 hex digits. Received: {fragment!r} in {location}")
    size = (fields.get("size") or [None])[0]
    if size is not None:
        if not size.isdigit() or int(size) <= 0:
            raise ValueError(
                f"Expected &size= to give a positive number of bytes. Received: {fragment!r} in {location}"
            )
        size = int(size)
    return head, sha256, size


def _check_checksum(source, sha256, size, actual_sha256, actual_size):
    """Refuses a location whose fragment's sha256 or size differs from what it points at."""
    if sha256 and sha256 != actual_sha256:
        raise ChecksumMismatchError(
            f"{source}: expected sha256 {sha256} (its #sha256= fragment). Received: {actual_sha256}; "
            "refusing to load it."
        )
    if size and actual_size and size != actual_size:
        raise ChecksumMismatchError(
            f"{source}: expected {size} bytes (its &size= fragment). Received: {actual_size} bytes; "
            "refusing to load it."
        )


def _preset_archive(card, cache_dir, progress):
    """The verified archive of a preset: shipped in its zoo folder, cached, or downloaded."""
    weights = card.weights
    if weights is None:
        raise PresetUnavailableError(
            f"{card.name!r} is a recipe without published weights (keras_ssl.list_recipes()), not a preset. "
            "Train it:\n"
            f"    {card.pretrain_command}\n"
            "then `keras_ssl.load('<bundle dir>')`, or put the cards and archives of your own zoo in a folder "
            f"named by {ZOO_PATH_ENV}."
        )
    shipped = os.path.join(card.directory or "", weights.file)
    if card.directory and os.path.isfile(shipped):
        if is_verified(shipped, weights.sha256, weights.size):
            return shipped
        raise PresetUnavailableError(f"{shipped} does not match the sha256 and size in its card: reinstall keras_ssl.")
    try:
        return fetch(weights.urls, weights.sha256, weights.size, weights.file, cache_dir=cache_dir, progress=progress)
    except PresetDownloadError as error:
        raise type(error)(
            f"{error}\nTo get preset {card.name!r}: set KERAS_SSL_MIRROR to a server holding {weights.file}, "
            f"or train it with `{card.pretrain_command}` and load the bundle directory."
        ) from None


def _fetch_url(url, cache_dir, progress):
    """(path of the verified download, its sha256) for an https:// URL carrying #sha256=<hex>[&size=<bytes>]."""
    location, sha256, size = _split_checksum(url)
    if not sha256:
        raise ValueError(
            "An https:// bundle must say its checksum so the download can be verified: "
            f"append #sha256=<64 hex digits>. Received: {url}"
        )
    filename = os.path.basename(urllib.parse.urlparse(location).path) or "bundle.tar.gz"
    return fetch([location], sha256, size, filename, cache_dir=cache_dir, progress=progress), sha256


def _unpacked(archive, sha256, cache_dir):
    """The directory of a verified archive, unpacked once into the cache (keyed by its sha256).

    The unpacked copy sits beside a manifest (`<sha256>.manifest.json`) of its
    files' sizes and the sha256 of its config, metadata and weights. Each load
    checks the copy against it and unpacks the archive again when they differ,
    or when there is no manifest (a copy from an older keras_ssl, or a process
    killed between unpacking and writing it).
    """
    from keras_ssl.presets.archive import extract_archive, manifest_difference, tree_manifest

    target = os.path.join(cache_home(cache_dir), "bundles", sha256)
    manifest = target + ".manifest.json"
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with file_lock(target + ".lock"):
        reason = "no manifest"
        if os.path.isdir(target) and os.path.isfile(manifest):
            with open(manifest, "rb") as f:
                reason = manifest_difference(target, f.read())
            if reason:
                warnings.warn(
                    f"unpacked cache entry {target} differs from its archive ({reason}); unpacking it again",
                    stacklevel=3,
                )
        if reason:
            with contextlib.suppress(FileNotFoundError):
                os.remove(manifest)
            shutil.rmtree(target, ignore_errors=True)
            extract_archive(archive, target)
            with atomic_write(manifest, "w") as f:
                json.dump(tree_manifest(target), f, indent=1, sort_keys=True)
    return target
