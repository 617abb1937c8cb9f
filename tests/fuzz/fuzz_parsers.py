"""Fuzz harness for the strict parsers of untrusted files: preset cards and bundle metadata.

Each input is fed as raw bytes to `parse_card` and `parse_metadata`, and then
drives structured mutations of a valid card or metadata.json (fields replaced,
deleted or added with odd JSON values, raw text spliced in). The parsers may
raise only their documented errors, `InvalidCardError` and
`InvalidBundleError`; anything else escapes and is a finding.

    make fuzz                                    # installs atheris, runs 60 s over a copy of corpus/
    python tests/fuzz/fuzz_parsers.py DIR -max_total_time=60

Without atheris the module still imports, and `TestOneInput` runs on a small
stand-in for `atheris.FuzzedDataProvider` (tests/fuzz/test_fuzz_parsers.py).
"""

import contextlib
import copy
import json
import os
import sys

try:
    import atheris
except ImportError:
    atheris = None

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import keras  # noqa: F401  (imported first so that only keras_ssl is instrumented)

_instrumented = (
    atheris.instrument_imports(include=["keras_ssl"])
    if atheris and __name__ == "__main__"
    else contextlib.nullcontext()
)
with _instrumented:
    from keras_ssl.bundle import BUNDLE_FORMAT, InvalidBundleError, parse_metadata
    from keras_ssl.presets.cards import NAME_PATTERN, SHA256_PATTERN, InvalidCardError, PresetCard, parse_card

with open(os.path.join(CORPUS, "card_valid.json"), "rb") as f:
    VALID_CARD = json.load(f)
with open(os.path.join(CORPUS, "metadata_valid.json"), "rb") as f:
    VALID_METADATA = json.load(f)

ODD_STRINGS = (
    "",
    "..",
    "../evil",
    "/etc/passwd",
    "file:///etc/passwd",
    "a" * 64,
    "A" * 64,
    "x" * 5000,
    "\x00",
    "\ud800",
    "simclr_resnet18_cifar10\n",
    "0" * 64 + "\n",
    "é",
    "keras_ssl.preset/1",
    "keras_ssl.bundle/1",
)
ODD_NUMBERS = (
    0,
    -1,
    1,
    2**20,
    2**40,
    2**63,
    -(2**63),
    10**400,
    0.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
)


class _Provider:
    """The few `atheris.FuzzedDataProvider` methods the harness uses, for runs without atheris."""

    def __init__(self, data):
        self._data, self._pos = bytes(data), 0

    def _take(self, count):
        chunk = self._data[self._pos : self._pos + count]
        self._pos += len(chunk)
        return chunk

    def ConsumeIntInRange(self, low, high):  # noqa: N802  (atheris's name)
        span = high - low
        return low + int.from_bytes(self._take((span.bit_length() + 7) // 8), "little") % (span + 1) if span else low

    def ConsumeBool(self):  # noqa: N802
        return bool(self.ConsumeIntInRange(0, 1))

    def ConsumeUnicodeNoSurrogates(self, count):  # noqa: N802
        return self._take(count).decode("latin-1")


def _pick(fdp, options):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _random_value(fdp, depth=0):
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return _pick(fdp, ODD_NUMBERS)
    if kind == 3:
        return fdp.ConsumeIntInRange(-(2**31), 2**31)
    if kind == 4:
        return _pick(fdp, ODD_STRINGS)
    if kind == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 16))
    if kind == 6:
        return [_random_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {
        fdp.ConsumeUnicodeNoSurrogates(6): _random_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))
    }


def _mutate(fdp, document):
    """JSON text of `document` with up to three random edits, sometimes with raw text spliced in."""
    document = copy.deepcopy(document)
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        parent = document
        while True:  # walk down to a random container
            keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
            key = _pick(fdp, keys) if keys else None
            child = parent[key] if keys else None
            if not (isinstance(child, (dict, list)) and child and fdp.ConsumeBool()):
                break
            parent = child
        operation = fdp.ConsumeIntInRange(0, 2)
        if operation == 0 and keys:
            parent[key] = _random_value(fdp)
        elif operation == 1 and keys:
            del parent[key]
        elif isinstance(parent, dict):
            parent[_pick(fdp, (*VALID_CARD, *VALID_METADATA, "extra"))] = _random_value(fdp)
        else:
            parent.append(_random_value(fdp))
    text = json.dumps(document)  # NaN and Infinity come out as bare constants
    if fdp.ConsumeIntInRange(0, 3) == 0:
        start = fdp.ConsumeIntInRange(0, len(text))
        end = fdp.ConsumeIntInRange(start, len(text))
        text = text[:start] + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8)) + text[end:]
    return text


def _check_card(text):
    try:
        card = parse_card(text, source="<fuzz>")
    except InvalidCardError:
        return
    assert isinstance(card, PresetCard) and NAME_PATTERN.fullmatch(card.name), card
    assert card.weights is None or SHA256_PATTERN.fullmatch(card.weights.sha256), card


def _check_metadata(text):
    try:
        info = parse_metadata(text, source="<fuzz>")
    except InvalidBundleError:
        return
    assert isinstance(info, dict) and info["format"] == BUNDLE_FORMAT, info


def TestOneInput(data):  # noqa: N802  (the name atheris calls)
    """Feeds `data` to both parsers as bytes, then as the choices of a mutation of a valid document."""
    _check_card(data)
    _check_metadata(data)
    fdp = atheris.FuzzedDataProvider(data) if atheris else _Provider(data)
    as_card = fdp.ConsumeBool()
    text = _mutate(fdp, VALID_CARD if as_card else VALID_METADATA)
    if fdp.ConsumeBool():
        text = text.encode("utf-8", "surrogatepass")
    (_check_card if as_card else _check_metadata)(text)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: `make fuzz` installs it into .venv")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
