"""Answers in the marketplace's shape: HTTP 200, JSON, optional V1-style Body-Sign."""

import base64
import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from gateway.koogallery.results import ResultCode, answer_body

JSON_UTF8 = "application/json;charset=UTF-8"


class BodyTooLargeError(Exception):
    code = "body_too_large"


def marketplace_response(body: bytes, *, status: int = 200, sign_key: bytes | None = None) -> Response:
    headers = {}
    if sign_key is not None:
        digest = base64.b64encode(hmac.new(sign_key, body, hashlib.sha256).digest()).decode("ascii")
        headers["Body-Sign"] = f'sign_type="HMAC-SHA256", signature="{digest}"'
    return Response(body, status_code=status, headers=headers, media_type=JSON_UTF8)


def unknown_product_response() -> Response:
    """The same answer for every unknown slug: nothing tells which slugs exist."""
    return marketplace_response(answer_body(ResultCode.BAD_PARAMETER, "unknown product"), status=404)


def too_large_response(*, sign_key: bytes | None) -> Response:
    """HTTP 413 with `000002`, signed like every answer of the product when it signs them."""
    return marketplace_response(answer_body(ResultCode.BAD_PARAMETER, "body too large"), status=413, sign_key=sign_key)


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (before reading it all) one larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)
