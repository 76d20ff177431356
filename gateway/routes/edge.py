"""What every production call goes through, whatever its kind: the marketplace's edge.

In order (contract §2): the body is read up to its cap, timestamp and signature are verified,
the call is prepared (parsed, checked, decrypted: every refusal happens here), the nonce is
used, and the call is carried out, all within the product's answer deadline. A refusal at
any step before the last changes nothing and leaves the nonce unused. Errors become result
codes here, and only here; every call ends in the call log and the metrics.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from starlette.requests import Request
from starlette.responses import Response

from gateway.basic_calls import Answer
from gateway.call_log import CallLogWriter
from gateway.clock import Clock
from gateway.koogallery.errors import ProtocolError
from gateway.koogallery.payload import JsonObject
from gateway.koogallery.redaction import loggable_body, storable_text
from gateway.koogallery.results import ResultCode, answer_body
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.metrics import Metrics
from gateway.products import Product
from gateway.routes.answers import BodyTooLargeError, marketplace_response, read_capped_body, too_large_response
from gateway.store import StoreError
from gateway.verification import CallVerifier
from tenants.call_log import NewCallLogEntry
from tenants.errors import TenantsError

log = structlog.get_logger(__name__)

DEADLINE_MARGIN_S = 1.0
"""How long past its deadline a call may still take before it is cut off with 000005."""

Prepared = TypeVar("Prepared")


@dataclass(frozen=True, slots=True)
class Edge:
    """What every production-call route needs from the app."""

    products: dict[str, Product]
    verifier: CallVerifier
    call_log: CallLogWriter
    metrics: Metrics
    clock: Clock
    call_log_body_bytes: int


@dataclass(slots=True)
class CallRecord:
    """What the call log and metrics say about one call, filled in as it is handled."""

    kind: CallKind
    activity: str | None = None
    payload: dict[str, Any] | None = None
    is_test: bool = False


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def handle_signed_call(
    request: Request,
    product: Product,
    record: CallRecord,
    *,
    inputs: SignatureInputs,
    max_body_bytes: int,
    prepare: Callable[[JsonObject], Prepared],
    execute: Callable[[Prepared], Awaitable[Answer]],
    loggable: Callable[[JsonObject], JsonObject] = lambda payload: payload,
) -> Response:
    """Read, verify, prepare and carry out one call, and answer it in the marketplace's shape."""
    edge: Edge = request.app.state.edge
    started = time.perf_counter()
    sign_key = product.keys(record.kind)[0] if product.config.sign_responses else None
    try:
        raw = await read_capped_body(request, max_body_bytes)
    except BodyTooLargeError:
        answer = Answer(ResultCode.BAD_PARAMETER, reason="body too large")
        finish_call(edge, request, product, record, answer, b"", started, http_status=413)
        return too_large_response(sign_key=sign_key)
    answer = await _answer(edge, product, record, inputs, raw, prepare, execute, loggable)
    finish_call(edge, request, product, record, answer, raw, started)
    return marketplace_response(answer_body(answer.code, answer.message, **answer.fields), sign_key=sign_key)


async def _answer(
    edge: Edge,
    product: Product,
    record: CallRecord,
    inputs: SignatureInputs,
    raw: bytes,
    prepare: Callable[[JsonObject], Prepared],
    execute: Callable[[Prepared], Awaitable[Answer]],
    loggable: Callable[[JsonObject], JsonObject],
) -> Answer:
    try:
        async with asyncio.timeout(product.config.answer_deadline_s + DEADLINE_MARGIN_S):
            payload = edge.verifier.authenticate(record.kind, product, inputs, raw)
            record.payload = loggable(payload)
            prepared = prepare(payload)
            assert inputs.nonce is not None
            await edge.verifier.consume_nonce(product, inputs.nonce)
            return await execute(prepared)
    except ProtocolError as exc:
        return Answer(exc.result_code, reason=f"{exc.code}: {exc.reason}")
    except (TenantsError, StoreError) as exc:
        log.error("call_failed", product=product.slug, kind=record.kind.value, error=exc.code, detail=str(exc))
        return Answer(ResultCode.INTERNAL_ERROR, reason=exc.code)
    except TimeoutError:
        return Answer(ResultCode.INTERNAL_ERROR, reason="answer deadline exceeded")
    except Exception as exc:  # the marketplace must get a result code, never a bare HTTP 500
        log.exception("call_crashed", product=product.slug, kind=record.kind.value)
        return Answer(ResultCode.INTERNAL_ERROR, reason=f"unexpected {type(exc).__name__}")


def finish_call(
    edge: Edge,
    request: Request,
    product: Product,
    record: CallRecord,
    answer: Answer,
    raw: bytes,
    started: float,
    *,
    http_status: int = 200,
) -> None:
    """Write the call log entry and metrics of one answered call."""
    elapsed = time.perf_counter() - started
    activity = record.activity or "-"
    edge.metrics.calls.labels(product.slug, record.kind.value, activity, answer.code.value).inc()
    edge.metrics.call_seconds.labels(product.slug, record.kind.value).observe(elapsed)
    edge.call_log.record(
        NewCallLogEntry(
            product=product.slug,
            kind=record.kind.value,
            activity=storable_text(record.activity),
            result_code=answer.code.value,
            reason=storable_text(answer.reason[:512]) if answer.reason else None,
            http_status=http_status,
            latency_ms=round(elapsed * 1000, 3),
            request_id=request_id_of(request),
            instance_id=answer.instance_id,
            is_test=record.is_test,
            body=loggable_body(record.payload, raw, limit=edge.call_log_body_bytes),
            created_at=edge.clock.now(),
        )
    )
    log.info(
        "call_answered",
        product=product.slug,
        kind=record.kind.value,
        activity=activity,
        result_code=answer.code.value,
        reason=answer.reason,
        ms=round(elapsed * 1000, 1),
    )
