"""Verifying a production call: timestamp, body, signature, then (once accepted) the nonce.

The order is the contract's (§2), except that a body that is no JSON object is checked against
its signature first: a forgery is 000001 whatever it carries. The nonce is recorded only when
the call is accepted, so neither a forger nor a malformed call can burn nonces.
"""

import secrets

from gateway.clock import Clock, epoch_ms
from gateway.koogallery import signing
from gateway.koogallery.errors import BadPayloadError, BadSignatureError, ReplayedNonceError
from gateway.koogallery.payload import JsonObject, canonical_payload, parse_object
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.products import Product
from gateway.store import Store, store_key


class CallVerifier:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def authenticate(self, kind: CallKind, product: Product, inputs: SignatureInputs, raw: bytes) -> JsonObject:
        """The parsed body of a call whose signature verifies; raises a `ProtocolError` otherwise."""
        signature, timestamp, nonce = signing.check_inputs(inputs)
        window_ms = int(product.config.timestamp_window_s * 1000)
        signing.check_timestamp(timestamp, now_ms=epoch_ms(self._clock.now()), window_ms=window_ms)
        keys = product.keys(kind)
        try:
            payload = parse_object(raw)
        except BadPayloadError:
            # No JSON object, so no canonical form: only a body signed over its raw bytes is a bad
            # parameter (000002); anyone else is answered as a forger (000001).
            signing.verify(kind, keys=keys, signature=signature, nonce=nonce, timestamp=timestamp, payloads=[raw])
            raise
        try:
            # The marketplace sends its bodies canonical already: the raw bytes usually match,
            # and trying them first spares re-serialising the body. Both forms are accepted either way.
            signing.verify(kind, keys=keys, signature=signature, nonce=nonce, timestamp=timestamp, payloads=[raw])
        except BadSignatureError:
            canonical = canonical_payload(payload)
            if canonical is None or canonical == raw:
                raise
            signing.verify(kind, keys=keys, signature=signature, nonce=nonce, timestamp=timestamp, payloads=[canonical])
        return payload

    async def consume_nonce(self, product: Product, nonce: str) -> None:
        """Record the nonce of an accepted call; a second use within 2 × window is a replay, whatever
        the kinds of the two calls (contract §2: a nonce is accepted once per product)."""
        ttl_s = 2 * product.config.timestamp_window_s
        # A value unique to this call, so that a retried write that had landed is not taken for a replay.
        marker = secrets.token_bytes(16)
        if not await self._store.add_if_absent(store_key("nonce", product.slug, nonce), marker, ttl_s):
            raise ReplayedNonceError("nonce already used")
