"""Reading buyer organizations: the department tree, members with filters, search and paging, their
grants and effective roles, as a tenant admin (their tenant) and an operator (their products)."""

from typing import Any

import pytest
from starlette.applications import Starlette

from tests.conftest import Marketplace
from tests.graphql.conftest import FakeMemberSessions, GraphQL, MemberLogin, Tokens, codes, seed_instance
from tests.graphql.organizations import TENANT_A, TENANT_B, Organizations, kit, seed_organizations
from tests.kit.helpers import auth_sync, tenant_sync, user

pytestmark = pytest.mark.anyio

TREE = """query($product: String!, $tenantId: String!) { tenant(product: $product, tenantId: $tenantId) {
  departments { orgCode orgName parentCode parent { orgCode } grants { role } } } }"""
MEMBERS = """query($product: String!, $tenantId: String!, $first: Int!, $after: String, $filter: MemberFilter) {
  tenant(product: $product, tenantId: $tenantId) {
    members(first: $first, after: $after, filter: $filter) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { node { userName } } } } }"""


@pytest.fixture
async def orgs(app: Starlette, marketplace: Marketplace) -> Organizations:
    return await seed_organizations(app, marketplace)


@pytest.fixture
def boss(sessions: FakeMemberSessions, orgs: Organizations) -> MemberLogin:
    return sessions.login("alpha", TENANT_A, "boss")


def user_names(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    return [edge["node"]["userName"] for edge in body["data"]["tenant"]["members"]["edges"]]


async def members(gql: GraphQL, login: MemberLogin, first: int = 50, **filter: Any) -> list[str]:
    variables = {"product": "alpha", "tenantId": TENANT_A, "first": first, "filter": filter or None}
    return user_names(await gql(MEMBERS, variables, headers=login.cookie_headers()))


async def test_the_department_tree(gql: GraphQL, boss: MemberLogin) -> None:
    body = await gql(TREE, {"product": "alpha", "tenantId": TENANT_A}, headers=boss.cookie_headers())
    assert body["data"]["tenant"]["departments"] == [
        {"orgCode": "1", "orgName": "Head office", "parentCode": None, "parent": None, "grants": []},
        {"orgCode": "2", "orgName": "Sales", "parentCode": "1", "parent": {"orgCode": "1"}, "grants": []},
        {"orgCode": "3", "orgName": "Sales East", "parentCode": "2", "parent": {"orgCode": "2"}, "grants": []},
        {"orgCode": "4", "orgName": "Support", "parentCode": "1", "parent": {"orgCode": "1"}, "grants": []},
    ]


async def test_members_are_paged_in_user_name_order(gql: GraphQL, boss: MemberLogin) -> None:
    variables: dict[str, Any] = {"product": "alpha", "tenantId": TENANT_A, "first": 3}
    first = await gql(MEMBERS, variables, headers=boss.cookie_headers())
    connection = first["data"]["tenant"]["members"]
    assert (user_names(first), connection["totalCount"]) == (["ann", "bob", "boss"], 7)
    assert connection["pageInfo"]["hasNextPage"] is True and connection["pageInfo"]["hasPreviousPage"] is False
    variables["after"] = connection["pageInfo"]["endCursor"]
    second = await gql(MEMBERS, variables, headers=boss.cookie_headers())
    assert user_names(second) == ["cat", "dan", "eve"]
    variables["after"] = second["data"]["tenant"]["members"]["pageInfo"]["endCursor"]
    last = await gql(MEMBERS, variables, headers=boss.cookie_headers())
    assert user_names(last) == ["fay"]
    assert last["data"]["tenant"]["members"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"orgCode": "2"}, ["ann", "bob", "dan", "eve"]),
        ({"orgCode": "2", "includeSubDepartments": False}, ["ann", "eve"]),
        ({"orgCode": "9"}, ["fay"]),  # a department that has not arrived
        ({"marketplaceRole": "ADMIN"}, ["boss"]),
        ({"marketplaceRole": "USER", "orgCode": "3"}, ["bob", "dan"]),
        ({"authorized": False}, ["eve"]),
        ({"enabled": False}, ["dan", "eve"]),
        ({"enabled": True, "orgCode": "1"}, ["ann", "bob", "boss", "cat"]),
        ({"search": "AN"}, ["ann", "dan"]),
        ({"search": "%"}, []),
        ({"productRole": "editor"}, ["boss"]),
        ({"productRole": "viewer"}, ["ann", "bob", "boss", "cat", "fay"]),
        ({"productRole": "approver"}, []),
        ({"productRole": "not-a-role"}, []),
    ],
)
async def test_member_filters(gql: GraphQL, boss: MemberLogin, filter: dict[str, Any], expected: list[str]) -> None:
    assert await members(gql, boss, **filter) == expected


async def test_total_count_follows_the_filter(gql: GraphQL, boss: MemberLogin) -> None:
    variables = {"product": "alpha", "tenantId": TENANT_A, "first": 1, "filter": {"orgCode": "2"}}
    body = await gql(MEMBERS, variables, headers=boss.cookie_headers())
    assert (user_names(body), body["data"]["tenant"]["members"]["totalCount"]) == (["ann"], 4)


async def test_the_whole_tenants_total_follows_every_sync_that_adds_or_removes_members(
    gql: GraphQL, marketplace: Marketplace, tokens: Tokens, orgs: Organizations
) -> None:
    async def listed_and_counted() -> tuple[int, int]:
        variables = {"product": "alpha", "tenantId": TENANT_A, "first": 100}
        body = await gql(MEMBERS, variables, token=tokens.alpha_read)
        return len(user_names(body)), body["data"]["tenant"]["members"]["totalCount"]

    assert await listed_and_counted() == (7, 7)
    steps: list[tuple[int, dict[str, object]]] = [
        (1, user("gus", org="4")),  # a new member
        (1, user("gus", org="2", role="admin")),  # the same member changed
        (0, {"userName": "cat"}),  # removed from the enterprise
        (0, {"userName": "cat"}),  # removed again: nothing changes
        (3, {"userName": "ann"}),  # only the authorization revoked: still a member
        (1, user("cat", org="4")),  # back after the removal
        (0, {"userName": "nobody"}),  # an unknown member
    ]
    seen = []
    for flag, member in steps:
        await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, flag, [member]))
        seen.append(await listed_and_counted())
    assert seen == [(8, 8), (8, 8), (7, 7), (7, 7), (7, 7), (8, 8), (8, 8)]
    # Unbinding forgets the members (and their count); a new binding starts from none.
    await kit(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 0, code="alpha-buyer", name="Alpha Buyer"))
    assert await listed_and_counted() == (0, 0)
    await kit(marketplace, "alpha", "tenantSync", tenant_sync(TENANT_A, 1, code="alpha-buyer", name="Alpha Buyer"))
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("zed", org="1")]))
    assert await listed_and_counted() == (1, 1)
    # The other copies of the tenant kept their own counts.
    body = await gql(MEMBERS, {"product": "beta", "tenantId": TENANT_A, "first": 100}, token=tokens.beta_write)
    assert body["data"]["tenant"]["members"]["totalCount"] == 3


async def test_removed_members_are_listed_only_when_asked(
    gql: GraphQL, marketplace: Marketplace, boss: MemberLogin
) -> None:
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 0, [{"userName": "cat"}]))
    assert "cat" not in await members(gql, boss)
    assert "cat" in await members(gql, boss, includeRemoved=True)
    body = await gql(
        """query($t: String!) { tenant(product: "alpha", tenantId: $t) {
          member(userName: "cat") { removed authorized effectiveRoles } } }""",
        {"t": TENANT_A},
        headers=boss.cookie_headers(),
    )
    assert body["data"]["tenant"]["member"] == {"removed": True, "authorized": False, "effectiveRoles": []}


async def test_a_member_with_everything_a_frontend_shows(gql: GraphQL, boss: MemberLogin) -> None:
    body = await gql(
        """query($t: String!) { tenant(product: "alpha", tenantId: $t) { member(userName: "dan") {
          userName name orgCode departmentName department { orgName } marketplaceRole authorized enabled removed
          grants { role } inheritedGrants { role } effectiveRoles } } }""",
        {"t": TENANT_A},
        headers=boss.cookie_headers(),
    )
    assert body["data"]["tenant"]["member"] == {
        "userName": "dan",
        "name": "Dan",
        "orgCode": "3",
        "departmentName": "Sales East",
        "department": {"orgName": "Sales East"},
        "marketplaceRole": "USER",
        "authorized": True,
        "enabled": False,
        "removed": False,
        "grants": [],
        "inheritedGrants": [],
        "effectiveRoles": [],  # disabled: no roles, not even the default
    }


async def test_bad_member_cursors_are_the_clients_error(gql: GraphQL, boss: MemberLogin) -> None:
    for after in ("not a cursor", "SW5zdGFuY2U6MQ==", "Y3Vyc29yOjE="):
        variables = {"product": "alpha", "tenantId": TENANT_A, "first": 5, "after": after}
        body = await gql(MEMBERS, variables, headers=boss.cookie_headers())
        assert codes(body) == ["BAD_USER_INPUT"], after
    body = await gql(MEMBERS, {"product": "alpha", "tenantId": TENANT_A, "first": 101}, headers=boss.cookie_headers())
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_operators_list_the_tenants_of_their_products(gql: GraphQL, tokens: Tokens, orgs: Organizations) -> None:
    query = """query($filter: TenantFilter) { tenants(filter: $filter) { totalCount
      edges { node { product tenantId isTest name bound roles { name defaultFor } } } } }"""
    body = await gql(query, token=tokens.alpha_read)
    listed = [(edge["node"]["tenantId"], edge["node"]["name"]) for edge in body["data"]["tenants"]["edges"]]
    expected = [(TENANT_A, "Bravo Debug"), (TENANT_B, "Bravo Corp"), (TENANT_A, "Alpha Buyer")]
    assert (listed, body["data"]["tenants"]["totalCount"]) == (expected, 3)  # the debug data is a tenant of its own
    real = await gql(query, {"filter": {"isTest": False}}, token=tokens.alpha_read)
    assert real["data"]["tenants"]["totalCount"] == 2
    assert body["data"]["tenants"]["edges"][0]["node"]["roles"] == [
        {"name": "viewer", "defaultFor": ["ADMIN", "USER"]},
        {"name": "editor", "defaultFor": ["ADMIN"]},
        {"name": "approver", "defaultFor": []},
        {"name": "auditor", "defaultFor": []},
    ]
    bravo = await gql(query, {"filter": {"search": "BRAVO", "isTest": False}}, token=tokens.alpha_read)
    assert [edge["node"]["tenantId"] for edge in bravo["data"]["tenants"]["edges"]] == [TENANT_B]
    beta = await gql(query, {"filter": {"products": ["beta"]}}, token=tokens.alpha_read)
    assert beta["data"]["tenants"] == {"totalCount": 0, "edges": []}


async def test_operators_read_members_and_the_tenants_instance(
    app: Starlette, gql: GraphQL, tokens: Tokens, boss: MemberLogin
) -> None:
    await seed_instance(app, "alpha", "inst-1")
    query = """query($t: String!) { tenant(product: "alpha", tenantId: $t) { instance { instanceId status }
      members(first: 2, filter: {productRole: "editor"}) { edges { node { userName effectiveRoles } } } } }"""
    body = await gql(query, {"t": TENANT_A}, token=tokens.alpha_read)
    assert body["data"]["tenant"] == {
        "instance": {"instanceId": "inst-1", "status": "ACTIVE"},
        "members": {"edges": [{"node": {"userName": "boss", "effectiveRoles": ["viewer", "editor"]}}]},
    }
    # A tenant admin does not see the operations record of their instance
    mine = await gql(query, {"t": TENANT_A}, headers=boss.cookie_headers())
    assert mine["data"]["tenant"]["instance"] is None


async def test_a_member_authorized_later_appears_with_roles(
    gql: GraphQL, marketplace: Marketplace, boss: MemberLogin
) -> None:
    await kit(marketplace, "alpha", "authSync", auth_sync(TENANT_A, 1, [user("gus", org="4", role="admin")]))
    assert await members(gql, boss, productRole="editor") == ["boss", "gus"]
