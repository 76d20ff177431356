"""Signatures of the production calls: basic (query string) and Kit (headers).

Basic: inner = hex(HMAC-SHA256(key, payload));
       signature = hex(HMAC-SHA256(key, key + nonce + timestamp + inner)).
Kit:   x-sign = hex(HMAC-SHA256(key, key + nonce + timestamp + payload)).
The timestamp is the text exactly as received. Keys are bytes: the configured key as
UTF-8, or its Base64 decoding where the product says `key_encoding = "base64"`.
"""

import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.koogallery.errors import (
    BadSignatureError,
    MissingSignatureError,
    MissingSignatureInputError,
    StaleTimestampError,
)

MAX_NONCE_LENGTH = 128
MAX_SIGNATURE_LENGTH = 128


class CallKind(enum.StrEnum):
    """The two signature schemes, one per kind of production call."""

    BASIC = "basic"
    KIT = "kit"


@dataclass(frozen=True, slots=True)
class SignatureInputs:
    """What a call carries besides its body: from the query string or the x- headers."""

    signature: str | None
    timestamp: str | None
    nonce: str | None


def basic_signature(key: bytes, *, nonce: str, timestamp: str, payload: bytes) -> str:
    """The lowercase hex signature of a basic call."""
    inner = hmac.new(key, payload, hashlib.sha256).hexdigest()
    message = key + (nonce + timestamp + inner).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def kit_signature(key: bytes, *, nonce: str, timestamp: str, payload: bytes) -> str:
    """The lowercase hex `x-sign` of a Kit call."""
    message = key + (nonce + timestamp).encode("utf-8") + payload
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(kind: CallKind, key: bytes, *, nonce: str, timestamp: str, payload: bytes) -> str:
    """Sign `payload` with the scheme of `kind`."""
    scheme = basic_signature if kind is CallKind.BASIC else kit_signature
    return scheme(key, nonce=nonce, timestamp=timestamp, payload=payload)


def check_inputs(inputs: SignatureInputs) -> tuple[str, str, str]:
    """Return (signature, timestamp, nonce) or raise as the marketplace's verifier does."""
    if not inputs.timestamp or not inputs.nonce:
        raise MissingSignatureInputError("timestamp or nonce missing")
    if not inputs.signature:
        raise MissingSignatureError("signature missing")
    if len(inputs.nonce) > MAX_NONCE_LENGTH:
        raise MissingSignatureInputError("nonce too long")
    if len(inputs.signature) > MAX_SIGNATURE_LENGTH:
        raise BadSignatureError("signature too long")
    return inputs.signature, inputs.timestamp, inputs.nonce


def timestamp_ms(timestamp: str) -> int:
    """Milliseconds since the epoch; 10 digits or fewer are read as seconds."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        raise MissingSignatureInputError("timestamp is not an integer")
    value = int(timestamp)
    return value * 1000 if len(timestamp) <= 10 else value


def check_timestamp(timestamp: str, *, now_ms: int, window_ms: int) -> None:
    """Refuse a timestamp further than `window_ms` from `now_ms`, past or future."""
    if abs(now_ms - timestamp_ms(timestamp)) > window_ms:
        raise StaleTimestampError("timestamp outside the accepted window")


def verify(
    kind: CallKind,
    *,
    keys: Sequence[bytes],
    signature: str,
    nonce: str,
    timestamp: str,
    payloads: Sequence[bytes],
) -> int:
    """Check `signature` against every accepted key and payload form, in constant time.

    Returns the index of the key that matched (0 is the current key; higher are previous
    keys still accepted during a rotation); raises `BadSignatureError` if none does.
    """
    presented = signature.lower().encode("utf-8", "replace")
    matched: int | None = None
    for index, key in enumerate(keys):
        for payload in payloads:
            expected = sign(kind, key, nonce=nonce, timestamp=timestamp, payload=payload)
            if hmac.compare_digest(expected.encode("ascii"), presented) and matched is None:
                matched = index
    if matched is None:
        raise BadSignatureError("signature does not match")
    return matched
