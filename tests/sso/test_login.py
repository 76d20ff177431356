"""Logging in: from the vendor's login button (our state) and from the workbench (no state),
into the product through the login token; sessions, their cookie and the admin frontend's bearer."""

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from gateway.adapters.contract import SessionEndReason
from gateway.simulator.identity import TOKEN_PATH, USERINFO_PATH, IdentityDirectory
from graphql_api.principals import SESSION_COOKIE
from tests.fakes import Behaviour
from tests.sso.helpers import (
    APP_ID,
    IDP,
    MG,
    REDEEM_KEY,
    TENANT,
    callback_from_button,
    callback_from_workbench,
    query,
    sign_in_at_identity,
    sso,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bound")]


def session_cookie_header(response: httpx.Response) -> str:
    headers = [value for value in response.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0].lower()


async def test_login_button_signs_the_member_in_and_hands_off_to_the_product(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    # given alice is signed in at her enterprise's identity domain
    sign_in_at_identity(web, directory, "alice")

    # when she presses the vendor's login button and comes back to the callback
    started = await web.get(f"{MG}/sso/alpha/login", params={"tenant": TENANT})
    authorized = await web.get(started.headers["location"])
    landed = await web.get(authorized.headers["location"])

    # then MarketGate went to her tenant's authorize endpoint with a state bound to this browser,
    authorize = urlsplit(started.headers["location"])
    params = query(started.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{IDP}/api/v1/oauth2/authorize"
    assert params["client_id"] == "client-1" and params["redirect_uri"] == f"{MG}/sso/alpha/callback"
    assert params["scope"] == "get_user_info" and params["response_type"] == "code" and params["state"].isalnum()
    assert "mg_sso_flow=" in started.headers["set-cookie"]
    # exchanged the code, and sent her to the product with a login token and a session cookie
    assert landed.status_code == 303
    assert landed.headers["location"].startswith("https://alpha.example.com/sso?login_token=")
    cookie = session_cookie_header(landed)
    assert all(part in cookie for part in ("httponly", "secure", "samesite=lax", "path=/"))
    [login] = behaviours["alpha"].logins
    assert (login.member.tenant_id, login.member.user_name, login.member.role) == (TENANT, "alice", "admin")
    assert (login.member.name, login.member.instance_id, login.member.is_test) == ("Alice", "inst-1", False)
    assert login.redeem_url == f"{MG}/sso/alpha/redeem" and login.next_url is None
    assert directory.stats.count(TOKEN_PATH) == 1 and directory.stats.count(USERINFO_PATH) == 1

    # and the session says who she is
    session = await web.get(f"{MG}/sso/alpha/session")
    assert session.status_code == 200
    body = session.json()
    assert (body["tenantId"], body["userName"], body["role"], body["name"]) == (TENANT, "alice", "admin", "Alice")


async def test_callback_with_our_state_and_no_tenant_takes_the_tenant_from_the_flow(
    web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    # given the identity domain comes back with only `code` and `state` (koogallery-kit-sso.md §4.3)
    sign_in_at_identity(web, directory, "alice")
    location = urlsplit(await callback_from_button(web))
    params = [(name, value) for name, value in parse_qsl(location.query) if name != "tenant"]
    assert sorted(name for name, _ in params) == ["code", "state"]

    # when the browser arrives at the callback
    landed = await web.get(location._replace(query=urlencode(params)).geturl())

    # then the sign-in is for the tenant the login was started for
    assert landed.status_code == 303, landed.text
    [login] = behaviours["alpha"].logins
    assert (login.member.tenant_id, login.member.user_name) == (TENANT, "alice")
    assert (await web.get(f"{MG}/sso/alpha/session")).json()["tenantId"] == TENANT


async def test_workbench_sign_in_without_our_state_is_accepted(
    web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    sign_in_at_identity(web, directory, "bob")

    location = await callback_from_workbench(web)
    landed = await web.get(location)

    assert "state" not in query(location)
    assert landed.status_code == 303
    [login] = behaviours["alpha"].logins
    assert (login.member.user_name, login.member.role) == ("bob", "user")
    assert (await web.get(f"{MG}/sso/alpha/session")).json()["userName"] == "bob"


async def test_the_product_redeems_the_login_token_once(
    web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    sign_in_at_identity(web, directory, "alice")
    await web.get(await callback_from_button(web, next="https://alpha.example.com/app/reports"))
    [login] = behaviours["alpha"].logins
    product_server = {"authorization": f"Bearer {REDEEM_KEY}"}

    wrong_key = await web.post(
        f"{MG}/sso/alpha/redeem", json={"loginToken": login.login_token}, headers={"authorization": "Bearer nope"}
    )
    # A body past the 4 KiB limit is refused (not read to its end) and uses nothing up: the token is redeemed next
    async def oversized() -> AsyncIterator[bytes]:
        yield json.dumps({"loginToken": login.login_token, "padding": ""}).encode()[:-2]
        yield b"x" * 5000 + b'"}'

    too_large = await web.post(f"{MG}/sso/alpha/redeem", content=oversized(), headers=product_server)
    assert too_large.status_code == 400 and too_large.json() == {"error": "bad_request"}

    first = await web.post(f"{MG}/sso/alpha/redeem", json={"loginToken": login.login_token}, headers=product_server)
    second = await web.post(f"{MG}/sso/alpha/redeem", json={"loginToken": login.login_token}, headers=product_server)

    assert wrong_key.status_code == 401
    assert first.status_code == 200, first.text
    grant = first.json()
    assert grant["member"]["userName"] == "alice" and grant["member"]["role"] == "admin"
    assert grant["nextUrl"] == "https://alpha.example.com/app/reports"
    assert grant["sessionId"] == login.session_id
    assert second.status_code == 400 and second.json() == {"error": "invalid_login_token"}


async def test_another_products_redeem_leaves_the_login_token_to_its_product(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    # given alpha was handed a login token for alice
    sign_in_at_identity(web, directory, "alice")
    await web.get(await callback_from_button(web))
    [login] = behaviours["alpha"].logins

    # when beta (its adapter, through its own AdapterContext) tries to redeem it
    by_beta = await sso(app).sessions.login_tokens_for("beta").redeem(login.login_token)

    # then beta gets nothing, and the token is still alpha's to redeem
    assert by_beta is None
    by_alpha = await web.post(
        f"{MG}/sso/alpha/redeem",
        json={"loginToken": login.login_token},
        headers={"authorization": f"Bearer {REDEEM_KEY}"},
    )
    assert by_alpha.status_code == 200, by_alpha.text
    assert by_alpha.json()["member"]["userName"] == "alice"


async def test_unified_login_page_without_a_tenant(web: httpx.AsyncClient) -> None:
    response = await web.get(f"{MG}/sso/alpha/login")

    assert response.status_code == 302
    assert response.headers["location"] == (
        f"https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId={APP_ID}"
    )


async def test_logout_ends_the_session_everywhere_and_goes_to_the_identity_domain(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory, behaviours: dict[str, Behaviour]
) -> None:
    sign_in_at_identity(web, directory, "alice")
    await web.get(await callback_from_button(web))
    cookie = web.cookies[SESSION_COOKIE]

    out = await web.get(f"{MG}/sso/alpha/logout")
    at_identity = await web.get(out.headers["location"])

    assert out.status_code == 302
    assert out.headers["location"] == (
        f"{IDP}/api/v1/logout?redirect_url=https%3A%2F%2Fmg.test%2Fsso%2Falpha%2Fsigned-out"
    )
    assert at_identity.headers["location"] == f"{MG}/sso/alpha/signed-out"
    assert directory.session_count() == 0
    assert await sso(app).sessions.principal_for_session(cookie) is None
    assert (await web.get(f"{MG}/sso/alpha/session")).status_code == 401
    [end] = behaviours["alpha"].session_ends
    assert (end.member.user_name, end.reason) == ("alice", SessionEndReason.LOGOUT)
    assert "Sign in again" in (await web.get(at_identity.headers["location"])).text


async def test_admin_frontend_gets_a_bearer_with_the_cookie_and_the_csrf_token(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory
) -> None:
    sign_in_at_identity(web, directory, "alice")
    await web.get(await callback_from_button(web))
    csrf = (await web.get(f"{MG}/sso/alpha/session")).json()["csrfToken"]

    without = await web.post(f"{MG}/sso/alpha/token")
    wrong = await web.post(f"{MG}/sso/alpha/token", headers={"X-CSRF-Token": "x" * 32})
    minted = await web.post(f"{MG}/sso/alpha/token", headers={"X-CSRF-Token": csrf})
    bearer = minted.json()["accessToken"]
    by_bearer = await sso(app).sessions.principal_for_bearer(bearer)
    by_cookie = await sso(app).sessions.principal_for_session(web.cookies[SESSION_COOKIE])

    assert (without.status_code, wrong.status_code) == (403, 403)
    assert minted.status_code == 200 and minted.json()["expiresIn"] == 300
    assert bearer.startswith("mgb_")
    assert by_bearer is not None and by_bearer == by_cookie
    assert (by_bearer.tenant_id, by_bearer.user_name, by_bearer.marketplace_role) == (TENANT, "alice", "admin")
    assert by_bearer.csrf_token == csrf
    assert await sso(app).sessions.principal_for_bearer("mgb_" + "A" * 43) is None
    assert await sso(app).sessions.principal_for_session(web.cookies[SESSION_COOKIE] + "x") is None
