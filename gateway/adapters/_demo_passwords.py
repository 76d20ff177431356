"""Initial administrator passwords of demo workspaces: generated once, kept only as a hash.

The passwords are generated, never chosen by a person: 96 random bits each. A slow hash
(scrypt, bcrypt) defends guessable passwords against offline guessing and buys nothing
here, so a salted SHA-256 keeps provisioning cheap.
"""

import hashlib
import hmac
import secrets

_SCHEME = "sha256"


def new_password() -> str:
    """A fresh random password (16 URL-safe characters, 96 random bits)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """`sha256$salt$digest`, with a random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(salt + password.encode("utf-8")).hexdigest()
    return f"{_SCHEME}${salt.hex()}${digest}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` is the one `stored` was made from; False for any malformed hash."""
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        candidate = hashlib.sha256(bytes.fromhex(salt) + password.encode("utf-8")).hexdigest()
    except ValueError:
        return False
    return hmac.compare_digest(candidate, digest)
