"""The fake order-query open API, over real HTTP through the ASGI transport."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.koogallery import apig
from gateway.koogallery.orders import OrderInfo, ProductInfo, build_order_query_url
from gateway.simulator.open_api import (
    DEMO_ACCESS_KEY,
    DEMO_SECRET_KEY,
    MOCK_ORDER_IDS,
    OrderBook,
    create_demo_open_api_app,
    create_open_api_app,
)

pytestmark = pytest.mark.anyio

AK = "SIM_TEST_AK"
SK = "sim-test-secret-key"
BASE = "http://127.0.0.1:8001"
NOW = datetime(2024, 11, 21, 9, 8, 46, tzinfo=UTC)
PATH = "/api/mkp-openapi-public/global/v1/order/query"

# The response captured from the live endpoint for MOCKPERIODYEARNEW (open-API note, CAP).
CAPTURED_MOCKPERIODYEARNEW: dict[str, Any] = {
    "resultCode": "MKT.0000",
    "resultMsg": "Success",
    "orderInfo": {
        "orderId": "MOCKPERIODYEARNEW",
        "orderType": "NEW",
        "createTime": "20241121090846",
        "orderLine": [
            {
                "orderLineId": "MOCKPERIODYEARNEW-000001",
                "chargingMode": "PERIOD",
                "periodType": "year",
                "periodNumber": 1,
                "expireTime": "20251121235959",
                "productInfo": [
                    {
                        "productId": "OFFI846204237451911168",
                        "skuCode": "0a4d1578-5295-46a7-92d4-7c803dccc51d",
                        "linearValue": 50,
                        "productName": "MOCK测试商品,测试规格,基础版,包周期",
                    }
                ],
                "extendParams": [
                    {"name": "emailDomainName", "value": "test.xxxx.com"},
                    {"name": "ip", "value": "127.0.0.1"},
                ],
                "currency": "100",
                "currencyAfterDiscount": "100",
            }
        ],
        "buyerInfo": {
            "mobilePhone": "18688888888",
            "email": None,
            "customerId": "459bbbec25d24749b2eb83be37b602a8",
            "customerName": "mock_user_01",
            "customerRealName": "测试用户1",
            "customerType": 0,
            "userId": None,
            "userName": None,
        },
        "extendParams": [],
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def book() -> OrderBook:
    return OrderBook()


@pytest.fixture
async def http(book: OrderBook) -> AsyncIterator[httpx.AsyncClient]:
    app = create_open_api_app(credentials={AK: SK}, orders=book, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def _get(
    http: httpx.AsyncClient,
    url: str,
    *,
    ak: str = AK,
    sk: str = SK,
    now: datetime = NOW,
) -> httpx.Response:
    headers = {"Content-Type": "application/json;charset=UTF-8"}
    signed = apig.sign_request(
        ak=ak, sk=sk, method="GET", url=url, headers=headers, body=b"", now=now
    )
    return await http.get(url, headers={**headers, **signed})


def _url(order_id: str, order_line_id: str | None = None) -> str:
    return build_order_query_url(endpoint=BASE, order_id=order_id, order_line_id=order_line_id)


async def test_mockperiodyearnew_is_the_captured_response(http: httpx.AsyncClient) -> None:
    response = await _get(http, _url("MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000001"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.json() == CAPTURED_MOCKPERIODYEARNEW


MOCKS = [
    ("MOCKPERIODYEARNEW", "NEW", "PERIOD"),
    ("MOCKONETIMENEW", "NEW", "ONE_TIME"),
    ("MOCKONDEMAND", "NEW", "ON_DEMAND"),
    ("MOCKONDEMANDPKG", "NEW", "ON_DEMAND_PKG"),
    ("MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD"),
    ("MOCKMONTYTRIALTOFORMAL", "TRIAL_TO_FORMAL", "PERIOD"),
    ("MOCKMONTYUNSUBSCRIBE", "UNSUBSCRIBE", "PERIOD"),
    ("MOCKMONTYRENEW", "RENEW", "PERIOD"),
    ("MOCKMONTYCHANGE", "CHANGE", "PERIOD"),
]


def test_the_documented_mock_ids_are_all_known() -> None:
    assert tuple(order_id for order_id, _, _ in MOCKS) == MOCK_ORDER_IDS


@pytest.mark.parametrize(("order_id", "order_type", "charging_mode"), MOCKS)
async def test_every_documented_mock_order_is_served(
    http: httpx.AsyncClient, order_id: str, order_type: str, charging_mode: str
) -> None:
    response = await _get(http, _url(order_id, f"{order_id}-000001"))
    body = response.json()
    assert (body["resultCode"], body["resultMsg"]) == ("MKT.0000", "Success")
    order = OrderInfo.model_validate(body["orderInfo"])
    assert (order.order_id, order.order_type) == (order_id, order_type)
    assert [(line.order_line_id, line.charging_mode) for line in order.order_line] == [
        (f"{order_id}-000001", charging_mode)
    ]


async def test_unknown_order_is_synthesized_from_its_id(http: httpx.AsyncClient) -> None:
    # when two fresh ids are queried, one of them twice
    first = (await _get(http, _url("CS2411210908ABCDE"))).json()
    again = (await _get(http, _url("CS2411210908ABCDE", "CS2411210908ABCDE-000001"))).json()
    other = (await _get(http, _url("CS2411210908ZZZZZ"))).json()

    # then each is a NEW periodic order, the same id always giving the same content
    assert first == again
    assert first["resultCode"] == "MKT.0000"
    info = first["orderInfo"]
    assert (info["orderId"], info["orderType"]) == ("CS2411210908ABCDE", "NEW")
    [line] = info["orderLine"]
    assert (
        line["orderLineId"],
        line["chargingMode"],
        line["periodType"],
        line["periodNumber"],
    ) == (
        "CS2411210908ABCDE-000001",
        "PERIOD",
        "year",
        1,
    )
    assert info["createTime"] < line["expireTime"]
    assert other["orderInfo"]["buyerInfo"]["customerId"] != info["buyerInfo"]["customerId"]


async def test_synthesized_orders_carry_the_configured_product() -> None:
    product = ProductInfo.model_validate(
        {"productId": "OFFI_DEMO", "skuCode": "sku-basic", "productName": "Demo,basic"}
    )
    app = create_open_api_app(
        credentials={AK: SK}, orders=OrderBook(product=product), clock=lambda: NOW
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        body = (await _get(http, _url("CS1"))).json()
    assert body["orderInfo"]["orderLine"][0]["productInfo"] == [
        {"productId": "OFFI_DEMO", "skuCode": "sku-basic", "productName": "Demo,basic"}
    ]


@pytest.mark.parametrize(
    "url",
    [_url("NOTFOUND"), _url("NOTFOUND-CS1"), _url("MOCKPERIODYEARNEW", "MOCKPERIODYEARNEW-000002")],
)
async def test_notfound_ids_and_unknown_lines_answer_an_error_code(
    http: httpx.AsyncClient, url: str
) -> None:
    response = await _get(http, url)
    assert response.status_code == 200
    assert response.json() == {"resultCode": "MKT.0100", "resultMsg": "The order does not exist."}


@pytest.mark.parametrize(
    "query",
    ["", "orderLineId=X-000001", "orderId=", "orderId=a&orderId=b", f"orderId={'C' * 65}"],
)
async def test_bad_parameters_answer_an_error_code(http: httpx.AsyncClient, query: str) -> None:
    response = await _get(http, f"{BASE}{PATH}?{query}")
    assert response.json()["resultCode"] == "MKT.0001"


async def test_added_orders_win_over_mocks_and_notfound(
    http: httpx.AsyncClient, book: OrderBook
) -> None:
    # given orders added under a mock id and under a NOTFOUND id
    book.add(OrderInfo.model_validate({"orderId": "MOCKPERIODYEARNEW", "orderType": "RENEW"}))
    book.add(OrderInfo.model_validate({"orderId": "NOTFOUNDBUTADDED", "orderType": "TRIAL"}))

    # then those are served
    mock = (await _get(http, _url("MOCKPERIODYEARNEW"))).json()
    added = (await _get(http, _url("NOTFOUNDBUTADDED"))).json()
    assert mock["orderInfo"] == {"orderId": "MOCKPERIODYEARNEW", "orderType": "RENEW"}
    assert added["orderInfo"] == {"orderId": "NOTFOUNDBUTADDED", "orderType": "TRIAL"}


# --- signature ----------------------------------------------------------------------------------

AUTH_FAILED = "APIG.0301"


async def test_unsigned_request_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.get(_url("MOCKPERIODYEARNEW"))
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == AUTH_FAILED
    assert "orderInfo" not in body


@pytest.mark.parametrize(
    ("ak", "sk", "now", "reason"),
    [
        (AK, "wrong-secret", NOW, "apig_signature_mismatch"),
        ("OTHER_AK", SK, NOW, "apig_unknown_access_key"),
        (AK, SK, NOW - timedelta(minutes=16), "apig_stale_date"),
        (AK, SK, NOW + timedelta(minutes=16), "apig_stale_date"),
    ],
)
async def test_badly_signed_request_is_refused(
    http: httpx.AsyncClient, ak: str, sk: str, now: datetime, reason: str
) -> None:
    response = await _get(http, _url("MOCKPERIODYEARNEW"), ak=ak, sk=sk, now=now)
    assert response.status_code == 401
    assert response.json() == {
        "error_code": AUTH_FAILED,
        "error_msg": f"Incorrect IAM authentication information: {reason}",
    }


async def test_tampered_query_is_refused(http: httpx.AsyncClient) -> None:
    # given a request signed for one order but sent for another
    signed_url = _url("MOCKPERIODYEARNEW")
    headers = {"Content-Type": "application/json;charset=UTF-8"}
    signed = apig.sign_request(
        ak=AK, sk=SK, method="GET", url=signed_url, headers=headers, body=b"", now=NOW
    )
    response = await http.get(_url("MOCKONETIMENEW"), headers={**headers, **signed})

    # then it is refused and no order is answered
    assert response.status_code == 401
    assert "orderInfo" not in response.json()


async def test_only_get_is_served(http: httpx.AsyncClient) -> None:
    response = await http.post(_url("MOCKPERIODYEARNEW"), content=b"{}")
    assert response.status_code == 405


async def test_demo_app_serves_with_the_demo_credentials() -> None:
    app = create_demo_open_api_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await _get(
            http,
            _url("MOCKONETIMENEW"),
            ak=DEMO_ACCESS_KEY,
            sk=DEMO_SECRET_KEY,
            now=datetime.now(UTC),
        )
    assert response.json()["orderInfo"]["orderId"] == "MOCKONETIMENEW"


def test_captured_example_round_trips_through_the_models() -> None:
    # the typed model loses nothing of the captured answer (aliases, nulls, numbers)
    order = OrderInfo.model_validate(CAPTURED_MOCKPERIODYEARNEW["orderInfo"])
    dumped = order.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert json.dumps(dumped, sort_keys=True) == json.dumps(
        CAPTURED_MOCKPERIODYEARNEW["orderInfo"], sort_keys=True
    )
