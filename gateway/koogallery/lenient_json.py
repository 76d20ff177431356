"""Reading the JavaScript-object-literal text the marketplace puts in some string fields.

The documented allOrgSync example sends `orgInfoList` as a string such as
`[{orgCode:"00000001", orgName:"产品部", parentCode:"" }]`: JSON, except that object keys
may be bare identifiers. This is a small recursive-descent reader for that form and nothing
more: no expressions, no comments, no code is ever run. It accepts strict JSON, bare
identifier keys, single-quoted strings and trailing commas; duplicate keys keep the last
value, as the body parser does.
"""

import json
import math
import re
from typing import Any

MAX_DEPTH = 32

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WHITESPACE = " \t\n\r"
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_NUMBER_DIGITS = 64


class LenientJsonError(ValueError):
    """The text is neither JSON nor the unquoted-key form."""


def loads_lenient(text: str) -> Any:
    """Parse `text` as JSON, or failing that as a JS-style literal with bare keys."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        pass
    reader = _Reader(text)
    value = reader.value(depth=0)
    reader.skip_whitespace()
    if reader.position != len(text):
        raise reader.error("unexpected text after the value")
    return value


def _refuse_constant(name: str) -> None:
    raise LenientJsonError(f"constant {name} is not allowed")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise LenientJsonError("number out of range")
    return number


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def error(self, message: str) -> LenientJsonError:
        return LenientJsonError(f"{message} at offset {self.position}")

    def skip_whitespace(self) -> None:
        text, position = self.text, self.position
        while position < len(text) and text[position] in _WHITESPACE:
            position += 1
        self.position = position

    def peek(self) -> str:
        self.skip_whitespace()
        return self.text[self.position] if self.position < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.position += 1

    def value(self, *, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.error("nested too deeply")
        char = self.peek()
        if char == "{":
            return self.object(depth=depth)
        if char == "[":
            return self.array(depth=depth)
        if char in ('"', "'"):
            return self.string()
        if char == "-" or char.isdigit():
            return self.number()
        for word, result in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.position):
                self.position += len(word)
                return result
        raise self.error("expected a value")

    def object(self, *, depth: int) -> dict[str, Any]:
        self.expect("{")
        members: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.key()
            self.expect(":")
            members[key] = self.value(depth=depth + 1)
            if self.peek() == ",":
                self.position += 1
            elif self.peek() != "}":
                raise self.error("expected ',' or '}'")
        self.position += 1
        return members

    def array(self, *, depth: int) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while self.peek() != "]":
            items.append(self.value(depth=depth + 1))
            if self.peek() == ",":
                self.position += 1
            elif self.peek() != "]":
                raise self.error("expected ',' or ']'")
        self.position += 1
        return items

    def key(self) -> str:
        if self.peek() in ('"', "'"):
            return self.string()
        match = _IDENTIFIER.match(self.text, self.position)
        if match is None:
            raise self.error("expected a key")
        self.position = match.end()
        return match.group()

    def string(self) -> str:
        quote = self.text[self.position]
        self.position += 1
        parts: list[str] = []
        text = self.text
        while True:
            end = self.position
            while end < len(text) and text[end] not in (quote, "\\") and text[end] >= " ":
                end += 1
            parts.append(text[self.position : end])
            self.position = end
            if end >= len(text):
                raise self.error("unterminated string")
            char = text[end]
            if char == quote:
                self.position += 1
                return "".join(parts)
            if char != "\\":
                raise self.error("control character in string")
            parts.append(self.escape())

    def escape(self) -> str:
        self.position += 1
        if self.position >= len(self.text):
            raise self.error("unterminated escape")
        char = self.text[self.position]
        self.position += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char == "u":
            digits = self.text[self.position : self.position + 4]
            if len(digits) != 4 or not all(digit in "0123456789abcdefABCDEF" for digit in digits):
                raise self.error("bad \\u escape")
            self.position += 4
            return chr(int(digits, 16))
        raise self.error("bad escape")

    def number(self) -> int | float:
        match = _NUMBER.match(self.text, self.position)
        if match is None or len(match.group()) > _MAX_NUMBER_DIGITS:
            raise self.error("bad number")
        self.position = match.end()
        literal = match.group()
        if any(mark in literal for mark in ".eE"):
            number = float(literal)
            if not math.isfinite(number):
                raise self.error("number out of range")
            return number
        return int(literal)
