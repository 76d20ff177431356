"""The SSO cases against MarketGate (both backends, the demo product taking the hand-off), against
servers broken on purpose around MarketGate's callback, and where they cannot run.

The simulator serves the identity domain on a free loopback port, which MarketGate reaches
through `dev_identity_domain_overrides`; the simulated browser reaches MarketGate over ASGI.
"""

import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.adapters.demo import DemoAdapter
from gateway.app import create_app
from gateway.settings import Settings
from gateway.simulator.calls import Target
from gateway.simulator.cases import DEFAULT_TENANT_DOMAIN, load_rsa_public_key
from gateway.simulator.report import Outcome, Report, render_table
from gateway.simulator.runner import RunOptions, run_simulation
from gateway.simulator.sso_cases import KIT_REQUIREMENTS
from gateway.store import Store
from tests.conftest import ALPHA_KEY, product
from tests.fakes import Behaviour, recording_factory
from tests.simulator.test_cases import RSA_VECTOR
from tests.simulator.test_runner import SSO, failures, free_port, outcomes

pytestmark = pytest.mark.anyio

MG = "https://mg.test"
ALPHA_KIT_KEY = "alpha-kit-key-5550123"
CALLBACK_PATH = "/sso/alpha/callback"
KIT = list(KIT_REQUIREMENTS)
PUBLIC_KEY = load_rsa_public_key(RSA_VECTOR["public_key_x509_base64"].encode())
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""For tests of what the simulator reports rather than of MarketGate's storage."""


@pytest.fixture
def identity_port() -> int:
    return free_port()


@pytest.fixture
def settings(settings: Settings, identity_port: int) -> Settings:
    """alpha is the demo product, with a Kit key, the vectors' RSA key and the identity domain mapped."""
    alpha = product("Alpha", ALPHA_KEY, adapter="demo", kit_access_key=ALPHA_KIT_KEY,
                    rsa_private_key=RSA_VECTOR["private_key_pkcs8_base64"])
    return settings.model_copy(update={
        "products": {**settings.products, "alpha": alpha},
        "public_url": MG,
        "sso_identity_timeout_s": 2.0,
        "dev_identity_domain_overrides": {DEFAULT_TENANT_DOMAIN: f"http://127.0.0.1:{identity_port}"},
    })


@pytest.fixture
async def app(settings: Settings, behaviours: dict[str, Behaviour], store: Store) -> AsyncIterator[Starlette]:
    factories = {"recording": recording_factory(behaviours), "demo": DemoAdapter}
    application = create_app(settings, adapter_factories=factories, store=store)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


async def run_sso(server: ASGIApp, *, identity_port: int, **options: Any) -> Report:
    """The `sso` flow (and the Kit syncs it needs) against `server`, as `simulate run --case sso`."""
    transport = httpx.ASGITransport(app=server)
    async with httpx.AsyncClient(transport=transport) as client:
        target = Target(f"{MG}/koogallery/alpha", ALPHA_KEY.encode(), ALPHA_KIT_KEY.encode())
        defaults: dict[str, Any] = {"cases": ("sso",), "rsa_public_key": PUBLIC_KEY}
        run_options = RunOptions(**(defaults | options), identity_port=identity_port)
        return await run_simulation(client, target, run_options, browser_transport=transport)


def kit_accepted(request: httpx.Request) -> httpx.Response:
    """A server that accepts every Kit sync, enough to reach the SSO cases."""
    return httpx.Response(200, json={"resultCode": "000000", "resultMsg": "success."})


# MarketGate -------------------------------------------------------------------------------


async def test_marketgate_hands_members_to_the_product_and_refuses_forged_callbacks_then_again(
    app: Starlette, identity_port: int
) -> None:
    report = await run_sso(app, identity_port=identity_port)
    assert report.ok, render_table(report)
    assert outcomes(report) == dict.fromkeys([*KIT, *SSO], Outcome.PASSED)
    why = {case.name: case.why for case in report.cases}
    landed = "handed to https://mg.test/apps/alpha/me (HTTP 200) with a session"
    assert re.fullmatch(rf"admin-sim[0-9a-f]{{10}} signed in from the login entry, {re.escape(landed)}",
                        why["sso.login"]), why["sso.login"]
    assert re.fullmatch(rf"user-sim[0-9a-f]{{10}} signed in from the workbench, {re.escape(landed)}",
                        why["sso.workbench"]), why["sso.workbench"]
    assert why["sso.login.replay"] == "the same callback again: refused with HTTP 400 (sso_state_invalid)"
    assert why["sso.forged-state"] == "callback with another state: refused with HTTP 400 (sso_state_invalid)"
    assert why["sso.forged-code"] == "callback with a code never issued: refused with HTTP 400 (sso_invalid_code)"
    assert re.fullmatch(r"guest-sim[0-9a-f]{10}, never authorized: refused with HTTP 403 \(sso_member_not_authorized\)",
                        why["sso.unauthorized"]), why["sso.unauthorized"]
    assert {case.name: case.calls for case in report.cases if case.name in SSO} == {
        "sso.login": 4, "sso.login.replay": 1, "sso.forged-state": 2, "sso.forged-code": 1, "sso.workbench": 3,
        "sso.unauthorized": 1,
    }
    # repeatable: a second run has a tenant, members and an identity domain of its own
    again = await run_sso(app, identity_port=identity_port)
    assert again.ok and again.count(Outcome.PASSED) == len(KIT) + len(SSO), render_table(again)


# Where the SSO cases cannot run -----------------------------------------------------------


@ONE_BACKEND
async def test_without_a_kit_key_or_an_rsa_key_they_are_skipped_saying_why(app: Starlette) -> None:
    no_kit_key = await run_sso(app, identity_port=free_port(), kit_key_given=False)
    assert outcomes(no_kit_key) == dict.fromkeys(KIT, Outcome.PASSED) | dict.fromkeys(SSO, Outcome.SKIPPED)
    assert {case.why for case in no_kit_key.cases if case.name in SSO} == {
        "skipped: no --kit-key (SSO signs in the tenant and members the Kit syncs send)"
    }
    no_rsa_key = await run_sso(app, identity_port=free_port(), rsa_public_key=None)
    assert {case.why for case in no_rsa_key.cases if case.name in SSO} == {
        "skipped: needs kit.applicationSync, which was skipped"
    }
    assert no_kit_key.ok and no_rsa_key.ok


async def test_an_address_outside_koogallery_needs_sso_url() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(kit_accepted)) as client:
        report = await run_simulation(client, Target("https://vendor.test/isv/produce", b"k", b"k"),
                                      RunOptions(cases=("sso.forged-code",)))
    assert outcomes(report)["sso.forged-code"] is Outcome.SKIPPED
    assert report.cases[-1].why == "skipped: no --sso-url (none to derive from an --url outside /koogallery/<slug>)"


@ONE_BACKEND
async def test_an_identity_domain_the_server_maps_elsewhere_skips_them_with_the_setting_to_use(
    app: Starlette, identity_port: int
) -> None:
    elsewhere = free_port()
    report = await run_sso(app, identity_port=elsewhere)
    assert report.ok, render_table(report)
    login = report.cases[len(KIT)]
    assert (login.name, login.outcome) == ("sso.login", Outcome.SKIPPED)
    assert login.why == (
        "skipped: the server does not reach the identity domain served here (its login entry sends the browser to "
        f"http://127.0.0.1:{identity_port}/api/v1/oauth2/authorize); it must call {DEFAULT_TENANT_DOMAIN} at "
        f"http://127.0.0.1:{elsewhere}: MarketGate in development takes MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES="
        f"'{{\"{DEFAULT_TENANT_DOMAIN}\": \"http://127.0.0.1:{elsewhere}\"}}'"
    )
    assert {case.why for case in report.cases[len(KIT) + 1:]} == {"skipped: needs sso.login, which was skipped"}


@ONE_BACKEND
async def test_a_tenant_domain_the_server_cannot_call_skips_them(app: Starlette) -> None:
    # MarketGate maps only the default tenant domain; `.example` names never resolve (RFC 2606).
    report = await run_sso(app, identity_port=free_port(), tenant_domain="https://idp.unmapped.example")
    login = report.cases[len(KIT)]
    assert (login.name, login.outcome) == ("sso.login", Outcome.SKIPPED)
    assert re.fullmatch(
        r"skipped: the server does not reach the identity domain served here \(its callback answered HTTP 50[24] "
        r"\(sso_identity_(unavailable|timeout)\) without calling the token endpoint\); it must call "
        r"https://idp\.unmapped\.example at http://127\.0\.0\.1:\d+: MarketGate in development takes "
        r"MARKETGATE_DEV_IDENTITY_DOMAIN_OVERRIDES='\{\"https://idp\.unmapped\.example\": \"http://127\.0\.0\.1:\d+\"\}'",
        login.why,
    ), login.why
    assert report.ok


@ONE_BACKEND
async def test_a_server_whose_callback_is_not_the_registered_one_fails_the_login(
    app: Starlette, identity_port: int
) -> None:
    # the server's public address is https://mg.test: its callback is not under http://mg.test
    report = await run_sso(app, identity_port=identity_port, sso_url="http://mg.test/sso/alpha")
    assert failures(report) == {
        "sso.login": "login entry: asks to come back to https://mg.test/sso/alpha/callback, not to the registered "
                     "callback http://mg.test/sso/alpha/callback (see --sso-url)"
    }, render_table(report)


async def test_an_identity_port_in_use_skips_them() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        async with httpx.AsyncClient(transport=httpx.MockTransport(kit_accepted)) as client:
            report = await run_simulation(client, Target(f"{MG}/koogallery/alpha", b"k", b"k"),
                                          RunOptions(cases=("sso.login",), identity_port=port,
                                                     rsa_public_key=PUBLIC_KEY))
    assert outcomes(report) == dict.fromkeys(KIT, Outcome.PASSED) | {"sso.login": Outcome.SKIPPED}
    assert report.cases[-1].why.startswith(f"skipped: cannot serve the identity domain on 127.0.0.1:{port} (")
    assert report.cases[-1].why.endswith("); see --identity-port")


# Broken servers: MarketGate with its callback broken on purpose ---------------------------


def at_callback(app: ASGIApp, broken: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    """`app`, whose SSO callback `broken(app)` answers instead."""
    callback = broken(app)

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        handler = callback if scope["type"] == "http" and scope["path"] == CALLBACK_PATH else app
        await handler(scope, receive, send)

    return server


def without_state(app: ASGIApp) -> ASGIApp:
    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        query = [(name, value) for name, value in parse_qsl(scope["query_string"].decode()) if name != "state"]
        await app({**scope, "query_string": urlencode(query).encode()}, receive, send)

    return forward


def refusals_as_500(app: ASGIApp) -> ASGIApp:
    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                message = {**message, "status": 500}
            await send(message)

        await app(scope, receive, sending)

    return forward


def unchecked_hand_off(app: ASGIApp) -> ASGIApp:
    response = RedirectResponse("/apps/alpha/me", 303)
    response.set_cookie("session", "anyone")
    return response


BROKEN = [
    pytest.param(lambda app: PlainTextResponse("Internal Server Error", 500),
                 {"sso.login": "callback: HTTP 500, not a redirect to the product"}, id="callback answers 500"),
    pytest.param(lambda app: HTMLResponse("<p>Welcome!</p>"),
                 {"sso.login": "callback: HTTP 200, not a redirect to the product"}, id="never redirects"),
    pytest.param(unchecked_hand_off,
                 {"sso.login": "callback: redirected without exchanging the code at the identity domain"},
                 id="code never exchanged"),
    pytest.param(without_state,
                 {"sso.forged-state": "callback with another state: HTTP 303 to https://mg.test/apps/alpha/sso/enter, "
                                      "accepted; must be refused with an error page"},
                 id="state ignored"),
    pytest.param(refusals_as_500,
                 {"sso.login.replay": "the same callback again: HTTP 500 (sso_state_invalid), a server error instead "
                                      "of an error page",
                  "sso.forged-state": "callback with another state: HTTP 500 (sso_state_invalid), a server error "
                                      "instead of an error page",
                  "sso.forged-code": "callback with a code never issued: HTTP 500 (sso_invalid_code), a server error "
                                     "instead of an error page",
                  "sso.unauthorized": "guest-sim…, never authorized: HTTP 500 (sso_member_not_authorized), a server "
                                      "error instead of an error page"},
                 id="refusals answered 500"),
]


@ONE_BACKEND
@pytest.mark.parametrize(("broken", "expected"), BROKEN)
async def test_a_broken_callback_fails_exactly_the_cases_it_breaks(
    app: Starlette, identity_port: int, broken: Callable[[ASGIApp], ASGIApp], expected: dict[str, str]
) -> None:
    report = await run_sso(at_callback(app, broken), identity_port=identity_port)
    found = {name: re.sub(r"sim[0-9a-f]{10}", "sim…", why) for name, why in failures(report).items()}
    assert found == expected, render_table(report)
    assert report.exit_code == 1
    # the cases that need a failed sign-in are skipped, the others still pass
    skipped = {case.why for case in report.cases if case.outcome is Outcome.SKIPPED}
    assert skipped == ({"skipped: needs sso.login, which failed"} if "sso.login" in expected else set())
