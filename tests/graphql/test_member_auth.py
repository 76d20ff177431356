"""Members through SSO: the session cookie needs the CSRF header, a bearer token does not, and
the marketplace decides (now, not at login) who is a tenant admin, an ordinary member, or nobody."""

import dataclasses
from typing import Any

import pytest
from starlette.applications import Starlette

from gateway.settings import Settings
from gateway.store import Store
from tenants.role_models import MemberRoleGrant
from tests.conftest import Marketplace
from tests.fakes import Behaviour
from tests.graphql.conftest import FakeMemberSessions, GraphQL, codes, rows, serving
from tests.graphql.organizations import TENANT_A, kit, seed_organizations
from tests.kit.helpers import auth_sync, user

pytestmark = pytest.mark.anyio

VIEWER = """{ viewer { kind actor canWrite products { slug }
  tenant { product tenantId name }
  member { userName marketplaceRole effectiveRoles } } }"""
GRANT = """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename
  ... on MemberRolesGrantSuccess { changedGrants } ... on Error { code } } }"""


@pytest.fixture
async def seeded(app: Starlette, marketplace: Marketplace) -> None:
    await seed_organizations(app, marketplace)


async def test_a_tenant_admin_with_cookie_and_csrf_header_is_the_tenant_admin(
    gql: GraphQL, sessions: FakeMemberSessions, seeded: None
) -> None:
    login = sessions.login("alpha", TENANT_A, "boss")
    body = await gql(VIEWER, headers=login.cookie_headers())
    assert body == {
        "data": {
            "viewer": {
                "kind": "TENANT_ADMIN",
                "actor": f"member:alpha:{TENANT_A}:boss",
                "canWrite": True,
                "products": [{"slug": "alpha"}],
                "tenant": {"product": "alpha", "tenantId": TENANT_A, "name": "Alpha Buyer"},
                "member": {"userName": "boss", "marketplaceRole": "ADMIN", "effectiveRoles": ["viewer", "editor"]},
            }
        }
    }


async def test_an_ordinary_member_reads_only_themselves(
    gql: GraphQL, sessions: FakeMemberSessions, seeded: None
) -> None:
    login = sessions.login("alpha", TENANT_A, "ann", role="user")
    body = await gql(VIEWER, headers=login.bearer_headers())
    assert body["data"]["viewer"] == {
        "kind": "MEMBER",
        "actor": f"member:alpha:{TENANT_A}:ann",
        "canWrite": False,
        "products": [{"slug": "alpha"}],
        "tenant": None,
        "member": {"userName": "ann", "marketplaceRole": "USER", "effectiveRoles": ["viewer"]},
    }


@pytest.mark.parametrize("csrf", ["", "wrong-token"])
async def test_a_cookie_without_the_right_csrf_header_is_refused_and_changes_nothing(
    app: Starlette, gql: GraphQL, sessions: FakeMemberSessions, seeded: None, csrf: str
) -> None:
    login = sessions.login("alpha", TENANT_A, "boss")
    [tenant] = [
        row for row in await _tenants(app) if (row.product, row.tenant_id, row.is_test) == ("alpha", TENANT_A, False)
    ]
    headers = login.cookie_headers(csrf=csrf)
    if not csrf:
        del headers["X-CSRF-Token"]
    variables = {"input": {"tenant": _tenant_id(tenant.id), "roles": ["auditor"], "members": ["ann"]}}
    body = await gql(GRANT, variables, headers=headers)
    assert body["data"] is None
    assert codes(body) == ["CSRF_FAILED"]
    assert await rows(app, MemberRoleGrant) == []
    # the same request with the header goes through
    done = await gql(GRANT, variables, headers=login.cookie_headers())
    assert done["data"]["memberRolesGrant"] == {"__typename": "MemberRolesGrantSuccess", "changedGrants": 1}


async def test_a_bearer_token_wins_over_a_cookie_and_needs_no_csrf_header(
    gql: GraphQL, sessions: FakeMemberSessions, seeded: None
) -> None:
    admin = sessions.login("alpha", TENANT_A, "boss")
    member = sessions.login("alpha", TENANT_A, "ann", role="user")
    headers = {**member.cookie_headers(csrf="not-checked-here"), **admin.bearer_headers()}
    body = await gql("{ viewer { kind actor } }", headers=headers)
    assert body["data"]["viewer"] == {"kind": "TENANT_ADMIN", "actor": f"member:alpha:{TENANT_A}:boss"}
    assert sessions.asked == ["bearer"]


@pytest.mark.parametrize("how", ["cookie", "bearer"])
async def test_an_unknown_or_ended_session_is_unauthenticated(
    gql: GraphQL, sessions: FakeMemberSessions, seeded: None, how: str
) -> None:
    login = sessions.login("alpha", TENANT_A, "boss")
    sessions.logout(login)
    headers = login.cookie_headers() if how == "cookie" else login.bearer_headers()
    body = await gql(VIEWER, headers=headers)
    assert body["data"] is None
    assert codes(body) == ["UNAUTHENTICATED"]


async def test_the_marketplace_decides_now_not_at_login(
    gql: GraphQL, marketplace: Marketplace, sessions: FakeMemberSessions, seeded: None
) -> None:
    # Given an admin's session (the session still says "admin" throughout)
    login = sessions.login("alpha", TENANT_A, "boss")
    assert (await gql("{ viewer { kind } }", headers=login.cookie_headers()))["data"]["viewer"][
        "kind"
    ] == "TENANT_ADMIN"

    # When the buyer makes them an ordinary user, they are an ordinary member at once
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 2, [user("boss", org="1", role="user")]))
    assert (await gql("{ viewer { kind } }", headers=login.cookie_headers()))["data"]["viewer"]["kind"] == "MEMBER"

    # And when the buyer revokes them, they are nobody
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 3, [user("boss", org="1")]))
    body = await gql("{ viewer { kind } }", headers=login.cookie_headers())
    assert codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "the member is no longer authorized for the product"


async def test_a_disabled_member_or_an_unknown_product_gets_nothing(
    gql: GraphQL, sessions: FakeMemberSessions, seeded: None
) -> None:
    for login in (
        sessions.login("alpha", TENANT_A, "dan", role="user"),  # authorized, disabled
        sessions.login("gamma", TENANT_A, "boss"),  # no such product
        sessions.login("alpha", TENANT_A, "boss", is_test=True),  # the debug data has no such member
    ):
        assert codes(await gql("{ viewer { kind } }", headers=login.bearer_headers())) == ["UNAUTHENTICATED"]


async def test_without_sso_a_session_cookie_is_refused(app: Starlette, gql: GraphQL, seeded: None) -> None:
    app.state.graphql_host = dataclasses.replace(app.state.graphql_host, member_sessions=None)
    fake = FakeMemberSessions()
    login = fake.login("alpha", TENANT_A, "boss")
    assert codes(await gql(VIEWER, headers=login.cookie_headers())) == ["UNAUTHENTICATED"]
    assert codes(await gql(VIEWER, headers=login.bearer_headers())) == ["UNAUTHENTICATED"]
    assert fake.asked == []


async def test_cors_lets_an_allowed_frontend_send_the_cookie_and_the_csrf_header(
    settings: Settings, store: Store, behaviours: dict[str, Behaviour]
) -> None:
    preflight = {
        "Origin": "https://admin.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-csrf-token,content-type",
    }
    async with serving(settings, store, behaviours, cors_origins=["https://admin.example.com"]) as client:
        allowed = await client.options("/graphql", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://admin.example.com"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "x-csrf-token" in allowed.headers["access-control-allow-headers"].lower()
        refused = await client.options("/graphql", headers={**preflight, "Origin": "https://evil.example.com"})
        assert refused.status_code == 400


async def _tenants(app: Starlette) -> list[Any]:
    from tenants.directory_models import DirectoryTenant

    return await rows(app, DirectoryTenant)


def _tenant_id(row_id: int | None) -> str:
    from strawberry.relay import GlobalID

    return str(GlobalID(type_name="Tenant", node_id=str(row_id)))
