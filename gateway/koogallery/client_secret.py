"""The RSA-OAEP encrypted `clientSecret` of applicationSync, and the vendor's key pair.

The marketplace encrypts each tenant's OAuth client secret with the public key the vendor
uploaded (≥ 3072 bits, OAEP) and sends it Base64-encoded. Which OAEP digests it uses is not
published, so the contract's three variants are tried in order and the one that worked is
reported. Java's "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" is the first: SHA-256 with MGF1-SHA-1.
"""

import base64
import binascii
import enum
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.koogallery.errors import BadPayloadError

MIN_KEY_BITS = 3072
MAX_SECRET_CHARS = 1024


class OaepVariant(enum.StrEnum):
    """An OAEP parameter choice, named `<digest>-mgf1-<mgf1 digest>`."""

    SHA256_MGF1_SHA1 = "sha256-mgf1-sha1"
    SHA256_MGF1_SHA256 = "sha256-mgf1-sha256"
    SHA1_MGF1_SHA1 = "sha1-mgf1-sha1"

    def padding(self) -> padding.OAEP:
        digest, mgf1 = {
            OaepVariant.SHA256_MGF1_SHA1: (hashes.SHA256(), hashes.SHA1()),  # noqa: S303 (MGF1 only)
            OaepVariant.SHA256_MGF1_SHA256: (hashes.SHA256(), hashes.SHA256()),
            OaepVariant.SHA1_MGF1_SHA1: (hashes.SHA1(), hashes.SHA1()),  # noqa: S303 (OAEP, not signatures)
        }[self]
        return padding.OAEP(mgf=padding.MGF1(algorithm=mgf1), algorithm=digest, label=None)


OAEP_ORDER: tuple[OaepVariant, ...] = tuple(OaepVariant)
"""The order of the contract (§5): the first variant that decrypts wins."""


class KeyFormatError(ValueError):
    """The configured private key is not a usable RSA key of at least 3072 bits."""

    code = "rsa_key_unusable"


class UndecryptableSecretError(BadPayloadError):
    """`clientSecret` does not decrypt under any OAEP variant with the product's key."""

    code = "undecryptable_client_secret"


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PKCS#8 (or PKCS#1) PEM, or Base64 of its DER encoding."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(stripped.encode("ascii"), password=None)
        else:
            der = base64.b64decode("".join(stripped.split()), validate=True)
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise KeyFormatError("not a PEM or Base64 DER private key without a password") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"RSA key has {key.key_size} bits; the marketplace asks for at least {MIN_KEY_BITS}")
    return key


def decrypt_client_secret(ciphertext: str, key: rsa.RSAPrivateKey) -> tuple[str, OaepVariant]:
    """The plaintext secret and the OAEP variant that decrypted it."""
    try:
        raw = base64.b64decode("".join(ciphertext.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecryptableSecretError("clientSecret is not Base64") from exc
    if len(raw) != key.key_size // 8:
        raise UndecryptableSecretError("clientSecret is not one RSA block of the product's key")
    for variant in OAEP_ORDER:
        try:
            plaintext = key.decrypt(raw, variant.padding())
        except ValueError:
            continue
        try:
            secret = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if secret and len(secret) <= MAX_SECRET_CHARS and "\x00" not in secret:
            return secret, variant
    raise UndecryptableSecretError("clientSecret does not decrypt with the product's key")


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: bytes = field(repr=False)
    """PKCS#8 PEM, unencrypted: keep it as a secret file."""
    public_pem: bytes
    public_base64: str
    """Base64 of the X.509 SubjectPublicKeyInfo on one line: what the Seller Console takes."""


def new_key_pair(bits: int = MIN_KEY_BITS) -> KeyPair:
    """A fresh RSA key pair of `bits` (at least 3072) bits."""
    if bits < MIN_KEY_BITS:
        raise KeyFormatError(f"the marketplace asks for at least {MIN_KEY_BITS} bits")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(private_pem, public_key_pem(key.public_key()), public_key_text(key.public_key()))


def public_key_text(public_key: rsa.RSAPublicKey) -> str:
    """The public key as the Seller Console takes it: Base64 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def public_key_pem(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
