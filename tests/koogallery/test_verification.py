"""`CallVerifier.authenticate` over bytes and a clock: what a body that is no JSON object is answered."""

from datetime import UTC, datetime
from typing import cast

import pytest

from gateway.adapters.contract import Adapter
from gateway.clock import SystemClock, epoch_ms
from gateway.koogallery.errors import BadPayloadError, BadSignatureError
from gateway.koogallery.results import ResultCode
from gateway.koogallery.signing import CallKind, SignatureInputs, sign
from gateway.products import Product
from gateway.settings import ProductConfig
from gateway.simulator.signer import new_nonce
from gateway.store import MemoryStore
from gateway.verification import CallVerifier

KEY = "verification-key-0123456789"
NOT_JSON_OBJECTS = {
    "empty body": b"",
    "not JSON": b"activity=newInstance",
    "JSON array": b'[{"activity":"newInstance"}]',
    "invalid UTF-8": b'{"activity":"\xff\xfe"}',
    "nested too deeply": b'{"activity":' + b"[" * 500 + b"1" + b"]" * 500 + b"}",
}


def verifier_and_product() -> tuple[CallVerifier, Product]:
    config = ProductConfig.model_validate({"name": "Alpha", "adapter": "recording", "access_key": KEY})
    # authenticate never reaches the adapter
    return CallVerifier(store=MemoryStore(), clock=SystemClock()), Product("alpha", config, cast(Adapter, object()))


def signed_inputs(kind: CallKind, body: bytes, *, key: str) -> SignatureInputs:
    nonce, timestamp = new_nonce(), str(epoch_ms(datetime.now(UTC)))
    return SignatureInputs(sign(kind, key.encode(), nonce=nonce, timestamp=timestamp, payload=body), timestamp, nonce)


@pytest.mark.parametrize("kind", list(CallKind))
@pytest.mark.parametrize("case", sorted(NOT_JSON_OBJECTS))
def test_a_forged_body_that_is_no_json_object_is_an_authentication_failure(kind: CallKind, case: str) -> None:
    # Given a body that is no JSON object, signed with a key that is not the product's
    verifier, product = verifier_and_product()
    body = NOT_JSON_OBJECTS[case]
    inputs = signed_inputs(kind, body, key="not-the-product-key-0000")
    # When it is authenticated, then the signature is at fault (000001), not the body
    with pytest.raises(BadSignatureError) as refused:
        verifier.authenticate(kind, product, inputs, body)
    assert refused.value.result_code is ResultCode.AUTH_FAILED


@pytest.mark.parametrize("kind", list(CallKind))
@pytest.mark.parametrize("case", sorted(NOT_JSON_OBJECTS))
def test_a_signed_body_that_is_no_json_object_is_a_bad_parameter(kind: CallKind, case: str) -> None:
    # Given a body that is no JSON object, signed over its raw bytes with the product's key
    verifier, product = verifier_and_product()
    body = NOT_JSON_OBJECTS[case]
    inputs = signed_inputs(kind, body, key=KEY)
    # When it is authenticated, then the body is at fault (000002)
    with pytest.raises(BadPayloadError) as refused:
        verifier.authenticate(kind, product, inputs, body)
    assert refused.value.result_code is ResultCode.BAD_PARAMETER
