"""Preset cards: the `preset.json` files in zoo/, parsed strictly.

A card names a pretrained encoder and says everything needed to trust and
reproduce it: the method, the backbone config, the input it expects, the
recipe that trains it, the metrics that recipe reached, and where its weights
live (file name, sha256, size, URLs). `parse_card` accepts only that shape and
raises `InvalidCardError` for anything else, so a card from a mirror or a
user's folder cannot smuggle in surprises.
"""

import dataclasses
import math
import os
import re

from keras_ssl.utils.files import SHA256_PATTERN
from keras_ssl.utils.strict_json import parse_json_object

CARD_FORMAT = "keras_ssl.preset/1"
MAX_CARD_BYTES = 2**20
NAME_PATTERN = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INPUT_KINDS = ("images", "vectors", "tokens")
CARD_FIELDS = {
    "format",
    "name",
    "aliases",
    "description",
    "method",
    "backbone",
    "input",
    "recipe",
    "metrics",
    "weights",
    "license",
    "notes",
}
URL_SCHEMES = ("https://", "http://", "file://")


class InvalidCardError(ValueError):
    """A preset card that is not valid JSON or not the documented shape."""


@dataclasses.dataclass(frozen=True)
class Weights:
    """Where a preset's bundle archive lives and how to verify it."""

    file: str
    sha256: str
    size: int
    urls: tuple = ()


@dataclasses.dataclass(frozen=True)
class PresetCard:
    name: str
    method: str
    description: str
    backbone: dict
    input: dict
    recipe: dict
    metrics: dict
    weights: Weights | None
    aliases: tuple = ()
    license: str = ""
    notes: str = ""
    directory: str | None = None  # the folder the card was read from

    @property
    def input_kind(self):
        return self.input["kind"]

    @property
    def pretrain_command(self):
        """The command that trains this preset by its recipe (the data named by what it is, not by a path here).

        A recipe of several stages names its script in `recipe["command"]`; that command is returned as it is.
        """
        if isinstance(self.recipe.get("command"), str):
            return self.recipe["command"]
        data = os.path.basename(self.recipe.get("data", "")) or "DATA"
        return f"keras-ssl pretrain {self.name} --data <path to {data}> --output <bundle dir>"


def parse_card(text, source="<card>", directory=None):
    """Parses and validates a card; returns a `PresetCard` or raises `InvalidCardError`."""
    raw = parse_json_object(text, source, MAX_CARD_BYTES, error=InvalidCardError)
    fields = _Fields(raw, source)
    unknown = sorted(set(raw) - CARD_FIELDS)
    if unknown:
        raise InvalidCardError(f"{source}: unknown field(s) {unknown}; a {CARD_FORMAT} card has {sorted(CARD_FIELDS)}")
    fmt = fields.string("format")
    if fmt != CARD_FORMAT:
        raise InvalidCardError(f"{source}: expected format {CARD_FORMAT!r}. Received: {fmt!r}")
    name = fields.name("name")
    aliases = tuple(fields.name_list("aliases", required=False))
    method = fields.name("method")
    backbone = fields.object("backbone")
    backbone_fields = _Fields(backbone, f"{source}: backbone")
    backbone_fields.string("class_name")
    backbone_fields.object("config")
    spec = fields.object("input")
    spec_fields = _Fields(spec, f"{source}: input")
    kind = spec_fields.string("kind")
    if kind not in INPUT_KINDS:
        raise InvalidCardError(f"{source}: input.kind must be one of {INPUT_KINDS}. Received: {kind!r}")
    shape = spec_fields.value("shape", list)
    if not shape or not all(d is None or (type(d) is int and 0 < d < 2**20) for d in shape):
        raise InvalidCardError(
            f"{source}: input.shape must be a non-empty list of positive ints or nulls. Received: {shape!r}"
        )
    recipe = fields.object("recipe")
    metrics = fields.object("metrics", required=False) or {}
    for key, value in metrics.items():
        # A huge JSON integer is a valid Python int that math.isfinite cannot convert.
        if type(value) not in (int, float) or abs(value) > 1e300 or not math.isfinite(value):
            raise InvalidCardError(f"{source}: metrics.{key} must be a finite number. Received: {value!r}")
    return PresetCard(
        name=name,
        method=method,
        description=fields.string("description", required=False) or "",
        backbone=backbone,
        input=spec,
        recipe=recipe,
        metrics=metrics,
        weights=_parse_weights(fields.value("weights", (dict, type(None))), source),
        aliases=aliases,
        license=fields.string("license", required=False) or "",
        notes=fields.string("notes", required=False) or "",
        directory=directory,
    )


def _parse_weights(raw, source):
    if raw is None:
        return None
    fields = _Fields(raw, f"{source}: weights")
    file = fields.string("file")
    if not FILE_PATTERN.fullmatch(file) or ".." in file:
        raise InvalidCardError(f"{source}: weights.file must be a plain file name. Received: {file!r}")
    sha256 = fields.string("sha256")
    if not SHA256_PATTERN.fullmatch(sha256):
        raise InvalidCardError(f"{source}: weights.sha256 must be 64 lowercase hex digits. Received: {sha256!r}")
    size = fields.value("size", int)
    if type(size) is not int or not 0 < size < 2**40:
        raise InvalidCardError(f"{source}: weights.size must be a positive byte count. Received: {size!r}")
    urls = fields.value("urls", list, required=False) or []
    for url in urls:
        if not isinstance(url, str) or not url.startswith(URL_SCHEMES) or len(url) > 2048:
            raise InvalidCardError(f"{source}: weights.urls must be {', '.join(URL_SCHEMES)} URLs. Received: {url!r}")
    return Weights(file=file, sha256=sha256, size=size, urls=tuple(urls))


class _Fields:
    """Typed access to a JSON object's fields with errors that name the card and the field."""

    def __init__(self, raw, source):
        if not isinstance(raw, dict):
            raise InvalidCardError(f"{source}: expected a JSON object. Received: {type(raw).__name__}")
        self.raw, self.source = raw, source

    def value(self, key, types, required=True):
        if key not in self.raw:
            if required:
                raise InvalidCardError(f"{self.source}: missing field {key!r}")
            return None
        value = self.raw[key]
        if not isinstance(value, types) or isinstance(value, bool):
            expected = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise InvalidCardError(f"{self.source}: field {key!r} must be {expected}. Received: {type(value).__name__}")
        return value

    def string(self, key, required=True):
        return self.value(key, str, required)

    def object(self, key, required=True):
        return self.value(key, dict, required)

    def name(self, key):
        value = self.string(key)
        if not NAME_PATTERN.fullmatch(value) or len(value) > 100:
            raise InvalidCardError(f"{self.source}: {key} must be lowercase words joined by '_'. Received: {value!r}")
        return value

    def name_list(self, key, required=True):
        values = self.value(key, list, required) or []
        for value in values:
            if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or len(value) > 100:
                raise InvalidCardError(f"{self.source}: {key} must hold lowercase names. Received: {value!r}")
        return values
