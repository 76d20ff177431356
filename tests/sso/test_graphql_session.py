"""The admin API with a real SSO session: a tenant admin signs in through the identity domain, then
works in /graphql with the session cookie and its CSRF token, as an admin frontend on MarketGate's
site does (no fake sessions: the cookie is the one the callback set)."""

from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from starlette.applications import Starlette

from gateway.settings import Settings
from gateway.simulator.identity import IdentityDirectory
from graphql_api.principals import CSRF_HEADER, SESSION_COOKIE
from tenants.admin_models import AuditEntry
from tenants.role_models import MemberRoleGrant
from tests.sso.helpers import MG, TENANT, callback_from_button, sign_in_at_identity

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bound")]

MEMBERS = """query($tenantId: String!) { tenant(product: "alpha", tenantId: $tenantId) { id
  members(first: 50) { totalCount
    edges { node { userName marketplaceRole enabled effectiveRoles grants { role } } } } } }"""
GRANT = """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename
  ... on MemberRolesGrantSuccess { changedGrants affectedMembers }
  ... on Error { code message } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(
        update={"roles": ["viewer", "editor", "approver"], "default_roles": {"admin": ["editor"], "user": ["viewer"]}}
    )
    return settings.model_copy(update={"products": products})


async def rows(app: Starlette, model: Any) -> list[Any]:
    async with app.state.database.reader() as session:
        return list((await session.exec(select(model).order_by(col(model.id)))).all())


async def sign_in(web: httpx.AsyncClient, directory: IdentityDirectory, user_name: str) -> str:
    """Through the vendor's login button and the identity domain; the session's CSRF token."""
    sign_in_at_identity(web, directory, user_name)
    landed = await web.get(await callback_from_button(web, tenant=TENANT))
    assert landed.status_code == 303, landed.text
    assert web.cookies.get(SESSION_COOKIE) is not None
    session = await web.get(f"{MG}/sso/alpha/session")
    assert session.status_code == 200, session.text
    csrf: str = session.json()["csrfToken"]
    return csrf


async def graphql(web: httpx.AsyncClient, query: str, variables: dict[str, Any], *, csrf: str | None) -> dict[str, Any]:
    """POST /graphql as the frontend does: the cookie rides along; the CSRF header only if given."""
    headers = {CSRF_HEADER: csrf} if csrf is not None else {}
    response = await web.post(f"{MG}/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_member(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    edges = body["data"]["tenant"]["members"]["edges"]
    return {edge["node"].pop("userName"): edge["node"] for edge in edges}


async def test_a_tenant_admin_signed_in_through_sso_reads_members_and_grants_roles(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory
) -> None:
    # Given alice, the tenant's admin, signed in through her identity domain
    csrf = await sign_in(web, directory, "alice")

    # When her frontend lists the members with the session cookie and the CSRF token
    body = await graphql(web, MEMBERS, {"tenantId": TENANT}, csrf=csrf)

    # Then she sees her tenant's members with their roles
    assert "errors" not in body, body
    assert body["data"]["tenant"]["members"]["totalCount"] == 3
    assert by_member(body) == {
        "alice": {"marketplaceRole": "ADMIN", "enabled": True, "effectiveRoles": ["editor"], "grants": []},
        "bob": {"marketplaceRole": "USER", "enabled": True, "effectiveRoles": ["viewer"], "grants": []},
        "dave": {"marketplaceRole": "USER", "enabled": False, "effectiveRoles": [], "grants": []},
    }
    tenant = body["data"]["tenant"]["id"]

    # And a grant with the cookie but without the CSRF token is refused, with nothing applied
    grant = {"input": {"tenant": tenant, "roles": ["approver"], "members": ["bob"]}}
    refused = await graphql(web, GRANT, grant, csrf=None)
    assert refused["data"] is None
    assert [error["extensions"]["code"] for error in refused["errors"]] == ["CSRF_FAILED"]
    assert await rows(app, MemberRoleGrant) == []

    # And with it, the grant applies, is audited as hers from her address, and shows in the list
    done = await graphql(web, GRANT, grant, csrf=csrf)
    assert done["data"]["memberRolesGrant"] == {
        "__typename": "MemberRolesGrantSuccess",
        "changedGrants": 1,
        "affectedMembers": 1,
    }
    [entry] = [entry for entry in await rows(app, AuditEntry) if entry.action == "memberRolesGrant"]
    assert (entry.actor_kind, entry.actor, entry.tenant_id, entry.client_address) == (
        "tenant_admin",
        f"member:alpha:{TENANT}:alice",
        TENANT,
        "203.0.113.7",
    )
    after = by_member(await graphql(web, MEMBERS, {"tenantId": TENANT}, csrf=csrf))
    assert after["bob"]["effectiveRoles"] == ["viewer", "approver"]
    assert after["bob"]["grants"] == [{"role": "approver"}]


async def test_an_ordinary_member_signed_in_through_sso_reads_only_themselves(
    app: Starlette, web: httpx.AsyncClient, directory: IdentityDirectory
) -> None:
    csrf = await sign_in(web, directory, "bob")
    body = await graphql(web, MEMBERS, {"tenantId": TENANT}, csrf=csrf)
    assert (body["data"], [error["extensions"]["code"] for error in body["errors"]]) == (
        {"tenant": None},
        ["FORBIDDEN"],
    )
    viewer = await graphql(web, "{ viewer { kind member { userName effectiveRoles } } }", {}, csrf=csrf)
    assert viewer["data"]["viewer"] == {"kind": "MEMBER", "member": {"userName": "bob", "effectiveRoles": ["viewer"]}}
    grant = {"input": {"tenant": "VGVuYW50OjE=", "roles": ["approver"], "members": ["bob"]}}
    refused = await graphql(web, GRANT, grant, csrf=csrf)
    assert refused["data"] is None and [error["extensions"]["code"] for error in refused["errors"]] == ["FORBIDDEN"]
    assert await rows(app, MemberRoleGrant) == []
