"""Bad Kit calls: the documented result code, and nothing happens.

Each refused call leaves every directory table and the outbox as they were, reaches no
adapter, is written to the call log with its reason, and does not use up its nonce: the
same nonce, correctly signed, is accepted right after.
"""

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind, sign
from gateway.simulator.signer import marketplace_body, new_nonce, sign_call
from tests.conftest import ALPHA_KEY, BETA_KEY, Marketplace
from tests.fakes import Behaviour
from tests.gateway.helpers import call_log
from tests.kit.helpers import (
    TENANT_A,
    all_org_sync,
    application_sync,
    auth_sync,
    directory_counts,
    public_key,
    settle_events,
    single_org_sync,
    tenant_sync,
    user,
)

pytestmark = pytest.mark.anyio

Body = dict[str, object] | bytes


def now_ms() -> int:
    return epoch_ms(datetime.now(UTC))


async def send(
    client: httpx.AsyncClient,
    sync: str,
    body: Body,
    *,
    slug: str = "alpha",
    key: str = ALPHA_KEY,
    nonce: str,
    ts: int | None = None,
    drop: str | None = None,
    sign_over: bytes | None = None,
) -> httpx.Response:
    """A Kit call signed over `sign_over` (default: the body's bytes exactly as sent)."""
    raw = body if isinstance(body, bytes) else marketplace_body(body)
    timestamp = str(ts if ts is not None else now_ms())
    signature = sign(CallKind.KIT, key.encode(), nonce=nonce, timestamp=timestamp, payload=sign_over or raw)
    headers = {"Content-Type": "application/json", "x-sign": signature, "x-timestamp": timestamp, "x-nonce": nonce}
    if drop:
        del headers[drop]
    return await client.post(f"/koogallery/{slug}/produceAPI/v2/{sync}", content=raw, headers=headers)


def sender(client: httpx.AsyncClient, sync: str, body: Body) -> Callable[[str], Awaitable[httpx.Response]]:
    async def attempt(nonce: str) -> httpx.Response:
        return await send(client, sync, body, nonce=nonce)

    return attempt


async def send_basic_signed(client: httpx.AsyncClient, body: bytes, *, nonce: str) -> httpx.Response:
    """A Kit call carrying a signature of the basic scheme (the wrong one for Kit)."""
    call = sign_call(CallKind.BASIC, body, key=ALPHA_KEY.encode(), now_ms=now_ms(), nonce=nonce)
    headers = {"x-sign": call.signature, "x-timestamp": call.timestamp, "x-nonce": nonce}
    return await client.post("/koogallery/alpha/produceAPI/v2/tenantSync", content=body, headers=headers)


def undecryptable_secret() -> str:
    """A real ciphertext under the product's public key, with OAEP parameters no variant uses."""
    scheme = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA512()), algorithm=hashes.SHA512(), label=None)
    return base64.b64encode(public_key().encrypt(b"secret", scheme)).decode()


def users(count: int) -> list[dict[str, object]]:
    return [user(f"user{index:05d}") for index in range(count)]


BAD_BODIES: dict[str, tuple[str, Body]] = {
    "empty body": ("tenantSync", b""),
    "not JSON": ("tenantSync", b"tenantId=1"),
    "JSON array": ("authSync", b"[]"),
    "invalid UTF-8": ("tenantSync", b'{"tenantId":"\xff\xfe"}'),
    "NaN": ("authSync", b'{"tenantId":"t","flag":NaN}'),
    "huge integer": ("authSync", b'{"tenantId":"t","flag":' + b"9" * 5000 + b"}"),
    "missing tenantId": ("tenantSync", {k: v for k, v in tenant_sync(TENANT_A, 1).items() if k != "tenantId"}),
    "missing instanceId": ("allOrgSync", {k: v for k, v in all_org_sync(TENANT_A, []).items() if k != "instanceId"}),
    "missing timeStamp": ("tenantSync", {k: v for k, v in tenant_sync(TENANT_A, 1).items() if k != "timeStamp"}),
    "missing testFlag": ("tenantSync", {k: v for k, v in tenant_sync(TENANT_A, 1).items() if k != "testFlag"}),
    "missing domainName": ("tenantSync", {**tenant_sync(TENANT_A, 1), "domainName": None}),
    "domainName over 255 characters in punycode": (
        "tenantSync",
        tenant_sync(TENANT_A, 1, domain="https://" + ".".join(["中文域名测试标签" * 2] * 4) + ".com/" + "a" * 48),
    ),
    "empty tenantCode": ("tenantSync", {**tenant_sync(TENANT_A, 2), "tenantCode": ""}),
    "missing clientId": ("applicationSync", {**application_sync(TENANT_A, 1), "clientId": None}),
    "missing appId": ("authSync", {**auth_sync(TENANT_A, 1, users(1)), "appId": None}),
    "missing currentSyncTime": ("authSync", {**auth_sync(TENANT_A, 1, users(1)), "currentSyncTime": None}),
    "missing userList": ("authSync", {**auth_sync(TENANT_A, 1, []), "userList": None}),
    "user without name": ("authSync", auth_sync(TENANT_A, 1, [{**user("u1"), "name": ""}])),
    "user without role": ("authSync", auth_sync(TENANT_A, 2, [{**user("u1"), "role": None}])),
    "user without orgCode": (
        "authSync",
        auth_sync(TENANT_A, 1, [{k: v for k, v in user("u1").items() if k != "orgCode"}]),
    ),
    "missing orgName": ("singleOrgSync", single_org_sync(TENANT_A, 1, "1", "")),
    "department without orgCode": ("allOrgSync", all_org_sync(TENANT_A, [{"orgName": "Sales"}])),
    "flag not an enum": ("tenantSync", {**tenant_sync(TENANT_A, 1), "flag": 5}),
    "flag 3 on tenantSync": ("tenantSync", {**tenant_sync(TENANT_A, 1), "flag": 3}),
    "flag as boolean": ("authSync", {**auth_sync(TENANT_A, 1, users(1)), "flag": True}),
    "flag as fraction": ("singleOrgSync", {**single_org_sync(TENANT_A, 1, "1", "A"), "flag": 1.0}),
    "testFlag 2": ("tenantSync", {**tenant_sync(TENANT_A, 1), "testFlag": 2}),
    "testFlag not numeric": ("tenantSync", {**tenant_sync(TENANT_A, 1), "testFlag": "yes"}),
    "role not admin or user": ("authSync", auth_sync(TENANT_A, 1, [user("u1", role="owner")])),
    "enable not a string": ("authSync", auth_sync(TENANT_A, 1, [{**user("u1"), "enable": True}])),
    "enable not true or false": ("authSync", auth_sync(TENANT_A, 1, [user("u1", enable="yes")])),
    "employeeType not 1 to 4": ("authSync", auth_sync(TENANT_A, 1, [user("u1", employeeType="9")])),
    "extension not an object": ("authSync", auth_sync(TENANT_A, 1, [user("u1", extension=[1, 2])])),
    "tenantId too long": ("tenantSync", tenant_sync("t" * 65, 1)),
    "userName too long": ("authSync", auth_sync(TENANT_A, 1, [user("u" * 65)])),
    "mobile too long": ("authSync", auth_sync(TENANT_A, 1, [user("u1", mobile="1" * 33)])),
    "orgName too long": ("singleOrgSync", single_org_sync(TENANT_A, 1, "1", "n" * 129)),
    "name too long": ("tenantSync", {**tenant_sync(TENANT_A, 1), "name": "n" * 256}),
    "timeStamp not a time": ("tenantSync", {**tenant_sync(TENANT_A, 1), "timeStamp": "2022-04-13"}),
    "NUL in a name": ("authSync", auth_sync(TENANT_A, 1, [user("u1", position="a\x00b")])),
    "lone surrogate": (
        "authSync",
        b'{"instanceId":"i","tenantId":"t","appId":"a","flag":1,"testFlag":0,'
        b'"timeStamp":"20220413093539534","currentSyncTime":"20220413093539534",'
        b'"userList":[{"userName":"\\ud800","name":"n","orgCode":"1","role":"user",'
        b'"enable":"true"}]}',
    ),
    "userList string holds no list": ("authSync", {**auth_sync(TENANT_A, 1, []), "userList": "{userName:1}"}),
    "orgInfoList unreadable string": ("allOrgSync", {**all_org_sync(TENANT_A, []), "orgInfoList": "[{orgCode:}]"}),
    "more users than allowed": ("authSync", auth_sync(TENANT_A, 1, users(51))),
    "domain over http": ("tenantSync", tenant_sync(TENANT_A, 1, domain="http://example.tenantaccount.com")),
    "domain is an IP": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://10.0.0.8")),
    "domain with user info": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://a@example.tenantaccount.com")),
    "domain on another port": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://example.tenantaccount.com:8443")),
    "domain is localhost": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://localhost")),
    "domain is internal": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://idp.corp.internal")),
    "domain with a query": ("tenantSync", tenant_sync(TENANT_A, 1, domain="https://example.tenantaccount.com/?x=1")),
    "clientSecret not Base64": ("applicationSync", {**application_sync(TENANT_A, 1), "clientSecret": "not base64!"}),
    "clientSecret under other OAEP": (
        "applicationSync",
        {**application_sync(TENANT_A, 1), "clientSecret": undecryptable_secret()},
    ),
    "clientSecret random block": (
        "applicationSync",
        {**application_sync(TENANT_A, 1), "clientSecret": base64.b64encode(secrets.token_bytes(384)).decode()},
    ),
}


def good_call(index: int) -> tuple[str, dict[str, object]]:
    """A call that is accepted and stores something: proves a nonce was still usable."""
    return "singleOrgSync", single_org_sync(TENANT_A, 1, f"proof-{index}", "Proof")


async def assert_refused(
    app: Starlette,
    client: httpx.AsyncClient,
    behaviours: dict[str, Behaviour],
    attempt: Callable[[str], Any],
    *,
    expected: str,
    index: int,
    status: int = 200,
    nonce_reusable: bool = True,
) -> None:
    nonce = new_nonce()
    await settle_events(app)
    adapter_calls = sum(behaviour.calls.total() for behaviour in behaviours.values())
    before = await directory_counts(app)
    log_before = len(await call_log(app))
    # When the bad call is sent
    response: httpx.Response = await attempt(nonce)
    # Then it is refused with the documented code and changes nothing
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert response.json()["resultCode"] == expected, response.json()
    assert "Traceback" not in response.text
    assert await directory_counts(app) == before
    await settle_events(app)
    assert sum(behaviour.calls.total() for behaviour in behaviours.values()) == adapter_calls
    entries = (await call_log(app))[log_before:]
    assert [(entry.kind, entry.result_code, entry.http_status) for entry in entries] == [("kit", expected, status)]
    assert entries[0].reason
    if nonce_reusable:
        sync, fields = good_call(index)
        good = await send(client, sync, fields, nonce=nonce)
        assert good.json()["resultCode"] == "000000", good.json()


async def test_bad_bodies_are_bad_parameters_and_change_nothing(
    app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    for index, (case, (sync, body)) in enumerate(BAD_BODIES.items()):
        # Given a correctly signed call whose body breaks a rule
        try:
            await assert_refused(
                app,
                client,
                behaviours,
                sender(client, sync, body),
                expected="000002",
                index=index,
            )
        except AssertionError as exc:
            raise AssertionError(f"case {case!r}: {exc}") from exc


async def test_bad_signatures_are_refused_and_change_nothing(
    app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    body = marketplace_body(tenant_sync(TENANT_A, 1))
    cases: dict[str, tuple[str, Callable[[str], Any]]] = {
        "missing x-sign": ("000001", lambda n: send(client, "tenantSync", body, nonce=n, drop="x-sign")),
        "missing x-timestamp": ("000002", lambda n: send(client, "tenantSync", body, nonce=n, drop="x-timestamp")),
        "missing x-nonce": ("000002", lambda n: send(client, "tenantSync", body, nonce=n, drop="x-nonce")),
        "timestamp 61 s old": ("000002", lambda n: send(client, "tenantSync", body, nonce=n, ts=now_ms() - 61_000)),
        "timestamp 61 s ahead": ("000002", lambda n: send(client, "tenantSync", body, nonce=n, ts=now_ms() + 61_000)),
        "wrong key": ("000001", lambda n: send(client, "tenantSync", body, nonce=n, key="not-the-key-0000000")),
        "wrong key on a body that is not JSON": (
            "000001",
            lambda n: send(client, "tenantSync", b"tenantId=1", nonce=n, key="not-the-key-0000000"),
        ),
        "another product's key": ("000001", lambda n: send(client, "tenantSync", body, nonce=n, key=BETA_KEY)),
        "basic scheme": ("000001", lambda n: send_basic_signed(client, body, nonce=n)),
        "tampered body": (
            "000001",
            lambda n: send(client, "tenantSync", body.replace(b"huawei", b"huawej"), nonce=n, sign_over=body),
        ),
        "signed for another sync's body": (
            "000001",
            lambda n: send(client, "tenantSync", body, nonce=n, sign_over=marketplace_body(tenant_sync(TENANT_A, 0))),
        ),
    }
    for index, (case, (expected, attempt)) in enumerate(cases.items()):
        try:
            await assert_refused(app, client, behaviours, attempt, expected=expected, index=index)
        except AssertionError as exc:
            raise AssertionError(f"case {case!r}: {exc}") from exc


async def test_a_replayed_nonce_is_refused(
    app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    # Given a call that was accepted
    nonce = new_nonce()
    first = await send(client, "tenantSync", tenant_sync(TENANT_A, 1), nonce=nonce)
    assert first.json()["resultCode"] == "000000"
    # When another call arrives with the same nonce, then it is refused and changes nothing
    await assert_refused(
        app,
        client,
        behaviours,
        lambda _: send(client, "tenantSync", tenant_sync(TENANT_A, 2, name="Other"), nonce=nonce),
        expected="000001",
        index=0,
        nonce_reusable=False,
    )


async def test_too_many_users_at_the_default_limit(app: Starlette, marketplace: Marketplace) -> None:
    # beta keeps the default max_users_per_sync of 5000
    before = await directory_counts(app)
    refused = await marketplace.kit("beta", "authSync", auth_sync(TENANT_A, 1, users(5001)))
    assert refused.json()["resultCode"] == "000002"
    assert await directory_counts(app) == before
    accepted = await marketplace.kit("beta", "authSync", auth_sync(TENANT_A, 1, users(5000)))
    assert accepted.json()["resultCode"] == "000000"
    assert (await directory_counts(app))["directory_members"] == 5000


async def test_the_allow_list_limits_tenant_domains(app: Starlette, marketplace: Marketplace) -> None:
    # beta accepts only *.tenantaccount.com and idp.beta-buyer.example
    for domain, code in [
        ("https://evil.example.com", "000002"),
        ("https://tenantaccount.com", "000002"),
        ("https://x.tenantaccount.com.evil.example", "000002"),
        ("https://idp.beta-buyer.example", "000000"),
        ("https://a.b.tenantaccount.com", "000000"),
    ]:
        response = await marketplace.kit("beta", "tenantSync", tenant_sync(TENANT_A, 1, domain=domain))
        assert response.json()["resultCode"] == code, domain
    # alpha has no allow-list: any public https host will do
    response = await marketplace.kit("alpha", "tenantSync", tenant_sync(TENANT_A, 1, domain="https://evil.example.com"))
    assert response.json()["resultCode"] == "000000"


async def test_body_over_the_cap_is_413_and_changes_nothing(
    app: Starlette, client: httpx.AsyncClient, behaviours: dict[str, Behaviour]
) -> None:
    limit = app.state.settings.products["alpha"].kit_max_body_bytes
    big = marketplace_body({**tenant_sync(TENANT_A, 1), "padding": "x" * limit})
    await assert_refused(
        app,
        client,
        behaviours,
        lambda n: send(client, "tenantSync", big, nonce=n),
        expected="000002",
        status=413,
        index=0,
    )
    # A declared length over the cap is refused before the body is read.
    await assert_refused(
        app,
        client,
        behaviours,
        lambda n: client.post(
            "/koogallery/alpha/produceAPI/v2/tenantSync",
            content=b"{}",
            headers={"content-length": str(limit + 1), "x-nonce": n},
        ),
        expected="000002",
        status=413,
        index=1,
    )


async def test_unknown_product_and_unknown_sync_look_the_same(app: Starlette, client: httpx.AsyncClient) -> None:
    body = marketplace_body(tenant_sync(TENANT_A, 1))
    unknown_product = await send(client, "tenantSync", body, slug="nobody", nonce=new_nonce())
    unknown_sync = await send(client, "deleteEverything", body, nonce=new_nonce())
    v1_path = await client.post("/koogallery/alpha/produceAPI/tenantSync", content=body)
    for response in (unknown_product, unknown_sync):
        assert response.status_code == 404
        assert response.json() == {"resultCode": "000002", "resultMsg": "unknown product"}
    assert v1_path.status_code == 404
    assert set((await directory_counts(app)).values()) == {0}
    assert await call_log(app) == []


async def test_client_secrets_never_reach_the_call_log(app: Starlette, marketplace: Marketplace) -> None:
    fields = application_sync(TENANT_A, 1)
    personal = auth_sync(TENANT_A, 1, [user("u1", mobile="13800000000", email="u1@example.com")])
    as_string = {**personal, "userList": json.dumps(personal["userList"])}
    for sync, body in (("applicationSync", fields), ("authSync", personal), ("authSync", as_string)):
        assert (await marketplace.kit("alpha", sync, body)).json()["resultCode"] == "000000"
    logged = " ".join(entry.body or "" for entry in await call_log(app))
    assert str(fields["clientSecret"]) not in logged and "sEcReT" not in logged
    assert "13800000000" not in logged and "u1@example.com" not in logged
    assert "[redacted]" in logged


# Properties ---------------------------------------------------------------------------------

SYNCS = ["tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync"]
FIELDS = [
    "instanceId",
    "tenantId",
    "testFlag",
    "timeStamp",
    "flag",
    "orderId",
    "tenantCode",
    "name",
    "domainName",
    "appId",
    "clientId",
    "clientSecret",
    "userList",
    "currentSyncTime",
    "orgCode",
    "orgName",
    "OrgName",
    "parentCode",
    "orgInfoList",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "",
            "0",
            "1",
            "2",
            "3",
            TENANT_A,
            "20220413093539534",
            "https://a.tenantaccount.com",
            "admin",
            "user",
            "true",
            "false",
            '[{orgCode:"1", orgName:"A"}]',
            "[]",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["userName", "name", "orgCode", "orgName", "role", "enable", "extension", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)
headers_strategy = st.dictionaries(
    st.sampled_from(["x-sign", "x-timestamp", "x-nonce", "content-type"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sync=st.sampled_from([*SYNCS, "x"]), body=st.binary(max_size=300), headers=headers_strategy)
async def test_arbitrary_unsigned_requests_never_fail_or_store(
    sync: str, body: bytes, headers: dict[str, str], app: Starlette, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"/koogallery/alpha/produceAPI/v2/{sync}", content=body, headers=headers)
    assert response.status_code in (200, 404)
    assert response.json()["resultCode"] in {"000001", "000002"}
    assert "Traceback" not in response.text
    assert set((await directory_counts(app)).values()) == {0}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sync=st.sampled_from(SYNCS), fields=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=12))
async def test_arbitrary_signed_bodies_never_fail_or_write_partly(
    sync: str, fields: dict[str, object], app: Starlette, marketplace: Marketplace
) -> None:
    before = await directory_counts(app)
    response = await marketplace.kit("alpha", sync, fields)
    assert response.status_code == 200
    assert "Traceback" not in response.text
    code = response.json()["resultCode"]
    assert code in {"000000", "000002"}, response.json()
    if code != "000000":
        assert await directory_counts(app) == before
