"""The HTTP adapter against a real backend app reached through an ASGI transport."""

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.adapters.contract import (
    CONTRACT_VERSION,
    Adapter,
    AdapterConfigError,
    AdapterContext,
    AdapterError,
    AppInfo,
    Buyer,
    ChangeCheckRequest,
    ChangeDecision,
    InstanceRef,
    Order,
    ProvisionRequest,
    Refusal,
    Refused,
    RenewRequest,
    RetryLater,
    StatusRequest,
    UpgradeRequest,
)
from gateway.adapters.http import BackendContractError, HttpAdapter, sign_request, verify_backend_signature
from gateway.app import adapter_context
from gateway.settings import Environment, Settings

pytestmark = pytest.mark.anyio

SECRET = "backend-shared-secret-0123456789"
CONTEXT = AdapterContext(
    product="notes",
    product_name="Notes",
    public_url="https://marketgate.example.com",
    database_url="sqlite:///unused.db",
    data_dir="/tmp/unused",
)
INSTANCE = InstanceRef(product="notes", instance_id="inst-1", is_test=False)
INSTANCE_WIRE = {"product": "notes", "instanceId": "inst-1", "isTest": False}
APP_INFO_WIRE = {
    "frontEndUrl": "https://notes.example.com/inst-1",
    "adminUrl": "https://notes.example.com/inst-1/admin",
    "userName": "admin",
    "password": "initial-Pa55",
    "memo": "welcome",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Call:
    operation: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Backend:
    """A backend as its authors would write it: verifies every request, then answers."""

    secret: str = SECRET
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, Response] = field(default_factory=dict)
    delay_s: float = 0.0

    def default_answer(self, operation: str) -> Response:
        if operation in ("provision", "describe"):
            return JSONResponse({"appInfo": APP_INFO_WIRE})
        if operation == "check_change":
            return JSONResponse({"accepted": True, "reason": ""})
        return Response(status_code=204)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        operation = request.path_params["operation"]
        valid = verify_backend_signature(
            self.secret,
            timestamp=headers.get("x-marketgate-timestamp", ""),
            nonce=headers.get("x-marketgate-nonce", ""),
            operation=operation,
            product=CONTEXT.product,
            body=body,
            signature=headers.get("x-marketgate-signature", ""),
            now_ms=time.time_ns() // 1_000_000,
        )
        if not valid:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.calls.append(Call(operation, dict(headers), body))
        await asyncio.sleep(self.delay_s)
        return self.answers.get(operation) or self.default_answer(operation)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/marketgate/v1/{operation}", self.endpoint, methods=["POST"])])


@pytest.fixture
def backend() -> Backend:
    return Backend()


def settings(**changes: Any) -> dict[str, Any]:
    return {"url": "http://backend.test/", "secret": SECRET} | changes


@pytest.fixture
async def adapter(backend: Backend) -> AsyncIterator[HttpAdapter]:
    adapter = HttpAdapter(settings(), CONTEXT, transport=httpx.ASGITransport(app=backend.app()))
    yield adapter
    await adapter.aclose()


async def adapter_with(transport: httpx.AsyncBaseTransport, **changes: Any) -> HttpAdapter:
    return HttpAdapter(settings(**changes), CONTEXT, transport=transport)


ORDER = Order(
    order_id="CS0001",
    order_line_id="CS0001-1",
    order_type="NEW",
    charging_mode="PERIOD",
    period_type="month",
    period_number=1,
    expire_time=datetime(2030, 1, 31, tzinfo=UTC),
    product_id="p-1",
    sku_code="basic",
    product_name="Notes Basic",
    linear_value=5,
    buyer=Buyer(customer_id="c-1", email="buyer@example.com"),
    extend_params={"emailDomainName": "example.com"},
)
ORDER_WIRE = {
    "orderId": "CS0001",
    "orderLineId": "CS0001-1",
    "orderType": "NEW",
    "chargingMode": "PERIOD",
    "periodType": "month",
    "periodNumber": 1,
    "expireTime": "2030-01-31T00:00:00Z",
    "productId": "p-1",
    "skuCode": "basic",
    "productName": "Notes Basic",
    "linearValue": 5,
    "buyer": {
        "customerId": "c-1",
        "customerName": None,
        "customerRealName": None,
        "customerType": None,
        "userId": None,
        "userName": None,
        "mobilePhone": None,
        "email": "buyer@example.com",
    },
    "extendParams": {"emailDomainName": "example.com"},
}


async def test_every_operation_reaches_the_backend_signed(adapter: HttpAdapter, backend: Backend) -> None:
    app_info = await adapter.provision(ProvisionRequest(instance=INSTANCE, order=ORDER))
    await adapter.renew(RenewRequest(INSTANCE, "trial_to_formal", "CS0002", datetime(2031, 1, 1, tzinfo=UTC), "p-1"))
    await adapter.set_status(StatusRequest(instance=INSTANCE, frozen=True))
    await adapter.upgrade(UpgradeRequest(instance=INSTANCE, order=None))
    decision = await adapter.check_change(ChangeCheckRequest(INSTANCE, "p-1", "pro", "Notes Pro", 10))
    described = await adapter.describe(INSTANCE)
    await adapter.release(INSTANCE)

    expected_app_info = AppInfo(
        front_end_url=APP_INFO_WIRE["frontEndUrl"],
        admin_url=APP_INFO_WIRE["adminUrl"],
        user_name="admin",
        password="initial-Pa55",
        memo="welcome",
    )
    assert app_info == expected_app_info
    assert described == expected_app_info
    assert decision == ChangeDecision(accepted=True, reason="")
    assert [(call.operation, call.json) for call in backend.calls] == [
        ("provision", {"instance": INSTANCE_WIRE, "order": ORDER_WIRE}),
        (
            "renew",
            {
                "instance": INSTANCE_WIRE,
                "scene": "trial_to_formal",
                "orderId": "CS0002",
                "expireTime": "2031-01-01T00:00:00Z",
                "productId": "p-1",
            },
        ),
        ("set_status", {"instance": INSTANCE_WIRE, "frozen": True}),
        ("upgrade", {"instance": INSTANCE_WIRE, "order": None}),
        (
            "check_change",
            {
                "instance": INSTANCE_WIRE,
                "productId": "p-1",
                "skuCode": "pro",
                "productName": "Notes Pro",
                "linearValue": 10,
            },
        ),
        ("describe", {"instance": INSTANCE_WIRE}),
        ("release", {"instance": INSTANCE_WIRE}),
    ]
    for call in backend.calls:
        assert call.headers["content-type"] == "application/json"
        assert call.headers["x-marketgate-product"] == "notes"
        expected_event_id = hashlib.sha256(call.operation.encode() + b"\n" + call.body).hexdigest()
        assert call.headers["x-marketgate-event-id"] == expected_event_id


async def test_event_id_is_stable_across_deliveries_and_nonces_are_not(adapter: HttpAdapter, backend: Backend) -> None:
    request = ProvisionRequest(instance=INSTANCE, order=ORDER)
    await adapter.provision(request)
    await adapter.provision(request)

    first, second = backend.calls
    assert first.headers["x-marketgate-event-id"] == second.headers["x-marketgate-event-id"]
    assert first.headers["x-marketgate-nonce"] != second.headers["x-marketgate-nonce"]


async def test_naive_times_are_sent_as_utc(adapter: HttpAdapter, backend: Backend) -> None:
    await adapter.renew(RenewRequest(INSTANCE, "renew", "CS3", datetime(2031, 5, 6, 7, 8, 9), None))

    assert backend.calls[0].json["expireTime"] == "2031-05-06T07:08:09Z"


async def test_describe_may_answer_no_app_info(adapter: HttpAdapter, backend: Backend) -> None:
    backend.answers["describe"] = JSONResponse({"appInfo": None})

    assert await adapter.describe(INSTANCE) is None


async def test_409_refuses_the_purchase(adapter: HttpAdapter, backend: Backend) -> None:
    backend.answers["provision"] = JSONResponse({"refusal": "000106", "message": "sold out"}, status_code=409)

    with pytest.raises(Refused) as refused:
        await adapter.provision(ProvisionRequest(instance=INSTANCE, order=None))

    assert refused.value.refusal is Refusal.SOLD_OUT
    assert refused.value.message == "sold out"


async def test_409_with_an_unknown_refusal_is_a_contract_error(adapter: HttpAdapter, backend: Backend) -> None:
    backend.answers["provision"] = JSONResponse({"refusal": "999999", "message": "?"}, status_code=409)

    with pytest.raises(BackendContractError, match="malformed answer to provision: refusal"):
        await adapter.provision(ProvisionRequest(instance=INSTANCE, order=None))


async def test_409_outside_provision_is_a_contract_error(adapter: HttpAdapter, backend: Backend) -> None:
    backend.answers["renew"] = JSONResponse({"refusal": "000100"}, status_code=409)

    with pytest.raises(BackendContractError, match="backend answered 409 to renew"):
        await adapter.renew(RenewRequest(INSTANCE, "renew", "CS3", datetime(2031, 1, 1, tzinfo=UTC), None))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_mean_retry_later(adapter: HttpAdapter, backend: Backend, status: int) -> None:
    backend.answers["provision"] = JSONResponse({"error": "busy"}, status_code=status)

    with pytest.raises(RetryLater, match=f"backend answered {status} to provision"):
        await adapter.provision(ProvisionRequest(instance=INSTANCE, order=None))


@pytest.mark.parametrize(
    "failure",
    [
        lambda request: httpx.ReadTimeout("read timed out", request=request),
        lambda request: httpx.ConnectTimeout("connect timed out", request=request),
        lambda request: httpx.ConnectError("connection refused", request=request),
    ],
)
async def test_timeouts_and_connection_failures_mean_retry_later(
    failure: Callable[[httpx.Request], Exception],
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure(request)

    adapter = await adapter_with(httpx.MockTransport(fail))
    try:
        with pytest.raises(RetryLater, match=r"backend (timed out|unreachable) on set_status"):
            await adapter.set_status(StatusRequest(instance=INSTANCE, frozen=False))
    finally:
        await adapter.aclose()


async def test_a_backend_that_is_not_listening_is_unreachable_over_real_sockets() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = HttpAdapter(settings(url=f"http://127.0.0.1:{port}"), CONTEXT)
    try:
        with pytest.raises(RetryLater, match=r"backend unreachable on set_status: ConnectError"):
            await adapter.set_status(StatusRequest(instance=INSTANCE, frozen=False))
    finally:
        await adapter.aclose()


async def test_a_slow_backend_hits_the_whole_request_deadline(backend: Backend) -> None:
    backend.delay_s = 1.0
    adapter = await adapter_with(httpx.ASGITransport(app=backend.app()), timeout_s=0.05)
    try:
        with pytest.raises(RetryLater, match=r"backend timed out on describe after 0\.05s"):
            await adapter.describe(INSTANCE)
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    ("operation", "answer", "message"),
    [
        ("provision", JSONResponse({"error": "bad"}, status_code=400), "backend answered 400 to provision"),
        ("provision", Response(b"not json", media_type="application/json"), "malformed answer to provision"),
        ("provision", JSONResponse({"appInfo": {"userName": "x"}}), "appInfo.frontEndUrl: Field required"),
        ("provision", JSONResponse({"appInfo": None}), "appInfo is null"),
        ("describe", JSONResponse([1, 2]), "malformed answer to describe"),
        ("check_change", JSONResponse({"reason": "no"}), "malformed answer to check_change: accepted"),
        ("check_change", JSONResponse({"accepted": "yes"}), "malformed answer to check_change: accepted"),
        (
            "describe",
            Response(b'{"appInfo": null, "padding": "' + b"x" * (1024 * 1024) + b'"}', media_type="application/json"),
            "answer to describe is over 1048576 bytes",
        ),
        ("check_change", JSONResponse({"accepted": 1}), "malformed answer to check_change: accepted"),
        (
            "describe",
            Response(b"\x1f\x8bnot gzip", headers={"content-encoding": "gzip"}, media_type="application/json"),
            "answer to describe has a bad content encoding",
        ),
        ("check_change", Response(status_code=302, headers={"location": "/x"}), "backend answered 302"),
    ],
)
async def test_answers_outside_the_wire_format_are_contract_errors(
    adapter: HttpAdapter, backend: Backend, operation: str, answer: Response, message: str
) -> None:
    backend.answers[operation] = answer
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "provision": lambda: adapter.provision(ProvisionRequest(instance=INSTANCE, order=None)),
        "describe": lambda: adapter.describe(INSTANCE),
        "check_change": lambda: adapter.check_change(ChangeCheckRequest(INSTANCE, "p", "s", "n", None)),
    }

    with pytest.raises(BackendContractError, match=message) as error:
        await calls[operation]()

    assert error.value.code == "backend_contract"


async def test_a_backend_with_another_secret_refuses_every_call() -> None:
    other = Backend(secret="another-secret-of-the-backend-42")
    adapter = await adapter_with(httpx.ASGITransport(app=other.app()))
    try:
        with pytest.raises(BackendContractError, match="backend answered 401 to release"):
            await adapter.release(INSTANCE)
    finally:
        await adapter.aclose()
    assert other.calls == []


def test_signature_verification() -> None:
    body = b'{"instance":{"instanceId":"inst-1"}}'
    now_ms = 1_900_000_000_000
    timestamp = str(now_ms - 1_000)
    request: dict[str, Any] = {"operation": "describe", "product": "crm", "body": body}
    signature = sign_request(SECRET, timestamp=timestamp, nonce="ab12", **request)

    def verify(secret: str = SECRET, **changes: Any) -> bool:
        given: dict[str, Any] = {"timestamp": timestamp, "nonce": "ab12", "signature": signature, **request, **changes}
        return verify_backend_signature(secret, now_ms=now_ms, **given)

    def signed_at(moment: str) -> bool:
        return verify(timestamp=moment, signature=sign_request(SECRET, timestamp=moment, nonce="ab12", **request))

    assert verify()
    assert verify(signature=signature.upper())
    # tampered body, nonce, timestamp or secret
    assert not verify(body=body.replace(b"inst-1", b"inst-2"))
    assert not verify(nonce="ab13")
    assert not verify(timestamp=str(now_ms))
    assert not verify("x" * 32)
    # the same body for another operation (release carries describe's body) or another product
    assert not verify(operation="release")
    assert not verify(product="erp")
    # stale and future timestamps, correctly signed
    assert not signed_at(str(now_ms - 300_001))
    assert not signed_at(str(now_ms + 300_001))
    assert signed_at(str(now_ms - 300_000))
    # garbage headers: not digits, far too long to be a time (refused, not a crash), no nonce
    assert not verify(timestamp="12x")
    assert not verify(timestamp="9" * 5000)
    assert not verify(nonce="")
    assert not verify(signature="é" * 64)


async def test_the_secret_never_shows(backend: Backend) -> None:
    adapter = await adapter_with(httpx.ASGITransport(app=backend.app()))
    messages: list[str] = [repr(adapter), repr(adapter.settings), str(adapter.settings)]
    echoing = {
        "provision": JSONResponse({"refusal": "000100", "message": f"no room for {SECRET}"}, status_code=409),
        "describe": Response(f"secret is {SECRET}".encode(), media_type="application/json"),
        "check_change": JSONResponse({"accepted": False, "reason": SECRET}),
        "renew": JSONResponse({"error": SECRET}, status_code=400),
    }
    backend.answers.update(echoing)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: adapter.provision(ProvisionRequest(instance=INSTANCE, order=None)),
            lambda: adapter.describe(INSTANCE),
            lambda: adapter.renew(RenewRequest(INSTANCE, "renew", "CS3", datetime(2031, 1, 1, tzinfo=UTC), None)),
        ]
        for call in calls:
            with pytest.raises(AdapterError) as error:
                await call()
            messages += [str(error.value), repr(error.value)]
        messages.append((await adapter.check_change(ChangeCheckRequest(INSTANCE, "p", "s", "n", None))).reason)
    finally:
        await adapter.aclose()
    for bad in (settings(secret=SECRET[:10]), settings(url="ftp://backend.test"), settings(extra=SECRET)):
        with pytest.raises(AdapterConfigError) as config_error:
            HttpAdapter(bad, CONTEXT)
        messages.append(str(config_error.value))

    assert all(SECRET not in message and SECRET[:10] not in message for message in messages), messages


async def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch, backend: Backend) -> None:
    monkeypatch.setenv("NOTES_BACKEND_SECRET", SECRET)
    adapter = HttpAdapter(
        {"url": "http://backend.test", "secret_env": "NOTES_BACKEND_SECRET"},
        CONTEXT,
        transport=httpx.ASGITransport(app=backend.app()),
    )
    try:
        await adapter.release(INSTANCE)
    finally:
        await adapter.aclose()
    assert [call.operation for call in backend.calls] == ["release"]

    monkeypatch.delenv("NOTES_BACKEND_SECRET")
    with pytest.raises(AdapterConfigError, match="'NOTES_BACKEND_SECRET' is not set"):
        HttpAdapter({"url": "http://backend.test", "secret_env": "NOTES_BACKEND_SECRET"}, CONTEXT)


async def test_secret_from_a_file(tmp_path: Path, backend: Backend) -> None:
    path = tmp_path / "backend-secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    adapter = HttpAdapter(
        {"url": "http://backend.test", "secret_file": str(path)},
        CONTEXT,
        transport=httpx.ASGITransport(app=backend.app()),
    )
    try:
        await adapter.release(INSTANCE)  # the backend verifies with SECRET: the newline is not part of it
    finally:
        await adapter.aclose()
    assert [call.operation for call in backend.calls] == ["release"]
    with pytest.raises(AdapterConfigError, match="cannot be read") as error:
        HttpAdapter({"url": "http://backend.test", "secret_file": str(tmp_path / "missing")}, CONTEXT)
    assert SECRET not in str(error.value)


async def test_a_relative_secret_file_is_read_beside_the_products_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: Backend
) -> None:
    """As MarketGate's own `<field>_file` keys are, whatever the working folder."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "backend-secret").write_text(SECRET + "\n", encoding="utf-8")
    products = tmp_path / "config" / "products.toml"
    products.write_text(
        '[products.notes]\nname = "Notes"\nadapter = "http"\naccess_key = "the-access-key-of-notes-0001"\n'
        '[products.notes.adapter_settings]\nurl = "http://backend.test"\nsecret_file = "backend-secret"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)  # where a path relative to the working folder would not be found
    settings = Settings(environment=Environment.DEVELOPMENT, config=products)
    context = adapter_context(settings)("notes", settings.products["notes"])
    assert Path(context.config_dir) == tmp_path / "config"
    adapter = HttpAdapter(
        dict(settings.products["notes"].adapter_settings), context, transport=httpx.ASGITransport(app=backend.app())
    )
    try:
        await adapter.release(INSTANCE)  # the backend verifies with SECRET
    finally:
        await adapter.aclose()
    assert [call.operation for call in backend.calls] == ["release"]
    missing = replace(context, config_dir=str(tmp_path / "elsewhere"))
    with pytest.raises(AdapterConfigError, match="cannot be read") as error:
        HttpAdapter(dict(settings.products["notes"].adapter_settings), missing)
    assert str(tmp_path / "elsewhere" / "backend-secret") in str(error.value)  # where it looked


async def test_the_marketplaces_app_info_limits_are_not_the_wire_formats(
    adapter: HttpAdapter, backend: Backend
) -> None:
    """A frontEndUrl over 512 characters passes through, for provisioning to refuse for good
    (`app_info_problem`), as with every adapter: as a contract error it would be retried."""
    long_url = "https://notes.example.com/" + "x" * 600
    backend.answers["provision"] = JSONResponse({"appInfo": {"frontEndUrl": long_url}})
    app_info = await adapter.provision(ProvisionRequest(instance=INSTANCE, order=None))
    assert app_info.front_end_url == long_url


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"url": "http://backend.test"}, "exactly one of secret, secret_env and secret_file"),
        (settings(secret_env="X"), "exactly one of secret, secret_env and secret_file"),
        (settings(secret_file="/x"), "exactly one of secret, secret_env and secret_file"),
        (settings(secret="too-short"), "at least 16 characters"),
        (settings(url="backend.test"), "url: Value error, must be an http"),
        (settings(url="https://user:pw@backend.test"), "must not carry credentials"),
        (settings(url="https://backend.test/?a=1"), "must not have a query"),
        (settings(timeout_s=0), "timeout_s"),
        (settings(handles_test_calls="sometimes"), "handles_test_calls"),
        (settings(retries=3), "retries: Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(AdapterConfigError, match=message):
        HttpAdapter(bad, CONTEXT)


async def test_factory_signature_and_contract_attributes() -> None:
    plain = HttpAdapter(settings(), CONTEXT)
    debug = HttpAdapter(settings(handles_test_calls=True, timeout_s=1), CONTEXT)
    try:
        assert isinstance(plain, Adapter)
        assert HttpAdapter.contract_version == CONTRACT_VERSION == 4
        assert (plain.handles_test_calls, debug.handles_test_calls) == (False, True)
        assert plain.settings.url == "http://backend.test"
    finally:
        await plain.aclose()
        await debug.aclose()
