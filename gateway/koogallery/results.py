"""Result codes of the production interfaces and the answer body."""

import enum
import json
from typing import Any


class ResultCode(enum.StrEnum):
    """Every result code MarketGate may answer the marketplace with."""

    SUCCESS = "000000"
    AUTH_FAILED = "000001"
    BAD_PARAMETER = "000002"
    INSTANCE_NOT_FOUND = "000003"
    PROCESSING = "000004"
    INTERNAL_ERROR = "000005"
    NO_RESOURCE = "000100"
    MOBILE_TAKEN = "000101"
    EMAIL_TAKEN = "000102"
    ALREADY_PURCHASED = "000103"
    SERVICE_ERROR = "000104"
    ALREADY_SUBSCRIBED = "000105"
    SOLD_OUT = "000106"
    EMAIL_DOMAIN_TAKEN = "000107"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    ResultCode.SUCCESS: "success.",
    ResultCode.AUTH_FAILED: "authentication failed",
    ResultCode.BAD_PARAMETER: "param is invalid",
    ResultCode.INSTANCE_NOT_FOUND: "instance is invalid",
    ResultCode.PROCESSING: "request is processing",
    ResultCode.INTERNAL_ERROR: "other inner error",
    ResultCode.NO_RESOURCE: "no available resource",
    ResultCode.MOBILE_TAKEN: "mobile number not specified or already exists",
    ResultCode.EMAIL_TAKEN: "email address not specified or already exists",
    ResultCode.ALREADY_PURCHASED: "product already purchased",
    ResultCode.SERVICE_ERROR: "internal service error",
    ResultCode.ALREADY_SUBSCRIBED: "account has already subscribed to benefits",
    ResultCode.SOLD_OUT: "product resources sold out",
    ResultCode.EMAIL_DOMAIN_TAKEN: "SaaS email domain already exists",
}

PURCHASE_REFUSALS = frozenset(
    {
        ResultCode.NO_RESOURCE,
        ResultCode.MOBILE_TAKEN,
        ResultCode.EMAIL_TAKEN,
        ResultCode.ALREADY_PURCHASED,
        ResultCode.SERVICE_ERROR,
        ResultCode.ALREADY_SUBSCRIBED,
        ResultCode.SOLD_OUT,
        ResultCode.EMAIL_DOMAIN_TAKEN,
    }
)
"""The refusals an adapter may give to a new purchase (besides the common codes)."""


MAX_RESULT_MSG = 255
"""`resultMsg` is at most 255 characters (an adapter's refusal message is cut to fit)."""

APP_INFO_LIMITS: dict[str, int] = {"frontEndUrl": 512, "adminUrl": 512, "userName": 128, "password": 128, "memo": 1024}
"""queryInstance `info[].appInfo` fields and their maximum lengths (basic note §3.2); `frontEndUrl`
is required."""


def answer_body(code: ResultCode, message: str | None = None, **fields: Any) -> bytes:
    """The JSON answer: `resultCode`, `resultMsg`, then `fields` (None values left out).

    Non-ASCII text is sent `\\uXXXX`-escaped, as the marketplace asks for `resultMsg` and `memo`.
    """
    body: dict[str, Any] = {"resultCode": code.value, "resultMsg": (message or code.message)[:MAX_RESULT_MSG]}
    body.update((name, value) for name, value in fields.items() if value is not None)
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
