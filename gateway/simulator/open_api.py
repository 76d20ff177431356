"""The marketplace's order-query open API, played locally.

`create_open_api_app(credentials=..., orders=...)` serves
`GET /api/mkp-openapi-public/global/v1/order/query` and checks the APIG AK/SK signature of
every request, as the real API gateway does (HTTP 401, `APIG.0301`, when it fails).

Which orders exist (`OrderBook.find`):
- orders added with `OrderBook.add` (they win over everything else);
- the documented mock orders (`MOCKPERIODYEARNEW`, ... each with line `<id>-000001`).
  `MOCKPERIODYEARNEW` is the response captured from the live endpoint; the contents of the
  other mocks are invented in the same shape (only their ids are documented);
- an id starting with `NOTFOUND`: no order (answered `MKT.0100`);
- any other id: a NEW yearly PERIOD order synthesized from the id (same id, same content), so a
  demo can invent fresh order ids.

Result codes other than `MKT.0000` are not documented; `MKT.0100` (order not found) and
`MKT.0001` (bad parameter) are this simulator's own, answered with HTTP 200.

Serve it with `uvicorn --factory gateway.simulator.open_api:create_demo_open_api_app`
(credentials `DEMO_ACCESS_KEY` / `DEMO_SECRET_KEY`).
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.koogallery import apig
from gateway.koogallery.orders import (
    MAX_ID_LENGTH,
    ORDER_QUERY_PATH,
    SUCCESS_RESULT_CODE,
    OrderInfo,
    OrderQueryResponse,
    ProductInfo,
    format_compact_time,
)

ORDER_NOT_FOUND_CODE = "MKT.0100"
BAD_PARAMETER_CODE = "MKT.0001"
AUTH_FAILED_CODE = "APIG.0301"
NOT_FOUND_PREFIX = "NOTFOUND"
DEMO_ACCESS_KEY = "SIMULATOR_AK_0000000000"
DEMO_SECRET_KEY = "SIMULATOR_SK_for_local_use_only"  # noqa: S105 - the local stand-in's public test key
MEDIA_TYPE = "application/json;charset=UTF-8"

MOCK_PRODUCT_ID = "OFFI846204237451911168"
MOCK_SKU_CODE = "0a4d1578-5295-46a7-92d4-7c803dccc51d"
MOCK_PRODUCT_NAME = "MOCK测试商品,测试规格,基础版,包周期"
MOCK_ORDER_IDS = (
    "MOCKPERIODYEARNEW",
    "MOCKONETIMENEW",
    "MOCKONDEMAND",
    "MOCKONDEMANDPKG",
    "MOCKPERIODDAYTRIAL",
    "MOCKMONTYTRIALTOFORMAL",
    "MOCKMONTYUNSUBSCRIBE",
    "MOCKMONTYRENEW",
    "MOCKMONTYCHANGE",
)

_MOCK_BUYER: dict[str, Any] = {
    "mobilePhone": "18688888888",
    "email": None,
    "customerId": "459bbbec25d24749b2eb83be37b602a8",
    "customerName": "mock_user_01",
    "customerRealName": "测试用户1",
    "customerType": 0,
    "userId": None,
    "userName": None,
}
_MOCK_LINE_PARAMS = [
    {"name": "emailDomainName", "value": "test.xxxx.com"},
    {"name": "ip", "value": "127.0.0.1"},
]
_SYNTHETIC_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def _mock_order(
    order_id: str,
    *,
    order_type: str,
    charging_mode: str,
    period: tuple[str, int] | None,
    expire_time: str | None,
    mode_name: str,
    amount: str,
    sku_code: str = MOCK_SKU_CODE,
    linear_value: int | None = 50,
    create_time: str = "20241121090846",
) -> OrderInfo:
    product: dict[str, Any] = {"productId": MOCK_PRODUCT_ID, "skuCode": sku_code}
    if linear_value is not None:
        product["linearValue"] = linear_value
    product["productName"] = f"MOCK测试商品,测试规格,基础版,{mode_name}"
    line: dict[str, Any] = {"orderLineId": f"{order_id}-000001", "chargingMode": charging_mode}
    if period is not None:
        line["periodType"], line["periodNumber"] = period
    if expire_time is not None:
        line["expireTime"] = expire_time
    line |= {
        "productInfo": [product],
        "extendParams": _MOCK_LINE_PARAMS,
        "currency": amount,
        "currencyAfterDiscount": amount,
    }
    return OrderInfo.model_validate(
        {
            "orderId": order_id,
            "orderType": order_type,
            "createTime": create_time,
            "orderLine": [line],
            "buyerInfo": _MOCK_BUYER,
            "extendParams": [],
        }
    )


def mock_orders() -> dict[str, OrderInfo]:
    """The documented mock orders by id; MOCKPERIODYEARNEW equals the captured response."""
    orders = [
        _mock_order(
            "MOCKPERIODYEARNEW",
            order_type="NEW",
            charging_mode="PERIOD",
            period=("year", 1),
            expire_time="20251121235959",
            mode_name="包周期",
            amount="100",
        ),
        _mock_order(
            "MOCKONETIMENEW",
            order_type="NEW",
            charging_mode="ONE_TIME",
            period=None,
            expire_time=None,
            mode_name="一次性",
            amount="100",
        ),
        _mock_order(
            "MOCKONDEMAND",
            order_type="NEW",
            charging_mode="ON_DEMAND",
            period=None,
            expire_time=None,
            mode_name="按需",
            amount="0",
            linear_value=None,
        ),
        _mock_order(
            "MOCKONDEMANDPKG",
            order_type="NEW",
            charging_mode="ON_DEMAND_PKG",
            period=("month", 1),
            expire_time="20241221235959",
            mode_name="按需套餐包",
            amount="100",
        ),
        _mock_order(
            "MOCKPERIODDAYTRIAL",
            order_type="TRIAL",
            charging_mode="PERIOD",
            period=("day", 7),
            expire_time="20241128235959",
            mode_name="包周期",
            amount="0",
        ),
        _mock_order(
            "MOCKMONTYTRIALTOFORMAL",
            order_type="TRIAL_TO_FORMAL",
            charging_mode="PERIOD",
            period=("month", 1),
            expire_time="20241221235959",
            mode_name="包周期",
            amount="100",
        ),
        _mock_order(
            "MOCKMONTYUNSUBSCRIBE",
            order_type="UNSUBSCRIBE",
            charging_mode="PERIOD",
            period=("month", 1),
            expire_time="20241121235959",
            mode_name="包周期",
            amount="100",
        ),
        _mock_order(
            "MOCKMONTYRENEW",
            order_type="RENEW",
            charging_mode="PERIOD",
            period=("month", 1),
            expire_time="20250121235959",
            mode_name="包周期",
            amount="100",
        ),
        _mock_order(
            "MOCKMONTYCHANGE",
            order_type="CHANGE",
            charging_mode="PERIOD",
            period=("month", 1),
            expire_time="20241221235959",
            mode_name="包周期",
            amount="200",
            sku_code="5c7a8b2e-0d4f-4e8a-9b3c-6f1d2e3a4b5c",
            linear_value=100,
        ),
    ]
    return {order.order_id: order for order in orders}


def synthesize_order(order_id: str, *, product: ProductInfo | None = None) -> OrderInfo:
    """A NEW one-year PERIOD order whose buyer, dates and amount derive from `order_id` alone.

    `product` (default: the mock product) is the product bought, so a demo can make synthesized
    orders match the product and SKU it is configured with.
    """
    digest = hashlib.sha256(order_id.encode("utf-8")).hexdigest()
    created = _SYNTHETIC_EPOCH + timedelta(seconds=int(digest[:8], 16) % (365 * 24 * 3600))
    expires = created.replace(year=created.year + 1, hour=23, minute=59, second=59)
    amount = str(100 * (1 + int(digest[8:10], 16) % 10))
    if product is None:
        product_json: dict[str, Any] = {
            "productId": MOCK_PRODUCT_ID,
            "skuCode": MOCK_SKU_CODE,
            "linearValue": 10 * (1 + int(digest[10:12], 16) % 10),
            "productName": MOCK_PRODUCT_NAME,
        }
    else:
        product_json = product.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return OrderInfo.model_validate(
        {
            "orderId": order_id,
            "orderType": "NEW",
            "createTime": format_compact_time(created),
            "orderLine": [
                {
                    "orderLineId": f"{order_id}-000001",
                    "chargingMode": "PERIOD",
                    "periodType": "year",
                    "periodNumber": 1,
                    "expireTime": format_compact_time(expires),
                    "productInfo": [product_json],
                    "extendParams": [],
                    "currency": amount,
                    "currencyAfterDiscount": amount,
                }
            ],
            "buyerInfo": {
                "mobilePhone": None,
                "email": None,
                "customerId": digest[:32],
                "customerName": f"sim_user_{digest[32:40]}",
                "customerRealName": f"模拟用户{digest[32:36]}",
                "customerType": 0,
                "userId": None,
                "userName": None,
            },
            "extendParams": [],
        }
    )


class OrderBook:
    """The simulator's orders: added ones, then the mocks, then synthesized ones."""

    def __init__(self, *, include_mocks: bool = True, product: ProductInfo | None = None) -> None:
        self._added: dict[str, OrderInfo] = {}
        self._mocks = mock_orders() if include_mocks else {}
        self._product = product

    def add(self, order_info: OrderInfo) -> None:
        """Serve this order for its id from now on (replacing any earlier one)."""
        self._added[order_info.order_id] = order_info

    def find(self, order_id: str) -> OrderInfo | None:
        """The order with this id; None only for an unadded id starting with `NOTFOUND`."""
        order = self._added.get(order_id) or self._mocks.get(order_id)
        if order is not None:
            return order
        if order_id.startswith(NOT_FOUND_PREFIX):
            return None
        return synthesize_order(order_id, product=self._product)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_open_api_app(
    *,
    credentials: Mapping[str, str],
    orders: OrderBook,
    clock: Callable[[], datetime] = _utc_now,
    max_skew_s: float = apig.DEFAULT_MAX_SKEW_S,
) -> Starlette:
    """The fake open API; `credentials` maps each accepted AK to its SK."""
    keys = dict(credentials)

    async def query_order(request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else quote(request.url.path)
        query = request.scope.get("query_string", b"").decode("latin-1")
        try:
            apig.verify_request(
                ak_to_sk=keys.get,
                method=request.method,
                url=f"{path}?{query}" if query else path,
                headers=request.headers,
                body=body,
                now=clock(),
                max_skew_s=max_skew_s,
            )
        except apig.ApigAuthError as exc:
            return _json(
                {
                    "error_code": AUTH_FAILED_CODE,
                    "error_msg": f"Incorrect IAM authentication information: {exc.code}",
                },
                status_code=401,
            )

        params = _query_params(query)
        order_ids = params.get("orderId", [])
        line_ids = params.get("orderLineId", [])
        if len(order_ids) != 1 or not 0 < len(order_ids[0]) <= MAX_ID_LENGTH or len(line_ids) > 1:
            return _answer(BAD_PARAMETER_CODE, "orderId is required, orderLineId is optional")
        order = orders.find(order_ids[0])
        if order is not None and line_ids:
            line = order.line(line_ids[0])
            order = None if line is None else order.model_copy(update={"order_line": [line]})
        if order is None:
            return _answer(ORDER_NOT_FOUND_CODE, "The order does not exist.")
        return _answer(SUCCESS_RESULT_CODE, "Success", order)

    return Starlette(routes=[Route(ORDER_QUERY_PATH, query_order, methods=["GET"])])


def create_demo_open_api_app() -> Starlette:
    """The fake open API with the demo credentials and the mock orders, for `uvicorn --factory`."""
    return create_open_api_app(credentials={DEMO_ACCESS_KEY: DEMO_SECRET_KEY}, orders=OrderBook())


def _query_params(query: str) -> dict[str, list[str]]:
    # Decoded as the APIG signer decodes them ("+" stays "+"), so what is served is what was signed.
    params: dict[str, list[str]] = {}
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key:
            params.setdefault(unquote(key), []).append(unquote(value))
    return params


def _answer(result_code: str, result_msg: str, order: OrderInfo | None = None) -> Response:
    payload: dict[str, Any] = {"resultCode": result_code, "resultMsg": result_msg}
    if order is not None:
        answer = OrderQueryResponse.model_validate({**payload, "orderInfo": order})
        payload = answer.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return _json(payload, status_code=200)


def _json(payload: Mapping[str, Any], *, status_code: int) -> Response:
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(content, status_code=status_code, media_type=MEDIA_TYPE)
