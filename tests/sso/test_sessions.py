"""Sessions after login: renewal while used, and every way they end (revocation through the
Kit, a disabled member, an unbound tenant, refused renewal, time), across replicas."""

import httpx
import pytest
from starlette.applications import Starlette

from gateway.adapters.contract import SessionEndReason
from gateway.simulator.identity import TOKEN_PATH, IdentityDirectory
from graphql_api.principals import SESSION_COOKIE
from tests.conftest import FrozenClock, Marketplace
from tests.fakes import Behaviour
from tests.kit.helpers import auth_sync, tenant_sync, user
from tests.sso.conftest import AppFactory
from tests.sso.helpers import (
    MG,
    TENANT,
    MovableClock,
    browser,
    callback_from_button,
    callback_from_workbench,
    sign_in_at_identity,
    sso,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bound")]


async def log_in(app: Starlette, identity_app: Starlette, directory: IdentityDirectory, name: str) -> httpx.AsyncClient:
    client = browser(app, identity_app)
    sign_in_at_identity(client, directory, name)
    landed = await client.get(await callback_from_workbench(client))
    assert landed.status_code == 303, landed.text
    return client


async def session_status(client: httpx.AsyncClient) -> int:
    return (await client.get(f"{MG}/sso/alpha/session")).status_code


async def test_revocation_through_auth_sync_ends_the_members_sessions(
    app: Starlette,
    identity_app: Starlette,
    directory: IdentityDirectory,
    marketplace: Marketplace,
    behaviours: dict[str, Behaviour],
) -> None:
    # given alice has two sessions (one with an admin-frontend bearer) and bob one
    alice_laptop = await log_in(app, identity_app, directory, "alice")
    alice_phone = await log_in(app, identity_app, directory, "alice")
    bob = await log_in(app, identity_app, directory, "bob")
    csrf = (await alice_laptop.get(f"{MG}/sso/alpha/session")).json()["csrfToken"]
    bearer = (await alice_laptop.post(f"{MG}/sso/alpha/token", headers={"X-CSRF-Token": csrf})).json()["accessToken"]

    # when the buyer revokes alice's authorization
    answer = await marketplace.kit("alpha", "authSync", auth_sync(TENANT, 3, [user("alice")]))

    # then, by the time the marketplace is answered, her sessions are over and bob's is not
    assert answer.json()["resultCode"] == "000000"
    assert [await session_status(alice_laptop), await session_status(alice_phone)] == [401, 401]
    assert await sso(app).sessions.principal_for_bearer(bearer) is None
    assert await sso(app).sessions.principal_for_session(alice_laptop.cookies[SESSION_COOKIE]) is None
    assert await session_status(bob) == 200
    ends = behaviours["alpha"].session_ends
    assert sorted((end.member.user_name, end.reason) for end in ends) == [("alice", SessionEndReason.REVOKED)] * 2
    for client in (alice_laptop, alice_phone, bob):
        await client.aclose()


async def test_disabling_or_changing_a_member_ends_their_sessions(
    app: Starlette, identity_app: Starlette, directory: IdentityDirectory, marketplace: Marketplace
) -> None:
    alice = await log_in(app, identity_app, directory, "alice")
    bob = await log_in(app, identity_app, directory, "bob")

    await marketplace.kit("alpha", "authSync", auth_sync(TENANT, 2, [user("alice", role="user")]))
    await marketplace.kit("alpha", "authSync", auth_sync(TENANT, 2, [user("bob", enable="false")]))

    assert [await session_status(alice), await session_status(bob)] == [401, 401]
    # alice signs in again with her new role; bob cannot
    again = await log_in(app, identity_app, directory, "alice")
    assert (await again.get(f"{MG}/sso/alpha/session")).json()["role"] == "user"
    for client in (alice, bob, again):
        await client.aclose()


async def test_unbinding_the_tenant_ends_every_session_of_it(
    app: Starlette, identity_app: Starlette, directory: IdentityDirectory, marketplace: Marketplace
) -> None:
    alice = await log_in(app, identity_app, directory, "alice")
    bob = await log_in(app, identity_app, directory, "bob")

    await marketplace.kit("alpha", "tenantSync", tenant_sync(TENANT, 0))

    assert [await session_status(alice), await session_status(bob)] == [401, 401]
    for client in (alice, bob):
        await client.aclose()


async def test_used_sessions_renew_their_tokens_before_expiry(
    app: Starlette, identity_app: Starlette, directory: IdentityDirectory, clock: FrozenClock
) -> None:
    alice = await log_in(app, identity_app, directory, "alice")
    ref = sso(app).sessions.ref_of_cookie(alice.cookies[SESSION_COOKIE])
    assert ref is not None
    first = await sso(app).sessions.book.get(ref)
    assert first is not None

    clock.advance(7200 - 600)
    untouched = await session_status(alice)
    refreshes_early = directory.stats.count(TOKEN_PATH)
    clock.advance(400)  # within the 300 s margin of the access token's expiry
    renewed = await session_status(alice)
    again = await session_status(alice)
    second = await sso(app).sessions.book.get(ref)

    assert (untouched, renewed, again) == (200, 200, 200)
    assert refreshes_early == 1  # the code exchange only
    assert directory.stats.count(TOKEN_PATH) == 2  # one renewal, not one per request
    assert second is not None and second.access_expires_at == first.access_expires_at + 7200 - 200
    assert second.sealed_tokens != first.sealed_tokens
    await alice.aclose()


async def test_renewal_failures(
    app: Starlette,
    identity_app: Starlette,
    directory: IdentityDirectory,
    clock: FrozenClock,
    identity_clock: MovableClock,
    behaviours: dict[str, Behaviour],
) -> None:
    alice = await log_in(app, identity_app, directory, "alice")
    bob = await log_in(app, identity_app, directory, "bob")

    # a passing failure while the access token is still valid: the session goes on
    directory.faults.token_status = 500
    clock.advance(7200 - 100)
    kept = await session_status(alice)
    # once the access token has expired it cannot: the session ends
    clock.advance(200)
    ended = await session_status(alice)
    # a refresh token the identity domain refuses ends the session at once
    directory.faults.reset()
    identity_clock.advance(31 * 86400)
    refused = await session_status(bob)

    assert (kept, ended, refused) == (200, 401, 401)
    reasons = [(end.member.user_name, end.reason) for end in behaviours["alpha"].session_ends]
    assert reasons == [("alice", SessionEndReason.REFRESH_FAILED), ("bob", SessionEndReason.REFRESH_FAILED)]
    for client in (alice, bob):
        await client.aclose()


async def test_a_session_ends_when_its_time_is_up(
    app: Starlette, identity_app: Starlette, directory: IdentityDirectory, clock: FrozenClock
) -> None:
    alice = await log_in(app, identity_app, directory, "alice")
    directory.rotate_refresh_tokens = False

    clock.advance(8 * 3600)

    assert await session_status(alice) == 401
    await alice.aclose()


async def test_a_new_sign_in_replaces_the_browsers_session(
    app: Starlette, identity_app: Starlette, directory: IdentityDirectory
) -> None:
    client = await log_in(app, identity_app, directory, "alice")
    first = client.cookies[SESSION_COOKIE]

    sign_in_at_identity(client, directory, "bob")
    await client.get(await callback_from_workbench(client))

    assert await sso(app).sessions.principal_for_session(first) is None
    assert (await client.get(f"{MG}/sso/alpha/session")).json()["userName"] == "bob"
    await client.aclose()


async def test_a_flow_started_on_one_replica_finishes_on_another(
    app: Starlette, app_factory: AppFactory, identity_app: Starlette, directory: IdentityDirectory
) -> None:
    async with app_factory() as replica, browser(app, identity_app) as one, browser(replica, identity_app) as other:
        sign_in_at_identity(one, directory, "alice")
        location = await callback_from_button(one)  # started on `app`
        other.cookies = one.cookies
        landed = await other.get(location)  # finished on `replica`
        one.cookies = other.cookies
        seen_by_first = await one.get(f"{MG}/sso/alpha/session")

    assert landed.status_code == 303
    assert seen_by_first.status_code == 200 and seen_by_first.json()["userName"] == "alice"
