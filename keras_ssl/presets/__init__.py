"""Pretrained presets: zoo cards, downloads into a verified cache, and `load` by name.

    encoder = keras_ssl.load("simclr_resnet")          # a preset name or alias
    encoder = keras_ssl.load("path/to/bundle")          # a bundle written by keras_ssl.export
    encoder = keras_ssl.load("file:///data/x.tar.gz")   # a bundle archive
    encoder = keras_ssl.load("https://host/x.tar.gz#sha256=<64 hex>")

Cards are read from the zoo that ships with the package and from the folders
in `KERAS_SSL_ZOO_PATH` (a private zoo; its cards win over packaged ones of the
same name). Archives are verified by sha256 before use and unpacked once into
the cache (`KERAS_SSL_HOME`, default ~/.cache/keras_ssl).
"""

import difflib
import os
import shutil
import urllib.parse
import urllib.request

from keras_ssl.presets.cache import OfflineError, PresetDownloadError, cache_home, fetch
from keras_ssl.presets.cards import InvalidCardError, PresetCard, Weights, parse_card
from keras_ssl.utils.files import file_lock, is_verified, sha256_file

ZOO_PATH_ENV = "KERAS_SSL_ZOO_PATH"
CARD_FILE = "preset.json"

__all__ = [
    "InvalidCardError",
    "OfflineError",
    "PresetCard",
    "PresetDownloadError",
    "PresetUnavailableError",
    "UnknownPresetError",
    "Weights",
    "get_preset",
    "list_presets",
    "load",
    "parse_card",
    "zoo_directories",
]


class UnknownPresetError(ValueError):
    """A name that is neither a preset, an alias, a path nor a URL."""


class PresetUnavailableError(RuntimeError):
    """A known preset whose weights cannot be obtained here."""


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
    """Sorted preset names (and their aliases when asked)."""
    cards, aliases = _cards()
    return sorted(set(cards) | (set(aliases) if include_aliases else set()))


def get_preset(name):
    """The card of a preset name or alias; unknown names list the close matches."""
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


def load(name_or_path_or_uri, trainable=True, cache_dir=None, progress=None):
    """Returns a pretrained encoder as a Keras model, ready for a downstream model.

    Args:
        name_or_path_or_uri: a preset name or alias (`keras_ssl.list_presets()`),
            a bundle directory written by `keras_ssl.export`, a bundle archive
            (.tar.gz), a plain TensorFlow SavedModel directory (TensorFlow
            backend; returned as a fine-tunable layer), a `file://` URL, or an
            `https://` URL of an archive with `#sha256=<hex>` (and optionally
            `&size=<bytes>`) so the download can be verified.
        trainable: whether the encoder's weights train in the downstream model.
        cache_dir: the cache folder; default `KERAS_SSL_HOME` or ~/.cache/keras_ssl.
        progress: show a download progress bar (default: when stderr is a terminal).
    """
    from keras_ssl.bundle import load_bundle, load_saved_model
    from keras_ssl.utils.bundle_layout import ASSETS

    source = os.fspath(name_or_path_or_uri)
    if not isinstance(source, str):
        raise TypeError(f"Expected a preset name, path or URL as a string. Received: {type(source).__name__}")
    if source.startswith("file://"):
        source = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"No bundle at {name_or_path_or_uri}")
    if source.startswith(("https://", "http://")):
        return _load_archive(*_fetch_url(source, cache_dir, progress), trainable, cache_dir)
    if os.path.isdir(source):
        if os.path.isdir(os.path.join(source, ASSETS)) or not os.path.isfile(os.path.join(source, "saved_model.pb")):
            return load_bundle(source, trainable=trainable)
        return load_saved_model(source, trainable=trainable)
    if os.path.isfile(source):
        return _load_archive(source, sha256_file(source), trainable, cache_dir)
    if os.sep in source or source.endswith((".tar.gz", ".tgz", ".tar")):
        raise FileNotFoundError(f"No bundle at {source}")
    card = get_preset(source)
    return _load_archive(_preset_archive(card, cache_dir, progress), card.weights.sha256, trainable, cache_dir)


def _preset_archive(card, cache_dir, progress):
    """The verified archive of a preset: shipped in its zoo folder, cached, or downloaded."""
    weights = card.weights
    if weights is None:
        raise PresetUnavailableError(
            f"Preset {card.name!r} has no published weights yet. Train them with its recipe:\n"
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
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.fragment)
    sha256 = (query.get("sha256") or [""])[0].lower()
    if not sha256:
        raise ValueError(
            "An https:// bundle must say its checksum so the download can be verified: "
            f"append #sha256=<64 hex digits>. Received: {url}"
        )
    size = int((query.get("size") or ["0"])[0]) or None
    filename = os.path.basename(parsed.path) or "bundle.tar.gz"
    path = fetch(
        [urllib.parse.urlunparse(parsed._replace(fragment=""))],
        sha256,
        size,
        filename,
        cache_dir=cache_dir,
        progress=progress,
    )
    return path, sha256


def _load_archive(archive, sha256, trainable, cache_dir):
    """Unpacks a verified archive once into the cache (keyed by its sha256) and loads the bundle."""
    from keras_ssl.bundle import InvalidBundleError, load_bundle
    from keras_ssl.presets.archive import extract_archive

    target = os.path.join(cache_home(cache_dir), "bundles", sha256)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with file_lock(target + ".lock"):
        for attempt in range(2):
            if not os.path.isdir(target):
                extract_archive(archive, target)
            try:
                return load_bundle(target, trainable=trainable)
            except InvalidBundleError:
                if attempt:
                    raise
                # An unpacked copy damaged since it was extracted: unpack it again from the verified archive.
                shutil.rmtree(target, ignore_errors=True)
