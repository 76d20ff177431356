"""Bad input: the documented result code, no state change, no adapter call, no nonce used."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind
from gateway.simulator.signer import marketplace_body, new_nonce, sign_call
from tests.conftest import ALPHA_KEY, BETA_KEY, Marketplace
from tests.fakes import Behaviour
from tests.gateway.helpers import call_log, state_counts
from tests.kit.helpers import tenant_sync

pytestmark = pytest.mark.anyio

NEW = {"activity": "newInstance", "orderId": "CS9", "orderLineId": "CS9-000001", "businessId": "biz-9"}


def now_ms() -> int:
    return epoch_ms(datetime.now(UTC))


async def post_signed(
    client: httpx.AsyncClient,
    body: bytes,
    *,
    key: str = ALPHA_KEY,
    ts: int | None = None,
    nonce: str | None = None,
    slug: str = "alpha",
    drop: str | None = None,
) -> httpx.Response:
    """Sign the raw `body` over itself (as a marketplace would when it is not JSON) and send it."""
    from gateway.koogallery.signing import sign

    nonce = nonce or new_nonce()
    timestamp = str(ts if ts is not None else now_ms())
    query = {
        "signature": sign(CallKind.BASIC, key.encode(), nonce=nonce, timestamp=timestamp, payload=body),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    if drop:
        del query[drop]
    return await client.post(
        f"/koogallery/{slug}", params=query, content=body, headers={"Content-Type": "application/json;charset=utf8"}
    )


BAD_BODIES = {
    "empty body": b"",
    "not JSON": b"activity=newInstance",
    "JSON array": b'[{"activity":"newInstance"}]',
    "invalid UTF-8": b'{"activity":"newInstance","orderId":"\xff\xfe"}',
    "unknown activity": marketplace_body({"activity": "deleteEverything", "instanceId": "x"}),
    "missing field": marketplace_body({"activity": "newInstance", "orderId": "CS9", "businessId": "b"}),
    "wrong type": marketplace_body({**NEW, "orderId": 12345}),
    "overlong field": marketplace_body({**NEW, "orderId": "X" * 65}),
    "too many ids": marketplace_body(
        {"activity": "queryInstance", "instanceId": ",".join(f"i{n}" for n in range(101))}
    ),
    "zero ids": marketplace_body({"activity": "queryInstance", "instanceId": ""}),
    "bad scene": marketplace_body(
        {
            "activity": "refreshInstance",
            "instanceId": "i",
            "orderId": "o",
            "orderLineId": "l",
            "scene": "FOREVER",
            "expireTime": "20301124023618",
        }
    ),
    "bad expire time": marketplace_body(
        {
            "activity": "refreshInstance",
            "instanceId": "i",
            "orderId": "o",
            "orderLineId": "l",
            "scene": "RENEWAL",
            "expireTime": "2030-11-24",
        }
    ),
    "bad status": marketplace_body({"activity": "updateInstanceStatus", "instanceId": "i", "status": "PAUSE"}),
    "NaN": b'{"activity":"newInstance","orderId":NaN}',
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
async def test_bad_body_is_bad_parameter_and_changes_nothing(
    case: str, app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    nonce = new_nonce()
    response = await post_signed(client, BAD_BODIES[case], nonce=nonce)
    assert response.status_code == 200
    assert response.json()["resultCode"] == "000002"
    assert "Traceback" not in response.text
    assert await state_counts(app) == (0, 0)
    assert not behaviours["alpha"].calls
    [entry] = await call_log(app)
    assert (entry.result_code, entry.product, entry.kind) == ("000002", "alpha", "basic")
    assert entry.reason
    # The nonce was not consumed: a good call may still use it.
    good = await post_signed(client, marketplace_body(NEW), nonce=nonce)
    assert good.json()["resultCode"] == "000000"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing signature", "000001"),
        ("missing timestamp", "000002"),
        ("missing nonce", "000002"),
        ("timestamp in the past", "000002"),
        ("timestamp in the future", "000002"),
        ("timestamp not a number", "000002"),
        ("wrong key", "000001"),
        ("another product's key", "000001"),
        ("tampered body", "000001"),
    ],
)
async def test_bad_signature_inputs(
    case: str, expected: str, app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    body = marketplace_body(NEW)
    nonce = new_nonce()
    match case:
        case "missing signature":
            response = await post_signed(client, body, nonce=nonce, drop="signature")
        case "missing timestamp":
            response = await post_signed(client, body, nonce=nonce, drop="timestamp")
        case "missing nonce":
            response = await post_signed(client, body, nonce=nonce, drop="nonce")
        case "timestamp in the past":
            response = await post_signed(client, body, nonce=nonce, ts=now_ms() - 61_000)
        case "timestamp in the future":
            response = await post_signed(client, body, nonce=nonce, ts=now_ms() + 61_000)
        case "timestamp not a number":
            signed = sign_call(CallKind.BASIC, body, key=ALPHA_KEY.encode(), now_ms=now_ms(), nonce=nonce)
            response = await client.post(
                "/koogallery/alpha", content=body, params={**signed.query, "timestamp": "soon"}
            )
        case "wrong key":
            response = await post_signed(client, body, nonce=nonce, key="not-the-key-000000000")
        case "another product's key":
            response = await post_signed(client, body, nonce=nonce, key=BETA_KEY)
        case "tampered body":
            signed = sign_call(CallKind.BASIC, body, key=ALPHA_KEY.encode(), now_ms=now_ms(), nonce=nonce)
            tampered = body.replace(b"CS9-000001", b"CS9-000002")
            response = await client.post("/koogallery/alpha", content=tampered, params=signed.query)
    assert response.status_code == 200
    assert response.json()["resultCode"] == expected
    assert await state_counts(app) == (0, 0)
    assert not behaviours["alpha"].calls
    [entry] = await call_log(app)
    assert entry.result_code == expected and entry.reason
    good = await post_signed(client, body, nonce=nonce)
    assert good.json()["resultCode"] == "000000"


async def test_replayed_nonce_is_refused(app: Starlette, client: httpx.AsyncClient) -> None:
    nonce = new_nonce()
    first = await post_signed(client, marketplace_body(NEW), nonce=nonce)
    assert first.json()["resultCode"] == "000000"
    replay = await post_signed(client, marketplace_body({**NEW, "businessId": "biz-10"}), nonce=nonce)
    assert replay.json()["resultCode"] == "000001"
    assert await state_counts(app) == (1, 1)


async def test_a_nonce_is_accepted_once_per_product_whatever_the_kind_of_call(
    app: Starlette, marketplace: Marketplace
) -> None:
    """Contract §2: once per product. A basic call's nonce cannot be replayed on a Kit sync of the
    same product (and the other way round); another product has nonces of its own."""
    basic_nonce, kit_nonce = new_nonce(), new_nonce()
    assert (await marketplace.answer("alpha", NEW, nonce=basic_nonce))["resultCode"] == "000000"
    replayed_as_kit = await marketplace.kit("alpha", "tenantSync", tenant_sync("T-1", 1), nonce=basic_nonce)
    assert replayed_as_kit.json()["resultCode"] == "000001"
    accepted_kit = await marketplace.kit("alpha", "tenantSync", tenant_sync("T-1", 1), nonce=kit_nonce)
    assert accepted_kit.json()["resultCode"] == "000000"
    replayed_as_basic = await marketplace.answer("alpha", {**NEW, "businessId": "biz-11"}, nonce=kit_nonce)
    assert replayed_as_basic["resultCode"] == "000001"
    other_product = await marketplace.answer("beta", NEW, nonce=basic_nonce)
    assert other_product["resultCode"] == "000000"


async def test_timestamp_in_seconds_is_accepted(client: httpx.AsyncClient) -> None:
    response = await post_signed(client, marketplace_body(NEW), ts=now_ms() // 1000)
    assert response.json()["resultCode"] == "000000"


async def test_unknown_product_is_404_without_detail(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await post_signed(client, marketplace_body(NEW), slug="nobody")
    assert response.status_code == 404
    assert response.json() == {"resultCode": "000002", "resultMsg": "unknown product"}
    assert await state_counts(app) == (0, 0)


async def test_body_over_the_cap_is_413(app: Starlette, client: httpx.AsyncClient) -> None:
    body = marketplace_body({**NEW, "padding": "x" * 70_000})
    response = await post_signed(client, body)
    assert response.status_code == 413
    assert response.json()["resultCode"] == "000002"
    assert await state_counts(app) == (0, 0)
    [entry] = await call_log(app)
    assert entry.http_status == 413


async def test_a_413_is_signed_where_the_product_signs_its_answers(marketplace: Marketplace) -> None:
    refused = await marketplace.basic("beta", {**NEW, "padding": "x" * 70_000})
    assert refused.status_code == 413
    digest = base64.b64encode(hmac.new(BETA_KEY.encode(), refused.content, hashlib.sha256).digest()).decode()
    assert refused.headers["body-sign"] == f'sign_type="HMAC-SHA256", signature="{digest}"'


async def test_body_in_another_key_order_verifies_over_canonical_form(client: httpx.AsyncClient) -> None:
    # The marketplace signs the canonical form; the body on the wire may be ordered otherwise.
    wire = json.dumps(
        {
            "testFlag": None,
            "orderLineId": "CS9-000001",
            "businessId": "biz-9",
            "orderId": "CS9",
            "activity": "newInstance",
        },
        indent=1,
    ).encode()
    signed = sign_call(CallKind.BASIC, wire, key=ALPHA_KEY.encode(), now_ms=now_ms())
    response = await client.post("/koogallery/alpha", content=wire, params=signed.query)
    assert response.json()["resultCode"] == "000000"


async def test_body_sign_only_where_the_product_asks_for_it(marketplace: Marketplace) -> None:
    unsigned = await marketplace.basic("alpha", NEW)
    assert "body-sign" not in unsigned.headers
    signed = await marketplace.basic("beta", NEW)
    digest = base64.b64encode(hmac.new(BETA_KEY.encode(), signed.content, hashlib.sha256).digest()).decode()
    assert signed.headers["body-sign"] == f'sign_type="HMAC-SHA256", signature="{digest}"'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "activity",
                    "orderId",
                    "orderLineId",
                    "businessId",
                    "instanceId",
                    "status",
                    "scene",
                    "expireTime",
                    "testFlag",
                    "productInfo",
                ]
            ),
            json_values,
            max_size=6,
        ).map(marketplace_body),
    ),
    query=st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "x"]), st.text(max_size=70), max_size=4),
    headers=st.dictionaries(
        st.sampled_from(["content-type", "x-sign", "content-length-x"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    ),
)
async def test_arbitrary_requests_never_fail_or_change_state(
    body: bytes,
    query: dict[str, str],
    headers: dict[str, str],
    app: Starlette,
    client: httpx.AsyncClient,
    behaviours: dict[str, Behaviour],
) -> None:
    response = await client.post("/koogallery/alpha", content=body, params=query, headers=headers)
    assert response.status_code == 200
    answer = response.json()
    assert answer["resultCode"] in {"000001", "000002"}
    assert "Traceback" not in response.text
    assert await state_counts(app) == (0, 0)
    assert not behaviours["alpha"].calls
