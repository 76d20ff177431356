"""Bad input and abuse: each gives a page for a person with an error code, a log line, and no
session (no cookie, nothing new in the store, the product never asked to log anyone in)."""

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.testing import capture_logs

from gateway.adapters.contract import RetryLater
from gateway.simulator.identity import TOKEN_PATH, IdentityDirectory
from gateway.store import Store
from graphql_api.principals import SESSION_COOKIE
from tests.conftest import Backend, Marketplace
from tests.fakes import Behaviour, RecordingAdapter
from tests.kit.helpers import auth_sync, tenant_sync, user
from tests.sso.conftest import AppFactory
from tests.sso.helpers import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    IDP,
    MG,
    OTHER_TENANT,
    TENANT,
    MovableClock,
    bind_tenant,
    browser,
    callback_from_button,
    callback_from_workbench,
    created,
    refused_event,
    sign_in_at_identity,
    store_keys,
)

pytestmark = pytest.mark.anyio


class Refusals:
    """Snapshots the store, captures the logs, and checks a refusal left nothing behind."""

    def __init__(self, store: Store, backend: Backend, behaviours: dict[str, Behaviour]) -> None:
        self.store = store
        self.backend = backend
        self.behaviours = behaviours
        self.logs: list[MutableMapping[str, Any]] = []
        self.before: set[str] = set()

    @contextmanager
    def capturing(self) -> Iterator[None]:
        with capture_logs() as logs:
            self.logs = logs
            yield

    async def snapshot(self) -> None:
        self.before = await store_keys(self.store, self.backend)
        self.logs.clear()

    async def check(self, response: httpx.Response, *, code: str, status: int) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert f'<code id="error-code">{code}</code>' in response.text
        assert "Traceback" not in response.text and CLIENT_SECRET not in response.text
        assert response.headers["cache-control"] == "no-store"
        assert not any(value.startswith(SESSION_COOKIE + "=") for value in response.headers.get_list("set-cookie"))
        assert refused_event(self.logs, code), self.logs
        assert created(self.before, await store_keys(self.store, self.backend)) == set()
        assert [login for behaviour in self.behaviours.values() for login in behaviour.logins] == []


@pytest.fixture
async def refusals(store: Store, backend: Backend, behaviours: dict[str, Behaviour]) -> AsyncIterator[Refusals]:
    watcher = Refusals(store, backend, behaviours)
    with watcher.capturing():
        yield watcher


@pytest.fixture
def signed_in(web: httpx.AsyncClient, directory: IdentityDirectory) -> Callable[[str], None]:
    return lambda user_name: sign_in_at_identity(web, directory, user_name)


# Who and where -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["login", "callback?code=abc&tenant=x", "logout", "signed-out"])
async def test_unknown_product(web: httpx.AsyncClient, refusals: Refusals, path: str) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/nope/{path}")
    await refusals.check(response, code="sso_unknown_product", status=404)


@pytest.mark.usefixtures("bound")
async def test_unknown_tenant_at_login_and_at_callback(web: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.snapshot()
    at_login = await web.get(f"{MG}/sso/alpha/login", params={"tenant": "not-a-tenant"})
    await refusals.check(at_login, code="sso_unknown_tenant", status=404)
    at_callback = await web.get(f"{MG}/sso/alpha/callback", params={"code": "abc", "tenant": "not-a-tenant"})
    await refusals.check(at_callback, code="sso_unknown_tenant", status=404)


@pytest.mark.usefixtures("bound")
async def test_unbound_tenant(web: httpx.AsyncClient, refusals: Refusals, marketplace: Marketplace) -> None:
    await marketplace.kit("alpha", "tenantSync", tenant_sync(TENANT, 0))
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/login", params={"tenant": TENANT})
    await refusals.check(response, code="sso_unknown_tenant", status=404)


async def test_tenant_without_app_credentials(
    web: httpx.AsyncClient, refusals: Refusals, marketplace: Marketplace
) -> None:
    await marketplace.kit("alpha", "tenantSync", tenant_sync(OTHER_TENANT, 1, domain=IDP))
    await refusals.snapshot()
    at_login = await web.get(f"{MG}/sso/alpha/login", params={"tenant": OTHER_TENANT})
    await refusals.check(at_login, code="sso_no_app_credentials", status=503)
    at_callback = await web.get(f"{MG}/sso/alpha/callback", params={"code": "abc", "tenant": OTHER_TENANT})
    await refusals.check(at_callback, code="sso_no_app_credentials", status=503)


async def test_unified_login_without_any_app_id(web: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/login")
    await refusals.check(response, code="sso_no_app_id", status=503)


# The member ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("bound")
@pytest.mark.parametrize(
    ("user_name", "code"),
    [("carol", "sso_member_not_authorized"), ("dave", "sso_member_disabled")],
)
async def test_member_not_allowed(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], user_name: str, code: str
) -> None:
    signed_in(user_name)
    location = await callback_from_button(web)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code=code, status=403)


@pytest.mark.usefixtures("bound")
async def test_revoked_member(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], marketplace: Marketplace
) -> None:
    await marketplace.kit("alpha", "authSync", auth_sync(TENANT, 3, [user("bob")]))
    signed_in("bob")
    location = await callback_from_workbench(web)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_member_revoked", status=403)


# Codes ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("bound")
async def test_invalid_code(web: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/callback", params={"code": "not-a-code", "tenant": TENANT})
    await refusals.check(response, code="sso_invalid_code", status=400)


@pytest.mark.usefixtures("bound")
async def test_expired_code(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], identity_clock: MovableClock
) -> None:
    signed_in("alice")
    location = await callback_from_workbench(web)
    identity_clock.advance(5 * 60 + 1)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_invalid_code", status=400)


@pytest.mark.usefixtures("bound")
async def test_reused_code(web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None]) -> None:
    signed_in("alice")
    location = await callback_from_workbench(web)
    assert (await web.get(location)).status_code == 303
    web.cookies.delete(SESSION_COOKIE)
    refusals.behaviours["alpha"].logins.clear()
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_invalid_code", status=400)


@pytest.mark.usefixtures("bound")
@pytest.mark.parametrize("params", [{"tenant": TENANT}, {"code": "abc"}, {"code": "a b", "tenant": TENANT}, {}])
async def test_malformed_callback(web: httpx.AsyncClient, refusals: Refusals, params: dict[str, str]) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/callback", params=params)
    await refusals.check(response, code="sso_bad_request", status=400)


@pytest.mark.usefixtures("bound")
async def test_identity_domain_answered_an_error(web: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/callback", params={"error": "access_denied", "tenant": TENANT})
    await refusals.check(response, code="sso_identity_denied", status=400)


# State ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("bound")
async def test_replayed_state(web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None]) -> None:
    signed_in("alice")
    location = await callback_from_button(web)
    assert (await web.get(location)).status_code == 303
    web.cookies.delete(SESSION_COOKIE)
    refusals.behaviours["alpha"].logins.clear()
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_state_invalid", status=400)


@pytest.mark.usefixtures("bound")
async def test_unknown_state(web: httpx.AsyncClient, refusals: Refusals) -> None:
    await refusals.snapshot()
    params = {"code": "abc", "tenant": TENANT, "state": "0123456789abcdef"}
    response = await web.get(f"{MG}/sso/alpha/callback", params=params)
    await refusals.check(response, code="sso_state_invalid", status=400)


@pytest.mark.usefixtures("bound")
async def test_state_from_another_browser(
    app: Starlette,
    identity_app: Starlette,
    web: httpx.AsyncClient,
    refusals: Refusals,
    signed_in: Callable[[str], None],
) -> None:
    # an attacker starts a login and sends the victim the callback link
    signed_in("alice")
    location = await callback_from_button(web)
    await refusals.snapshot()
    async with browser(app, identity_app) as victim:
        response = await victim.get(location)
    await refusals.check(response, code="sso_state_mismatch", status=400)


@pytest.mark.usefixtures("bound")
async def test_state_for_another_tenant(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], marketplace: Marketplace
) -> None:
    signed_in("alice")
    location = await callback_from_button(web)
    await refusals.snapshot()
    response = await web.get(location.replace(f"tenant={TENANT}", f"tenant={OTHER_TENANT}"))
    await refusals.check(response, code="sso_state_mismatch", status=400)


# The identity domain misbehaving -------------------------------------------------------------


@pytest.mark.usefixtures("bound")
@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ({"token_status": 500}, "sso_identity_unavailable", 502),
        ({"token_delay_s": 1.5}, "sso_identity_timeout", 504),
        ({"userinfo_status": 503}, "sso_userinfo_invalid", 502),
        ({"userinfo_as": (OTHER_TENANT, "erin")}, "sso_tenant_mismatch", 403),
    ],
    ids=["token-down", "token-slow", "userinfo-down", "userinfo-other-tenant"],
)
async def test_identity_domain_faults(
    web: httpx.AsyncClient,
    refusals: Refusals,
    signed_in: Callable[[str], None],
    directory: IdentityDirectory,
    fault: dict[str, Any],
    code: str,
    status: int,
) -> None:
    signed_in("alice")
    location = await callback_from_workbench(web)
    for name, value in fault.items():
        setattr(directory.faults, name, value)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code=code, status=status)


class _ChangeTokenAnswers:
    """Middleware for the identity domain: its successful token answers, with some fields changed."""

    def __init__(self, app: ASGIApp, *, changes: Mapping[str, Any]) -> None:
        self.app = app
        self.changes = changes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != TOKEN_PATH:
            await self.app(scope, receive, send)
            return
        start: Message = {}
        body = bytearray()

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            answer = json.loads(body)
            if start["status"] == 200:
                answer.update(self.changes)
            raw = json.dumps(answer).encode()
            headers = [(name, value) for name, value in start["headers"] if name.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(raw)).encode())]})
            await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, rewrite)


@pytest.mark.usefixtures("bound")
@pytest.mark.parametrize(
    "changes",
    [{"token_type": None}, {"token_type": 7}, {"expires_in": [1]}],
    ids=["token_type-null", "token_type-number", "expires_in-list"],
)
async def test_malformed_token_answers(
    web: httpx.AsyncClient,
    refusals: Refusals,
    signed_in: Callable[[str], None],
    identity_app: Starlette,
    changes: dict[str, Any],
) -> None:
    identity_app.add_middleware(_ChangeTokenAnswers, changes=changes)
    signed_in("alice")
    location = await callback_from_workbench(web)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_identity_unavailable", status=502)


@pytest.mark.usefixtures("bound")
async def test_wrong_client_secret(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], directory: IdentityDirectory
) -> None:
    directory.register_client(TENANT, client_id=CLIENT_ID, client_secret="rotated", redirect_uris=[CALLBACK])
    signed_in("alice")
    location = await callback_from_workbench(web)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_client_rejected", status=502)


# Redirects -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("bound")
@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "https://alpha.example.com/other",
        "https://alpha.example.com/app/../admin",
        "https://alpha.example.com/app/%2e%2e/admin",
        "https://alpha.example.com.evil.example/app",
        "https://user@alpha.example.com/app",
        "javascript:alert(1)",
    ],
)
async def test_next_pointing_off_site(web: httpx.AsyncClient, refusals: Refusals, target: str) -> None:
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/login", params={"tenant": TENANT, "next": target})
    await refusals.check(response, code="sso_redirect_not_allowed", status=400)


@pytest.mark.usefixtures("bound")
async def test_logout_redirect_off_site_does_nothing(
    app: Starlette, web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None]
) -> None:
    signed_in("alice")
    await web.get(await callback_from_button(web))
    refusals.behaviours["alpha"].logins.clear()
    await refusals.snapshot()
    response = await web.get(f"{MG}/sso/alpha/logout", params={"redirect_url": "https://evil.example/"})
    await refusals.check(response, code="sso_redirect_not_allowed", status=400)
    assert (await web.get(f"{MG}/sso/alpha/session")).status_code == 200


# The product ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("bound")
async def test_product_refusing_the_login(
    web: httpx.AsyncClient, refusals: Refusals, signed_in: Callable[[str], None], behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].login_error = RetryLater("product down")
    signed_in("alice")
    location = await callback_from_workbench(web)
    await refusals.snapshot()
    response = await web.get(location)
    await refusals.check(response, code="sso_product_unavailable", status=502)


class _NoLoginAdapter(RecordingAdapter):
    contract_version = 2
    # Deliberately not a hook: the gateway must treat an adapter whose `on_login` is None as having none.
    on_login = None  # type: ignore[assignment]


async def test_product_without_a_login_hook(
    app_factory: AppFactory,
    identity_app: Starlette,
    refusals: Refusals,
    directory: IdentityDirectory,
    behaviours: dict[str, Behaviour],
) -> None:
    factories = {"recording": lambda settings, context: _NoLoginAdapter(behaviours[context.product], context)}
    async with app_factory(factories=factories) as old, browser(old, identity_app) as client:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=old), base_url=MG) as kit_client:
            await bind_tenant(Marketplace(kit_client))
        sign_in_at_identity(client, directory, "alice")
        location = await callback_from_workbench(client)
        await refusals.snapshot()
        response = await client.get(location)
    await refusals.check(response, code="sso_product_has_no_login", status=501)


# Abuse ---------------------------------------------------------------------------------------


async def test_callbacks_are_rate_limited_per_client_address(
    app_factory: AppFactory, identity_app: Starlette, refusals: Refusals
) -> None:
    async with app_factory(sso_callback_rate_limit=3) as limited, browser(limited, identity_app) as client:
        answers = [await client.get(f"{MG}/sso/alpha/callback", params={"tenant": TENANT}) for _ in range(3)]
        await refusals.snapshot()
        limited_answer = await client.get(f"{MG}/sso/alpha/callback", params={"code": "abc", "tenant": TENANT})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=limited, client=("198.51.100.9", 1)), base_url=MG
        ) as elsewhere:
            other_address = await elsewhere.get("/sso/alpha/callback", params={"tenant": TENANT})
    assert [answer.status_code for answer in answers] == [400, 400, 400]
    await refusals.check(limited_answer, code="sso_rate_limited", status=429)
    assert other_address.status_code == 400
