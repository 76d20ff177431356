"""Client of the marketplace's order-query open API (查询订单), AK/SK signed.

The HTTP client is injected: its timeout, TLS verification (the marketplace requires the
certificate to be verified) and connection pool are the caller's. Every failure is an
`OrderQueryError` with a stable `code` and a `retryable` flag; the SK never appears in one.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.koogallery import apig
from gateway.koogallery.orders import (
    OrderInfo,
    OrderQueryResponse,
    build_order_query_url,
)
from gateway.outbound import AnswerTooLargeError, read_capped

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
# The documented example sends this; it is signed, and JSON keeps the body hash in the signature.
_REQUEST_HEADERS = {"Content-Type": "application/json;charset=UTF-8"}


class OrderQueryError(Exception):
    """Root of the order-query errors."""

    code = "order_query_error"
    retryable = False


class OrderQueryInvalidRequestError(OrderQueryError):
    """The query cannot be made as asked: bad endpoint, empty AK/SK, empty or over-long id."""

    code = "order_query_invalid_request"


class OrderQueryUnavailableError(OrderQueryError):
    """Network failure, timeout, HTTP 5xx or 429: worth retrying later."""

    code = "order_query_unavailable"
    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class OrderQueryRejectedError(OrderQueryError):
    """The marketplace refused: a resultCode other than MKT.0000, or an HTTP 4xx (e.g. APIG.0301).

    `result_code` / `result_msg` are as answered (`HTTP.<status>` when a 4xx body has none).
    """

    code = "order_query_rejected"

    def __init__(self, *, result_code: str, result_msg: str | None, status_code: int) -> None:
        super().__init__(f"order query rejected: {result_code} {result_msg or ''}".rstrip())
        self.result_code = result_code
        self.result_msg = result_msg
        self.status_code = status_code


class OrderQueryMalformedError(OrderQueryError):
    """The answer is not the documented JSON (bad JSON, wrong schema, wrong order, too large)."""

    code = "order_query_malformed"


class _GatewayError(BaseModel):
    """The API gateway's own error body (before the marketplace is reached), e.g. APIG.0301."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    error_code: str
    error_msg: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OrderQueryClient:
    """Queries orders through an injected `httpx.AsyncClient`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = _utc_now,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._http = http
        self._clock = clock
        self._max_response_bytes = max_response_bytes

    async def query(
        self,
        *,
        endpoint: str,
        ak: str,
        sk: str,
        order_id: str,
        order_line_id: str | None,
    ) -> OrderInfo:
        """GET the order (only the named line when `order_line_id` is given) and return it."""
        try:
            url = build_order_query_url(
                endpoint=endpoint, order_id=order_id, order_line_id=order_line_id
            )
            signing = apig.sign_request(
                ak=ak,
                sk=sk,
                method="GET",
                url=url,
                headers=_REQUEST_HEADERS,
                body=b"",
                now=self._clock(),
            )
        except ValueError as exc:
            raise OrderQueryInvalidRequestError(str(exc)) from None

        try:
            async with self._http.stream(
                "GET", url, headers={**_REQUEST_HEADERS, **signing}
            ) as response:
                body = await read_capped(response, self._max_response_bytes)
        except httpx.TransportError as exc:
            raise OrderQueryUnavailableError(f"order query failed: {type(exc).__name__}") from exc
        except AnswerTooLargeError:
            raise OrderQueryMalformedError(f"order query answer exceeds {self._max_response_bytes} bytes") from None
        except httpx.DecodingError:
            raise OrderQueryMalformedError(
                "order query answer has a bad content encoding"
            ) from None

        status = response.status_code
        if status >= 500 or status == 429:
            raise OrderQueryUnavailableError(
                f"order query answered HTTP {status}", status_code=status
            )
        if 400 <= status < 500:
            raise _rejection(status, body)
        if not 200 <= status < 300:
            raise OrderQueryMalformedError(f"order query answered HTTP {status}")

        try:
            answer = OrderQueryResponse.model_validate_json(body)
        except ValidationError as exc:
            raise OrderQueryMalformedError(
                f"order query answer is not the documented JSON: {exc.error_count()} errors"
            ) from None
        if not answer.is_success:
            raise OrderQueryRejectedError(
                result_code=answer.result_code, result_msg=answer.result_msg, status_code=status
            )
        if answer.order_info is None:
            raise OrderQueryMalformedError("order query succeeded without orderInfo")
        if answer.order_info.order_id != order_id:
            raise OrderQueryMalformedError("order query answered another order")
        return answer.order_info



def _rejection(status: int, body: bytes) -> OrderQueryRejectedError:
    """A 4xx: the marketplace's `resultCode` shape or the API gateway's `error_code` shape."""
    code: str | None = None
    message: str | None = None
    try:
        answer = OrderQueryResponse.model_validate_json(body)
        code, message = answer.result_code, answer.result_msg
    except ValidationError:
        try:
            error = _GatewayError.model_validate_json(body)
            code, message = error.error_code, error.error_msg
        except ValidationError:
            pass
    return OrderQueryRejectedError(
        result_code=code or f"HTTP.{status}", result_msg=message, status_code=status
    )
