"""Secrets at rest: AES-256-GCM under a key derived from MARKETGATE_SECRET_KEY.

A sealed value is text, `v1.<base64 nonce+ciphertext>`, safe in any column. The purpose
string is bound into each seal, so a secret sealed for one purpose (a tenant's client
secret, say) cannot be replayed into another column.
"""

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenants.errors import TenantsError

_VERSION = "v1."


class SecretBoxError(TenantsError):
    """A sealed value is corrupt, or was sealed under another master key or purpose."""

    code = "secret_unreadable"


class SecretBox:
    def __init__(self, master_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"marketgate", info=b"secretbox v1")
        self._aead = AESGCM(derived.derive(master_key))

    def seal(self, plaintext: str, *, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("utf-8"))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, purpose: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SecretBoxError("unknown seal version")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION))
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode("utf-8")).decode("utf-8")
        except (ValueError, InvalidTag) as exc:
            raise SecretBoxError("sealed value cannot be opened") from exc
