"""OrderQueryClient against the fake open API (ASGI transport) and against failing transports."""

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest

from gateway.koogallery import apig
from gateway.koogallery.orders import (
    BuyerInfo,
    ChargingMode,
    ExtendParam,
    OrderInfo,
    OrderLine,
    OrderType,
    ProductInfo,
    build_order_query_url,
    parse_compact_time,
)
from gateway.order_query import (
    OrderQueryClient,
    OrderQueryError,
    OrderQueryInvalidRequestError,
    OrderQueryMalformedError,
    OrderQueryRejectedError,
    OrderQueryUnavailableError,
)
from gateway.simulator.open_api import OrderBook, create_open_api_app

pytestmark = pytest.mark.anyio

AK = "ORDER_QUERY_TEST_AK"
SK = "order-query-test-secret-key"
ENDPOINT = "http://127.0.0.1:8001"
NOW = datetime(2024, 11, 21, 9, 8, 46, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _clock() -> datetime:
    return NOW


@pytest.fixture
async def simulated() -> AsyncIterator[OrderQueryClient]:
    app = create_open_api_app(credentials={AK: SK}, orders=OrderBook(), clock=_clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=5.0) as http:
        yield OrderQueryClient(http, clock=_clock)


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> OrderQueryClient:
    return OrderQueryClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), clock=_clock)


async def _query(client: OrderQueryClient, order_id: str, line: str | None = None) -> OrderInfo:
    return await client.query(
        endpoint=ENDPOINT, ak=AK, sk=SK, order_id=order_id, order_line_id=line
    )


# --- against the simulator -----------------------------------------------------------------------


async def test_mock_order_is_returned_typed(simulated: OrderQueryClient) -> None:
    # when the documented mock order is queried with its line
    order = await _query(simulated, "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001")

    # then it is the captured response, typed
    assert isinstance(order, OrderInfo)
    assert (order.order_id, order.order_type, order.create_time, order.extend_params) == (
        "MOCKPERIODYEARNEW",
        OrderType.NEW,
        "20241121090846",
        [],
    )
    [line] = order.order_line
    assert isinstance(line, OrderLine)
    assert (
        line.order_line_id,
        line.charging_mode,
        line.period_type,
        line.period_number,
        line.expire_time,
        line.currency,
        line.currency_after_discount,
    ) == (
        "MOCKPERIODYEARNEW-000001",
        ChargingMode.PERIOD,
        "year",
        1,
        "20251121235959",
        "100",
        "100",
    )
    assert line.product_info == [
        ProductInfo.model_validate(
            {
                "productId": "OFFI846204237451911168",
                "skuCode": "0a4d1578-5295-46a7-92d4-7c803dccc51d",
                "linearValue": 50,
                "productName": "MOCK测试商品,测试规格,基础版,包周期",
            }
        )
    ]
    assert line.extend_params == [
        ExtendParam(name="emailDomainName", value="test.xxxx.com"),
        ExtendParam(name="ip", value="127.0.0.1"),
    ]
    assert order.buyer_info == BuyerInfo.model_validate(
        {
            "mobilePhone": "18688888888",
            "email": None,
            "customerId": "459bbbec25d24749b2eb83be37b602a8",
            "customerName": "mock_user_01",
            "customerRealName": "测试用户1",
            "customerType": 0,
            "userId": None,
            "userName": None,
        }
    )
    assert parse_compact_time(line.expire_time or "") == datetime(
        2025, 11, 21, 23, 59, 59, tzinfo=UTC
    )


async def test_order_without_line_id_returns_all_lines(simulated: OrderQueryClient) -> None:
    order = await _query(simulated, "MOCKMONTYCHANGE")
    assert order.order_type == OrderType.CHANGE
    assert [line.order_line_id for line in order.order_line] == ["MOCKMONTYCHANGE-000001"]


async def test_unknown_order_id_is_synthesized_deterministically(
    simulated: OrderQueryClient,
) -> None:
    # when a fresh order id is queried twice
    first = await _query(simulated, "CS2411210908ABCDE", "CS2411210908ABCDE-000001")
    again = await _query(simulated, "CS2411210908ABCDE")

    # then it is a NEW periodic order with one line, the same both times
    assert first == again
    assert first.order_id == "CS2411210908ABCDE"
    assert first.order_type == OrderType.NEW
    line = first.line("CS2411210908ABCDE-000001")
    assert line is not None
    assert (line.charging_mode, line.period_type, line.period_number) == ("PERIOD", "year", 1)
    assert first.buyer_info is not None and len(first.buyer_info.customer_id) == 32


async def test_order_id_needing_encoding_round_trips(simulated: OrderQueryClient) -> None:
    order = await _query(simulated, "CS 订单+/=&~1")
    assert order.order_id == "CS 订单+/=&~1"


async def test_notfound_order_is_rejected(simulated: OrderQueryClient) -> None:
    with pytest.raises(OrderQueryRejectedError) as caught:
        await _query(simulated, "NOTFOUND0001")
    error = caught.value
    assert (error.code, error.retryable) == ("order_query_rejected", False)
    assert (error.result_code, error.result_msg, error.status_code) == (
        "MKT.0100",
        "The order does not exist.",
        200,
    )


async def test_unknown_line_is_rejected(simulated: OrderQueryClient) -> None:
    with pytest.raises(OrderQueryRejectedError) as caught:
        await _query(simulated, "MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000002")
    assert caught.value.result_code == "MKT.0100"


async def test_wrong_secret_key_is_rejected_by_the_gateway(simulated: OrderQueryClient) -> None:
    with pytest.raises(OrderQueryRejectedError) as caught:
        await simulated.query(
            endpoint=ENDPOINT, ak=AK, sk="wrong", order_id="MOCKPERIODYEARNEW", order_line_id=None
        )
    assert (caught.value.result_code, caught.value.status_code) == ("APIG.0301", 401)


# --- the request it sends ------------------------------------------------------------------------


async def test_request_is_a_signed_get_of_the_documented_url() -> None:
    # given a transport that records the request
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "resultCode": "MKT.0000",
                "resultMsg": "Success",
                "orderInfo": {"orderId": "CS1", "orderType": "NEW"},
            },
        )

    # when an order is queried at an endpoint with a trailing slash
    order = await _client(handler).query(
        endpoint="https://mkt.myhuaweicloud.com/",
        ak=AK,
        sk=SK,
        order_id="CS1",
        order_line_id="CS1-000001",
    )

    # then one signed GET went to the documented URL, and its signature verifies
    assert order.order_id == "CS1"
    [request] = seen
    assert request.method == "GET"
    assert str(request.url) == (
        "https://mkt.myhuaweicloud.com/api/mkp-openapi-public/global/v1/order/query"
        "?orderId=CS1&orderLineId=CS1-000001"
    )
    assert request.headers["X-Sdk-Date"] == "20241121T090846Z"
    assert request.headers["Authorization"].startswith(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-sdk-date, Signature="
    )
    accepted = apig.verify_request(
        ak_to_sk={AK: SK}.get,
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        body=request.content,
        now=NOW,
    )
    assert accepted == AK


async def test_bad_arguments_send_nothing() -> None:
    # given a transport that records requests
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    client = _client(handler)

    # when the query is impossible, then it fails before any request
    for endpoint, ak, order_id in [
        ("ftp://mkt.myhuaweicloud.com", AK, "CS1"),
        ("https://mkt.myhuaweicloud.com?x=1", AK, "CS1"),
        (ENDPOINT, AK, ""),
        (ENDPOINT, AK, "C" * 65),
        (ENDPOINT, "", "CS1"),
    ]:
        with pytest.raises(OrderQueryInvalidRequestError) as caught:
            await client.query(
                endpoint=endpoint, ak=ak, sk=SK, order_id=order_id, order_line_id=None
            )
        assert (caught.value.code, caught.value.retryable) == ("order_query_invalid_request", False)
    assert seen == []


def test_url_keeps_an_endpoint_path_prefix() -> None:
    url = build_order_query_url(endpoint="http://sim:8001/mkt/", order_id="中", order_line_id=None)
    assert (
        url == "http://sim:8001/mkt/api/mkp-openapi-public/global/v1/order/query?orderId=%E4%B8%AD"
    )


# --- failures ------------------------------------------------------------------------------------


def _raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_network_failures_are_unavailable(exc: Exception) -> None:
    with pytest.raises(OrderQueryUnavailableError) as caught:
        await _query(_client(_raising(exc)), "MOCKPERIODYEARNEW")
    error = caught.value
    assert (error.code, error.retryable, error.status_code) == (
        "order_query_unavailable",
        True,
        None,
    )
    assert error.__cause__ is exc


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_server_errors_are_unavailable(status: int) -> None:
    client = _client(lambda request: httpx.Response(status, text="<html>busy</html>"))
    with pytest.raises(OrderQueryUnavailableError) as caught:
        await _query(client, "MOCKPERIODYEARNEW")
    assert (caught.value.status_code, caught.value.retryable) == (status, True)


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (401, {"error_code": "APIG.0301", "error_msg": "bad aksk"}, "APIG.0301", "bad aksk"),
        (400, {"resultCode": "MKT.0001", "resultMsg": "bad orderId"}, "MKT.0001", "bad orderId"),
        (403, None, "HTTP.403", None),
    ],
)
async def test_client_errors_are_rejections(
    status: int, body: dict[str, str] | None, code: str, message: str | None
) -> None:
    content = b"forbidden" if body is None else json.dumps(body).encode()
    client = _client(lambda request: httpx.Response(status, content=content))
    with pytest.raises(OrderQueryRejectedError) as caught:
        await _query(client, "MOCKPERIODYEARNEW")
    error = caught.value
    assert (error.result_code, error.result_msg, error.status_code, error.retryable) == (
        code,
        message,
        status,
        False,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"<html>not json</html>",
        b"",
        b'{"resultMsg": "no code"}',
        b'{"resultCode": "MKT.0000", "resultMsg": "Success"}',
        b'{"resultCode": "MKT.0000", "orderInfo": {"orderId": "OTHER", "orderType": "NEW"}}',
        json.dumps(
            {
                "resultCode": "MKT.0000",
                "orderInfo": {
                    "orderId": "MOCKPERIODYEARNEW",
                    "orderType": "NEW",
                    "orderLine": [
                        {"orderLineId": "x", "chargingMode": "PERIOD", "periodNumber": "one"}
                    ],
                },
            }
        ).encode(),
    ],
    ids=["html", "empty", "no-code", "no-order", "other-order", "bad-type"],
)
async def test_undocumented_answers_are_malformed(content: bytes) -> None:
    client = _client(lambda request: httpx.Response(200, content=content))
    with pytest.raises(OrderQueryMalformedError) as caught:
        await _query(client, "MOCKPERIODYEARNEW")
    assert (caught.value.code, caught.value.retryable) == ("order_query_malformed", False)


async def test_a_badly_encoded_answer_is_malformed() -> None:
    client = _client(
        lambda request: httpx.Response(
            200, content=b"not gzip", headers={"Content-Encoding": "gzip"}
        )
    )
    with pytest.raises(OrderQueryMalformedError, match="content encoding"):
        await _query(client, "MOCKPERIODYEARNEW")


async def test_an_oversized_answer_is_malformed() -> None:
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b" " * 2048))
    )
    client = OrderQueryClient(http, clock=_clock, max_response_bytes=1024)
    with pytest.raises(OrderQueryMalformedError, match="exceeds 1024 bytes"):
        await _query(client, "MOCKPERIODYEARNEW")


async def test_lenient_types_and_unknown_fields_are_accepted() -> None:
    # given an answer with numbers as amounts, a string periodNumber and fields not in the note
    answer = {
        "resultCode": "MKT.0000",
        "resultMsg": "Success",
        "traceId": "t-1",
        "orderInfo": {
            "orderId": "CS1",
            "orderType": "RENEW",
            "newField": {"x": 1},
            "orderLine": [
                {
                    "orderLineId": "CS1-000001",
                    "chargingMode": "PERIOD",
                    "periodNumber": "3",
                    "currency": 99.5,
                    "currencyAfterDiscount": 90,
                    "productInfo": [{"productId": "P", "skuCode": "S", "linearValue": 2.5}],
                }
            ],
            "buyerInfo": {"customerId": "c", "customerName": None, "customerType": None},
        },
    }
    client = _client(lambda request: httpx.Response(200, json=answer))

    # when it is queried
    order = await _query(client, "CS1")

    # then the documented fields are typed and the unknown ones kept
    line = order.order_line[0]
    assert (line.period_number, line.currency, line.currency_after_discount) == (3, "99.5", "90")
    assert line.product_info[0].linear_value == 2.5
    assert order.buyer_info == BuyerInfo.model_validate({"customerId": "c"})
    assert order.model_extra == {"newField": {"x": 1}}


def test_every_error_is_an_order_query_error() -> None:
    for leaf in (
        OrderQueryInvalidRequestError,
        OrderQueryUnavailableError,
        OrderQueryRejectedError,
        OrderQueryMalformedError,
    ):
        assert issubclass(leaf, OrderQueryError)
