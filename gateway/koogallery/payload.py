"""Parsing a signed body and its canonical form, the text the marketplace signs.

The marketplace's own verifier parses the body, sorts the top-level keys, drops top-level
nulls and serialises compactly with non-ASCII characters raw; nested values keep their
received order. Numbers are written as received: integers are exact in Python, and
floats keep their original text in `RawFloat`.
"""

import json
from typing import Any

from gateway.koogallery.errors import BadPayloadError

JsonObject = dict[str, Any]


class RawFloat(float):
    """A JSON number with a fraction or exponent that remembers the text it was read from."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> "RawFloat":
        number = super().__new__(cls, text)
        number.text = text
        return number


def _refuse_constant(name: str) -> None:
    raise BadPayloadError(f"JSON constant {name} is not allowed")


def parse_object(raw: bytes) -> JsonObject:
    """Parse a request body that must be a JSON object encoded in UTF-8."""
    if not raw.strip():
        raise BadPayloadError("empty body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayloadError("body is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_float=RawFloat, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # ValueError also: integers of more than 4300 digits
        raise BadPayloadError("body is not JSON, or holds a number too large to read") from exc
    if not isinstance(value, dict):
        raise BadPayloadError("body is not a JSON object")
    return value


def canonical_payload(payload: JsonObject) -> bytes | None:
    """The canonical form of a parsed body, or None if it has none (lone surrogates)."""
    ordered = {key: payload[key] for key in sorted(payload) if payload[key] is not None}
    try:
        return _dumps(ordered).encode("utf-8")
    except UnicodeEncodeError:
        return None


def dumps_compact(value: Any) -> str:
    """Compact JSON with non-ASCII raw and floats as received: how the marketplace writes."""
    return _dumps(value)


def _dumps(value: Any) -> str:
    if not _holds_raw_float(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, RawFloat):
        return value.text
    if isinstance(value, dict):
        members = (f"{json.dumps(key, ensure_ascii=False)}:{_dumps(item)}" for key, item in value.items())
        return "{" + ",".join(members) + "}"
    return "[" + ",".join(_dumps(item) for item in value) + "]"


def _holds_raw_float(value: Any) -> bool:
    if isinstance(value, RawFloat):
        return True
    if isinstance(value, dict):
        return any(_holds_raw_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_raw_float(item) for item in value)
    return False
