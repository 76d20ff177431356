"""POST /koogallery/<slug>: the basic production calls."""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from gateway.basic_calls import Answer, BasicCalls
from gateway.call_log import CallLogWriter
from gateway.clock import Clock
from gateway.koogallery.basic import parse_basic_request
from gateway.koogallery.errors import ProtocolError
from gateway.koogallery.redaction import loggable_body
from gateway.koogallery.results import ResultCode, answer_body
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.metrics import Metrics
from gateway.products import Product
from gateway.routes.answers import (
    BodyTooLargeError,
    marketplace_response,
    read_capped_body,
    too_large_response,
    unknown_product_response,
)
from gateway.store import StoreError
from gateway.verification import CallVerifier
from tenants.errors import TenantsError
from tenants.models import CallLogEntry

log = structlog.get_logger(__name__)

DEADLINE_MARGIN_S = 1.0
"""How long past its deadline a call may still take before it is cut off with 000005."""


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


async def handle_production_call(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    basic_calls: BasicCalls = request.app.state.basic_calls
    product = edge.products.get(request.path_params["slug"])
    if product is None:
        edge.metrics.unknown_products.inc()
        return unknown_product_response()
    started = time.perf_counter()
    record = CallRecord(kind=CallKind.BASIC)
    try:
        raw = await read_capped_body(request, product.config.max_body_bytes)
    except BodyTooLargeError:
        answer = Answer(ResultCode.BAD_PARAMETER, reason="body too large")
        finish_call(edge, request, product, record, answer, b"", started, http_status=413)
        return too_large_response()
    query = request.query_params
    inputs = SignatureInputs(query.get("signature"), query.get("timestamp"), query.get("nonce"))
    deadline = edge.clock.monotonic() + product.config.answer_deadline_s
    try:
        async with asyncio.timeout(product.config.answer_deadline_s + DEADLINE_MARGIN_S):
            payload = edge.verifier.authenticate(CallKind.BASIC, product, inputs, raw)
            record.payload = payload
            call = parse_basic_request(payload)
            record.activity, record.is_test = call.activity.value, call.is_test
            assert inputs.nonce is not None
            await edge.verifier.consume_nonce(CallKind.BASIC, product, inputs.nonce)
            answer = await basic_calls.answer(product, call, request_id=request_id_of(request), deadline=deadline)
    except ProtocolError as exc:
        answer = Answer(exc.result_code, reason=f"{exc.code}: {exc.reason}")
    except (TenantsError, StoreError) as exc:
        log.error("call_failed", product=product.slug, error=exc.code, detail=str(exc))
        answer = Answer(ResultCode.INTERNAL_ERROR, reason=exc.code)
    except TimeoutError:
        answer = Answer(ResultCode.INTERNAL_ERROR, reason="answer deadline exceeded")
    except Exception as exc:  # the marketplace must get a result code, never a bare HTTP 500
        log.exception("call_crashed", product=product.slug)
        answer = Answer(ResultCode.INTERNAL_ERROR, reason=f"unexpected {type(exc).__name__}")
    if record.activity is None and record.payload is not None:
        record.activity = str(record.payload.get("activity", ""))[:32] or None
    body = answer_body(answer.code, answer.message, **answer.fields)
    finish_call(edge, request, product, record, answer, raw, started)
    sign_key = product.config.basic_keys[0] if product.config.sign_responses else None
    return marketplace_response(body, sign_key=sign_key)


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
        CallLogEntry(
            product=product.slug,
            kind=record.kind.value,
            activity=record.activity,
            result_code=answer.code.value,
            reason=answer.reason[:512] if answer.reason else None,
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
