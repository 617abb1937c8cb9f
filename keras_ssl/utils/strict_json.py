"""Strict JSON for files that come from outside: preset cards and bundle metadata/configs."""

import json


def parse_json_object(text, source, limit, error=ValueError):
    """The JSON object in `text` (str, or UTF-8 bytes) of at most `limit` bytes; raises only `error`.

    Refuses oversized or undecodable text, invalid JSON, NaN and Infinity
    constants, nesting too deep for the parser, and any top-level value but
    an object, each with a message saying what was expected and received.
    """
    if isinstance(text, (bytes, bytearray)):
        if len(text) > limit:
            raise error(f"{source}: expected at most {limit} bytes. Received: {len(text)} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as reason:
            raise error(f"{source}: expected UTF-8 JSON. Received: undecodable bytes ({reason.reason})") from None
    if not isinstance(text, str):
        raise error(f"{source}: expected JSON text. Received: {type(text).__name__}")
    if len(text) > limit:
        raise error(f"{source}: expected at most {limit} characters. Received: {len(text)}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as reason:
        raise error(f"{source}: expected valid JSON. Received: invalid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise error(f"{source}: expected a JSON object. Received: {type(value).__name__}")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not allowed")
