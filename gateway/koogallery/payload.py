"""Parsing a signed body and its canonical form, the text the marketplace signs.

The marketplace's own verifier parses the body, sorts the top-level keys, drops top-level
nulls and serialises compactly with non-ASCII characters raw; nested values keep their
received order. Numbers are written as received: integers are exact in Python, and
floats keep their original text in `RawFloat`.

Bodies arrive before anyone is authenticated, so every step here is linear in the body's
size and nesting is capped: no body can make the gateway spend more than a pass over it.
"""

import json
from typing import Any

from gateway.koogallery.errors import BadPayloadError

JsonObject = dict[str, Any]

MAX_DEPTH = 32
"""The deepest nesting accepted; the marketplace's bodies are three levels deep at most."""


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
    """Parse a request body that must be a JSON object encoded in UTF-8, nested at most MAX_DEPTH."""
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
    if _depth_and_floats(value)[0] > MAX_DEPTH:
        raise BadPayloadError(f"body is nested more than {MAX_DEPTH} levels deep")
    return value


def _depth_and_floats(value: Any) -> tuple[int, bool]:
    """(nesting depth, whether a RawFloat is inside), in one iterative pass."""
    deepest, floats = 0, False
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, RawFloat):
            floats = True
    return deepest, floats


def canonical_payload(payload: JsonObject) -> bytes | None:
    """The canonical form of a parsed body, or None if it has none (lone surrogates)."""
    ordered = {key: payload[key] for key in sorted(payload) if payload[key] is not None}
    try:
        return dumps_compact(ordered).encode("utf-8")
    except UnicodeEncodeError:
        return None


def dumps_compact(value: Any) -> str:
    """Compact JSON with non-ASCII raw and floats as received: how the marketplace writes."""
    if not _depth_and_floats(value)[1]:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _dumps_with_raw_floats(value)


def _dumps_with_raw_floats(value: Any) -> str:
    if isinstance(value, RawFloat):
        return value.text
    if isinstance(value, dict):
        members = (
            f"{json.dumps(key, ensure_ascii=False)}:{_dumps_with_raw_floats(item)}" for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps_with_raw_floats(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
