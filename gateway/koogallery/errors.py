"""The protocol's errors: each maps to exactly one marketplace result code."""

from gateway.koogallery.results import ResultCode


class ProtocolError(Exception):
    """Root of the protocol errors; `result_code` is what the marketplace is answered."""

    code = "protocol_error"
    result_code = ResultCode.BAD_PARAMETER

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadPayloadError(ProtocolError):
    """The body is not a UTF-8 JSON object, or a field breaks its rule."""

    code = "bad_payload"


class MissingSignatureError(ProtocolError):
    """No signature at all: the marketplace's own verifier answers 000001."""

    code = "missing_signature"
    result_code = ResultCode.AUTH_FAILED


class MissingSignatureInputError(ProtocolError):
    """No timestamp or no nonce: answered 000002, as the marketplace's verifier does."""

    code = "missing_signature_input"


class StaleTimestampError(ProtocolError):
    """The timestamp is outside the accepted window: a clock or replay problem."""

    code = "stale_timestamp"


class BadSignatureError(ProtocolError):
    """The signature does not match under any accepted key."""

    code = "bad_signature"
    result_code = ResultCode.AUTH_FAILED


class ReplayedNonceError(ProtocolError):
    """The nonce was already used within the replay window."""

    code = "replayed_nonce"
    result_code = ResultCode.AUTH_FAILED
