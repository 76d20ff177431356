"""The protocol module reproduces every signature vector of ../shared/spec/vectors.json."""

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.koogallery.errors import BadSignatureError
from gateway.koogallery.payload import canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, basic_signature, kit_signature, verify

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2].parent / "shared" / "spec" / "vectors.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("vector", VECTORS["basic_v2"], ids=lambda vector: vector["note"])
def test_basic_vectors(vector: dict[str, str]) -> None:
    key = vector["access_key"].encode()
    canonical = canonical_payload(parse_object(vector["body"].encode()))
    assert canonical == vector["canonical"].encode()
    assert hmac.new(key, canonical, hashlib.sha256).hexdigest() == vector["inner_hmac"]
    signature = basic_signature(key, nonce=vector["nonce"], timestamp=vector["timestamp"], payload=canonical)
    assert signature == vector["signature"]
    matched = verify(
        CallKind.BASIC,
        keys=[b"an-old-key", key],
        signature=vector["signature"].upper(),
        nonce=vector["nonce"],
        timestamp=vector["timestamp"],
        payloads=[canonical, vector["body"].encode()],
    )
    assert matched == 1


@pytest.mark.parametrize("vector", VECTORS["kit_v2"], ids=lambda vector: vector["note"])
def test_kit_vectors(vector: dict[str, str]) -> None:
    key = vector["kit_access_key"].encode()
    canonical = canonical_payload(parse_object(vector["body"].encode()))
    assert canonical == vector["canonical"].encode()
    assert (
        kit_signature(key, nonce=vector["nonce"], timestamp=vector["timestamp"], payload=canonical) == vector["x_sign"]
    )


def test_a_signature_under_another_key_is_refused() -> None:
    vector = VECTORS["basic_v2"][0]
    with pytest.raises(BadSignatureError):
        verify(
            CallKind.BASIC,
            keys=[b"TEST_ACCESS_KEY_0123456780"],
            signature=vector["signature"],
            nonce=vector["nonce"],
            timestamp=vector["timestamp"],
            payloads=[vector["canonical"].encode()],
        )


def test_body_sign_vector() -> None:
    [vector] = VECTORS["v1_body_sign"]
    digest = hmac.new(vector["access_key"].encode(), vector["body"].encode(), hashlib.sha256).digest()
    assert f'sign_type="HMAC-SHA256", signature="{base64.b64encode(digest).decode()}"' == vector["header"]


def test_floats_keep_the_text_they_were_sent_as() -> None:
    body = b'{"b":1.50,"a":{"z":1e5,"y":[2.0]}}'
    assert canonical_payload(parse_object(body)) == b'{"a":{"z":1e5,"y":[2.0]},"b":1.50}'
