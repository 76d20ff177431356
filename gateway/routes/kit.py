"""POST /koogallery/<slug>/produceAPI/v2/<sync>: the five joint-operation Kit syncs."""

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from gateway.basic_calls import Answer
from gateway.kit_syncs import KitSyncs, PreparedSync
from gateway.koogallery.kit import SyncName, loggable_kit_payload
from gateway.koogallery.payload import JsonObject
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.routes.answers import unknown_product_response
from gateway.routes.edge import CallRecord, Edge, handle_signed_call, request_id_of

_SYNCS = {sync.value: sync for sync in SyncName}


async def handle_kit_sync(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    kit_syncs: KitSyncs = request.app.state.kit_syncs
    product = edge.products.get(request.path_params["slug"])
    sync = _SYNCS.get(request.path_params["sync"])
    if product is None or sync is None:
        # The same answer for an unknown product and an unknown sync: nothing tells which slugs exist.
        edge.metrics.unknown_products.inc()
        return unknown_product_response()
    record = CallRecord(kind=CallKind.KIT, activity=sync.value)
    deadline = asyncio.get_running_loop().time() + product.config.answer_deadline_s
    headers = request.headers
    inputs = SignatureInputs(headers.get("x-sign"), headers.get("x-timestamp"), headers.get("x-nonce"))

    def prepare(payload: JsonObject) -> PreparedSync:
        prepared = kit_syncs.prepare(product, sync, payload)
        record.is_test = prepared.request.is_test
        return prepared

    async def execute(prepared: PreparedSync) -> Answer:
        return await kit_syncs.store(product, prepared, request_id=request_id_of(request), deadline=deadline)

    return await handle_signed_call(
        request,
        product,
        record,
        inputs=inputs,
        max_body_bytes=product.config.kit_max_body_bytes,
        prepare=prepare,
        execute=execute,
        loggable=loggable_kit_payload,
    )
