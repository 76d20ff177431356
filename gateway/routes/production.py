"""POST /koogallery/<slug>: the basic production calls."""

from starlette.requests import Request
from starlette.responses import Response

from gateway.basic_calls import Answer, BasicCalls
from gateway.koogallery.basic import Activity, BasicRequest, parse_basic_request
from gateway.koogallery.payload import JsonObject
from gateway.koogallery.signing import CallKind, SignatureInputs
from gateway.routes.answers import unknown_product_response
from gateway.routes.edge import CallRecord, Edge, handle_signed_call, request_id_of

_ACTIVITIES = frozenset(activity.value for activity in Activity)


async def handle_production_call(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    basic_calls: BasicCalls = request.app.state.basic_calls
    product = edge.products.get(request.path_params["slug"])
    if product is None:
        edge.metrics.unknown_products.inc()
        return unknown_product_response()
    deadline = edge.clock.monotonic() + product.config.answer_deadline_s
    record = CallRecord(kind=CallKind.BASIC)

    def prepare(payload: JsonObject) -> BasicRequest:
        # A metrics label: only the activities there are (another would make a series per value).
        activity = payload.get("activity")
        known = isinstance(activity, str) and activity in _ACTIVITIES
        record.activity = activity if known else ("other" if activity is not None else None)
        call = parse_basic_request(payload)
        record.is_test = call.is_test
        return call

    async def execute(call: BasicRequest) -> Answer:
        return await basic_calls.answer(product, call, request_id=request_id_of(request), deadline=deadline)

    query = request.query_params
    return await handle_signed_call(
        request,
        product,
        record,
        inputs=SignatureInputs(query.get("signature"), query.get("timestamp"), query.get("nonce")),
        max_body_bytes=product.config.max_body_bytes,
        prepare=prepare,
        execute=execute,
    )
