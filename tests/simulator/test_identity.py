"""The identity-domain stand-in, driven by authlib's own OAuth 2.0 client.

Everything goes over HTTP: through `httpx.ASGITransport`, and once over a real loopback socket
served by uvicorn. A cookie-keeping httpx client plays the browser; `AsyncOAuth2Client` plays
MarketGate's callback handler.
"""

import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped, unused-ignore]
from starlette.applications import Starlette

from gateway.simulator.identity import (
    AUTHORIZE_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    SESSION_COOKIE,
    TOKEN_PATH,
    USERINFO_PATH,
    WORKBENCH_PATH,
    IdentityDirectory,
    create_identity_app,
    serve_identity,
)

with warnings.catch_warnings():
    # authlib 1.9 prefers the `httpx2` package and warns once on import when it falls back to
    # `httpx`, which is what MarketGate installs; the fallback is supported.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped, unused-ignore]

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.test"
CALLBACK = "https://mg.test/sso/alpha/callback"
OTHER_CALLBACK = "https://mg.test/sso/alpha/other"
ALICE_INFO = {
    "id": "20201029190841785-CB37-8BD36B000001",
    "userName": "alice",
    "name": "Alice Liu",
    "email": "alice@acme.example",
    "mobile": "12345678901",
    "role": "admin",
    "organizationName": "Sales",
    "organizationCode": "ORG-SALES",
    "userId": "20201029190841785-CB37-8BD36B000001",
    "projectName": "Acme Ltd",
    "tenant": "tenant-a",
}


@dataclass
class MovableClock:
    current: datetime = field(default_factory=lambda: datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def directory() -> IdentityDirectory:
    directory = IdentityDirectory(password_iterations=1_000)
    directory.add_tenant("tenant-a", "Acme Ltd")
    directory.add_tenant("tenant-b", "Beta Corp")
    directory.register_client(
        "tenant-a", client_id="client-a", client_secret="secret-a", redirect_uris=[CALLBACK, OTHER_CALLBACK]
    )
    directory.register_client("tenant-b", client_id="client-b", client_secret="secret-b", redirect_uris=[CALLBACK])
    directory.add_user(
        "tenant-a",
        "alice",
        password="alice-password",
        name="Alice Liu",
        email="alice@acme.example",
        mobile="12345678901",
        role="admin",
        organization_code="ORG-SALES",
        organization_name="Sales",
        user_id="20201029190841785-CB37-8BD36B000001",
    )
    directory.add_user("tenant-b", "bob", password="bob-password", role="user", organization_code="ORG-B")
    return directory


@pytest.fixture
def app(directory: IdentityDirectory, clock: MovableClock) -> Starlette:
    return create_identity_app(directory, issuer=ISSUER, clock=clock)


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        yield client


def oauth_client(app: Starlette, *, secret: str = "secret-a", **options: Any) -> AsyncOAuth2Client:
    """authlib's client as MarketGate configures it: client_secret_post, the registered callback."""
    defaults: dict[str, Any] = {
        "client_id": "client-a",
        "client_secret": secret,
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uri": CALLBACK,
        "scope": "get_user_info",
        "transport": httpx.ASGITransport(app=app),
        "base_url": ISSUER,
    }
    return AsyncOAuth2Client(**(defaults | options))


@pytest.fixture
async def oauth(app: Starlette) -> AsyncIterator[AsyncOAuth2Client]:
    async with oauth_client(app) as client:
        yield client


def log_in(browser: httpx.AsyncClient, directory: IdentityDirectory, tenant: str, user: str) -> None:
    browser.cookies.set(SESSION_COOKIE, directory.log_in(tenant, user), domain="idp.test")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def callback_url(browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, state: str = "xyz123") -> str:
    """Where the identity domain sends the browser after a successful authorization."""
    url, _ = oauth.create_authorization_url(ISSUER + AUTHORIZE_PATH, state=state)
    response = await browser.get(url)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return location


# The code flow ------------------------------------------------------------------------------


async def test_code_flow_with_state_gives_code_state_and_tenant_then_token_and_userinfo(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    # given alice is logged into her tenant's domain
    log_in(browser, directory, "tenant-a", "alice")

    # when MarketGate sends her to authorize and exchanges the code with authlib's client
    location = await callback_url(browser, oauth, state="xyz123")
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location, state="xyz123")
    userinfo = await oauth.get(USERINFO_PATH, headers={"Accept": "application/json"})

    # then the callback carries code, state and tenant, and the token and user are as documented
    params = query(location)
    assert list(params) == ["code", "state", "tenant"]
    assert params["state"] == ["xyz123"] and params["tenant"] == ["tenant-a"]
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 7200
    assert token["scope"] == "get_user_info"
    assert token["refresh_token"] and token["access_token"]
    assert userinfo.status_code == 200
    assert userinfo.json() == ALICE_INFO


async def test_token_endpoint_accepts_http_basic_and_no_redirect_uri(
    app: Starlette, browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    first = query(await callback_url(browser, oauth))["code"][0]
    second = query(await callback_url(browser, oauth))["code"][0]

    async with oauth_client(app, token_endpoint_auth_method="client_secret_basic") as basic:
        token = await basic.fetch_token(TOKEN_PATH, code=first)
    # redirect_uri is optional at the token endpoint (spec §4.2 step 4)
    bare = await browser.post(
        TOKEN_PATH,
        data={"grant_type": "authorization_code", "code": second, "client_id": "client-a", "client_secret": "secret-a"},
    )

    assert token["token_type"] == "Bearer"
    assert bare.status_code == 200, bare.text
    assert bare.headers["cache-control"] == "no-store"


async def test_login_form_logs_in_and_continues_the_authorization(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    # given nobody is logged in
    url, _ = oauth.create_authorization_url(ISSUER + AUTHORIZE_PATH, state="s1")

    # when the browser follows the authorization to the login page
    to_login = await browser.get(url)
    page = await browser.get(to_login.headers["location"])
    form = {
        "next": query(to_login.headers["location"])["next"][0],
        "tenant": "tenant-a",
        "username": "alice",
    }
    refused = await browser.post(LOGIN_PATH, data=form | {"password": "wrong"})
    sessions_after_refusal = directory.session_count()
    accepted = await browser.post(LOGIN_PATH, data=form | {"password": "alice-password"})
    back = await browser.get(accepted.headers["location"])

    # then the page has the form, a wrong password starts nothing, the right one continues
    assert to_login.status_code == 302 and to_login.headers["location"].startswith(LOGIN_PATH + "?")
    assert all(f'id="{name}"' in page.text for name in ("username", "password", "login"))
    assert refused.status_code == 401 and 'id="error"' in refused.text
    assert sessions_after_refusal == 0
    assert accepted.status_code == 302 and accepted.headers["location"] == form["next"]
    assert "httponly" in accepted.headers["set-cookie"].lower()
    assert back.status_code == 302
    assert query(back.headers["location"])["state"] == ["s1"]
    assert query(back.headers["location"])["tenant"] == ["tenant-a"]


async def test_a_session_in_another_tenant_does_not_authorize(
    app: Starlette, browser: httpx.AsyncClient, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-b", "bob")

    async with oauth_client(app) as client_of_tenant_a:
        url, _ = client_of_tenant_a.create_authorization_url(ISSUER + AUTHORIZE_PATH)
        response = await browser.get(url)

    assert response.status_code == 302
    assert response.headers["location"].startswith(LOGIN_PATH + "?")
    assert query(response.headers["location"])["tenant"] == ["tenant-a"]
    assert directory.code_count() == 0


async def test_workbench_launch_sends_code_and_tenant_without_state(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")

    launched = await browser.get(WORKBENCH_PATH, params={"client_id": "client-a"})
    location = launched.headers["location"]
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location)
    userinfo = await oauth.get(USERINFO_PATH)

    assert launched.status_code == 302
    assert location.startswith(CALLBACK + "?")
    assert list(query(location)) == ["code", "tenant"]
    assert token["access_token"]
    assert userinfo.json()["userName"] == "alice"


async def test_workbench_launch_for_an_unknown_client_is_refused(
    browser: httpx.AsyncClient, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")

    launched = await browser.get(WORKBENCH_PATH, params={"client_id": "nobody"})

    assert launched.status_code == 400
    assert launched.json()["error"] == "invalid_client"
    assert directory.code_count() == 0


async def test_workbench_launch_without_session_goes_to_login(browser: httpx.AsyncClient) -> None:
    launched = await browser.get(WORKBENCH_PATH, params={"client_id": "client-a"})

    assert launched.status_code == 302
    assert query(launched.headers["location"])["next"] == [WORKBENCH_PATH + "?client_id=client-a"]


# Refusals -----------------------------------------------------------------------------------


async def test_a_code_is_single_use(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)
    await oauth.fetch_token(TOKEN_PATH, authorization_response=location)
    tokens_before = directory.token_count()

    with pytest.raises(OAuthError) as refused:
        await oauth.fetch_token(TOKEN_PATH, authorization_response=location)

    assert refused.value.error == "invalid_grant"
    assert refused.value.description == "Invalid authorization code"
    assert directory.token_count() == tokens_before


async def test_reused_code_answers_the_documented_body(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    code = query(await callback_url(browser, oauth))["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "client_id": "client-a", "client_secret": "secret-a"}

    first = await browser.post(TOKEN_PATH, data=form)
    second = await browser.post(TOKEN_PATH, data=form)

    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


async def test_wrong_client_secret_is_refused_and_leaves_the_code_usable(
    app: Starlette, browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)

    async with oauth_client(app, secret="not-the-secret") as impostor:
        with pytest.raises(OAuthError) as refused:
            await impostor.fetch_token(TOKEN_PATH, authorization_response=location)
    tokens_after_refusal = directory.token_count()
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location)

    assert refused.value.error == "invalid_client"
    assert tokens_after_refusal == 0
    assert token["access_token"]


async def test_another_tenants_client_cannot_redeem_the_code(
    app: Starlette, browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)

    async with oauth_client(app, client_id="client-b", secret="secret-b") as other:
        with pytest.raises(OAuthError) as refused:
            await other.fetch_token(TOKEN_PATH, authorization_response=location)

    assert refused.value.error == "invalid_grant"
    assert directory.token_count() == 0


async def test_unregistered_redirect_uri_is_refused_without_redirecting(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    url, _ = oauth.create_authorization_url(
        ISSUER + AUTHORIZE_PATH, redirect_uri="https://evil.example/callback", state="s"
    )
    near_miss, _ = oauth.create_authorization_url(ISSUER + AUTHORIZE_PATH, redirect_uri=CALLBACK + "/", state="s")

    responses = [await browser.get(url), await browser.get(near_miss)]

    assert [response.status_code for response in responses] == [400, 400]
    assert all(response.json()["error"] == "invalid_request" for response in responses)
    assert all("location" not in response.headers for response in responses)
    assert directory.code_count() == 0


async def test_token_request_with_another_redirect_uri_is_refused(
    app: Starlette, browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)

    async with oauth_client(app, redirect_uri=OTHER_CALLBACK) as elsewhere:
        with pytest.raises(OAuthError) as refused:
            await elsewhere.fetch_token(TOKEN_PATH, authorization_response=location)

    assert refused.value.error == "invalid_grant"
    assert directory.token_count() == 0


async def test_unsupported_scope_goes_back_to_the_client_as_an_error(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    url, _ = oauth.create_authorization_url(ISSUER + AUTHORIZE_PATH, scope="openid admin", state="s9")

    response = await browser.get(url)

    assert response.status_code == 302
    params = query(response.headers["location"])
    assert (params["error"], params["state"]) == (["invalid_scope"], ["s9"])
    assert "code" not in params
    assert directory.code_count() == 0


async def test_an_expired_code_is_refused(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory, clock: MovableClock
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)

    clock.advance(5 * 60)
    with pytest.raises(OAuthError) as refused:
        await oauth.fetch_token(TOKEN_PATH, authorization_response=location)

    assert refused.value.error == "invalid_grant"
    assert refused.value.description == "Invalid authorization code"
    assert directory.token_count() == 0


async def test_a_code_just_inside_five_minutes_is_accepted(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory, clock: MovableClock
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)

    clock.advance(5 * 60 - 1)
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location)

    assert token["access_token"]


async def test_userinfo_refuses_missing_unknown_and_expired_tokens(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory, clock: MovableClock
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth))
    valid = {"Authorization": f"Bearer {token['access_token']}"}

    missing = await browser.get(USERINFO_PATH)
    unknown = await browser.get(USERINFO_PATH, headers={"Authorization": "Bearer not-a-token"})
    basic = await browser.get(USERINFO_PATH, headers={"Authorization": "Basic YTpi"})
    fresh = await browser.get(USERINFO_PATH, headers=valid)
    clock.advance(7200)
    expired = await browser.get(USERINFO_PATH, headers=valid)

    expected = {"error": "unauthorized", "error_description": "Full authentication is required to access this resource"}
    for refused in (missing, unknown, basic, expired):
        assert refused.status_code == 401
        assert refused.json() == expected
    assert fresh.status_code == 200


# Refresh ------------------------------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    first = dict(await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth)))

    second = dict(await oauth.refresh_token(TOKEN_PATH, refresh_token=first["refresh_token"]))
    with pytest.raises(OAuthError) as reused:
        await oauth.refresh_token(TOKEN_PATH, refresh_token=first["refresh_token"])
    third = dict(await oauth.refresh_token(TOKEN_PATH, refresh_token=second["refresh_token"]))
    userinfo = await oauth.get(USERINFO_PATH)

    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["expires_in"] == 7200 and second["scope"] == "get_user_info"
    assert reused.value.error == "invalid_grant"
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert userinfo.json()["userName"] == "alice"


async def test_refresh_without_rotation_keeps_the_refresh_token(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    directory.rotate_refresh_tokens = False
    log_in(browser, directory, "tenant-a", "alice")
    first = dict(await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth)))

    raw = await browser.post(
        TOKEN_PATH,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("client-a", "secret-a"),
    )
    again = dict(await oauth.refresh_token(TOKEN_PATH, refresh_token=first["refresh_token"]))

    assert raw.status_code == 200 and "refresh_token" not in raw.json()
    assert again["refresh_token"] == first["refresh_token"]


async def test_refresh_token_expires_after_thirty_days(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory, clock: MovableClock
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth))

    clock.advance(30 * 24 * 3600)
    with pytest.raises(OAuthError) as refused:
        await oauth.refresh_token(TOKEN_PATH, refresh_token=token["refresh_token"])

    assert refused.value.error == "invalid_grant"


# Logout -------------------------------------------------------------------------------------


async def test_logout_ends_the_session_and_redirects(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")

    out = await browser.get(LOGOUT_PATH, params={"redirect_url": "https://mg.test/signed-out"})
    browser.cookies.clear()
    log_in(browser, directory, "tenant-a", "alice")
    sessions_before_bare_logout = directory.session_count()
    bare = await browser.get(LOGOUT_PATH)
    url, _ = oauth.create_authorization_url(ISSUER + AUTHORIZE_PATH)
    after = await browser.get(url)

    assert out.status_code == 302 and out.headers["location"] == "https://mg.test/signed-out"
    assert f"{SESSION_COOKIE}=" in out.headers["set-cookie"]
    assert sessions_before_bare_logout == 1
    assert bare.status_code == 302 and bare.headers["location"] == LOGIN_PATH
    assert directory.session_count() == 0
    assert after.headers["location"].startswith(LOGIN_PATH + "?")


# Fault injection and statistics -------------------------------------------------------------


async def test_slow_token_endpoint_is_slow_and_counted(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)
    directory.faults.token_delay_s = 0.2

    started = time.perf_counter()
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location)
    elapsed = time.perf_counter() - started

    assert token["access_token"]
    assert elapsed >= 0.2
    assert directory.stats.count(TOKEN_PATH) == 1
    assert directory.stats.count(AUTHORIZE_PATH) == 1
    assert 0.2 <= directory.stats.seconds(TOKEN_PATH) <= elapsed
    assert directory.stats.count() == 2


async def test_failing_token_endpoint_answers_500_and_consumes_nothing(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    location = await callback_url(browser, oauth)
    directory.faults.token_status = 500

    with pytest.raises(httpx.HTTPStatusError) as failed:
        await oauth.fetch_token(TOKEN_PATH, authorization_response=location)
    directory.faults.reset()
    token = await oauth.fetch_token(TOKEN_PATH, authorization_response=location)

    assert failed.value.response.status_code == 500
    assert token["access_token"]


async def test_failing_userinfo_answers_the_injected_status(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth))
    directory.faults.userinfo_status = 503

    response = await oauth.get(USERINFO_PATH)

    assert response.status_code == 503
    assert response.json()["error"] == "server_error"


async def test_userinfo_can_answer_another_tenants_user(
    browser: httpx.AsyncClient, oauth: AsyncOAuth2Client, directory: IdentityDirectory
) -> None:
    log_in(browser, directory, "tenant-a", "alice")
    await oauth.fetch_token(TOKEN_PATH, authorization_response=await callback_url(browser, oauth))
    directory.faults.userinfo_as = ("tenant-b", "bob")

    userinfo = (await oauth.get(USERINFO_PATH)).json()

    assert (userinfo["tenant"], userinfo["userName"], userinfo["projectName"]) == ("tenant-b", "bob", "Beta Corp")


async def test_metadata_names_the_issuer(browser: httpx.AsyncClient) -> None:
    metadata = (await browser.get("/.well-known/oauth-authorization-server")).json()

    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == ISSUER + TOKEN_PATH


# Real HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def served(app: Starlette) -> Iterator[str]:
    with serve_identity(app) as base_url:
        yield base_url


async def test_over_real_http_the_login_form_flow_works(served: str, directory: IdentityDirectory) -> None:
    # given the identity domain on a loopback port, and MarketGate's authlib client pointed at it
    async with (
        httpx.AsyncClient(base_url=served) as browser,
        AsyncOAuth2Client(
            client_id="client-a",
            client_secret="secret-a",
            token_endpoint_auth_method="client_secret_post",
            redirect_uri=CALLBACK,
            scope="get_user_info",
            base_url=served,
        ) as oauth,
    ):
        # when the user signs in through the form and MarketGate finishes the flow
        url, state = oauth.create_authorization_url(served + AUTHORIZE_PATH)
        to_login = await browser.get(url)
        next_path = query(to_login.headers["location"])["next"][0]
        signed_in = await browser.post(
            LOGIN_PATH,
            data={"next": next_path, "tenant": "tenant-a", "username": "alice", "password": "alice-password"},
        )
        callback = await browser.get(signed_in.headers["location"])
        token = await oauth.fetch_token(TOKEN_PATH, authorization_response=callback.headers["location"], state=state)
        userinfo = await oauth.get(USERINFO_PATH)

    # then it went exactly as through the ASGI transport
    assert signed_in.status_code == 302
    assert "secure" not in signed_in.headers["set-cookie"].lower()
    assert query(callback.headers["location"])["tenant"] == ["tenant-a"]
    assert token["expires_in"] == 7200
    assert userinfo.json() == ALICE_INFO
    assert directory.stats.count(USERINFO_PATH) == 1


async def test_plain_http_off_loopback_is_refused_by_authlib(app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://idp.internal") as client:
        response = await client.post(TOKEN_PATH, data={"grant_type": "authorization_code", "code": "x"})

    assert response.status_code == 400
    assert response.json()["error"] == "insecure_transport"
