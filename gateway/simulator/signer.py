"""Signing calls the way the marketplace does: for the simulator, the tests and benchmarks."""

import json
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.koogallery.payload import canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, sign


def marketplace_body(fields: dict[str, Any]) -> bytes:
    """A body as the marketplace sends it: compact JSON, keys sorted, non-ASCII raw."""
    return json.dumps(dict(sorted(fields.items())), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def new_nonce() -> str:
    """A fresh nonce like the marketplace's: 64 uppercase hex characters."""
    return secrets.token_hex(32).upper()


@dataclass(frozen=True, slots=True)
class SignedCall:
    """A body with its signature material, ready to send as a basic or a Kit call."""

    kind: CallKind
    body: bytes
    signature: str
    timestamp: str
    nonce: str

    @property
    def query(self) -> dict[str, str]:
        """Basic calls: the signature travels in the query string (uppercase, as the marketplace sends)."""
        return {"signature": self.signature.upper(), "timestamp": self.timestamp, "nonce": self.nonce}

    @property
    def headers(self) -> dict[str, str]:
        """Kit calls: the signature travels in x- headers; both carry the JSON content type."""
        signature = {"x-sign": self.signature, "x-timestamp": self.timestamp, "x-nonce": self.nonce}
        base = {"Content-Type": "application/json;charset=utf8", "Accept": "application/json"}
        return base | signature if self.kind is CallKind.KIT else base


def sign_call(kind: CallKind, body: bytes, *, key: bytes, now_ms: int, nonce: str | None = None) -> SignedCall:
    """Sign `body` over its canonical form, as the marketplace's verifier computes it."""
    nonce = nonce or new_nonce()
    timestamp = str(now_ms)
    payload = canonical_payload(parse_object(body)) or body
    signature = sign(kind, key, nonce=nonce, timestamp=timestamp, payload=payload)
    return SignedCall(kind=kind, body=body, signature=signature, timestamp=timestamp, nonce=nonce)
