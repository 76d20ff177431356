"""What of a call's body may be kept in the call log: secrets and personal data masked."""

import json
from typing import Any

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {"clientsecret", "password", "mobile", "mobilephone", "email", "accesskey", "secret", "token"}
)


def redact(value: Any) -> Any:
    """A copy of a parsed body with every sensitive field's value replaced."""
    if isinstance(value, dict):
        return {key: REDACTED if key.lower() in SENSITIVE_KEYS else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def storable_text(text: str | None) -> str | None:
    """Text any database stores: NUL removed, lone surrogates (valid JSON, not UTF-8) replaced."""
    if text is None:
        return None
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def loggable_body(payload: dict[str, Any] | None, raw: bytes, *, limit: int) -> str | None:
    """The body as the call log keeps it: redacted JSON, cut at `limit` characters.

    A body that is not a JSON object is not kept, only its size: it may hold anything.
    """
    if limit <= 0:
        return None
    if payload is None:
        return f"<{len(raw)} bytes, not a JSON object>"
    try:
        text = json.dumps(redact(payload), ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return f"<{len(raw)} bytes, not representable>"
    text = storable_text(text) or ""
    return text if len(text) <= limit else text[:limit] + "…"
