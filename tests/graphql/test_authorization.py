"""The authorization matrix: every query field and mutation, for every kind of caller.

Anonymous and revoked callers get nothing. An ordinary member reads only themselves. A
tenant admin of alpha/A reaches nothing of alpha/B, of alpha/A's debug data or of beta/A, nor
any operations data; an operator token of alpha sees nothing of beta: through lists,
filters, node lookups and nested fields alike. A read token cannot change anything; a write
token and a tenant admin can, within their reach. A refusal leaves no trace.
"""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from graphql_api.schema import build_schema
from tenants.admin_models import AuditEntry
from tenants.models import InstanceStatus, Job, JobState
from tenants.role_models import MemberRoleGrant
from tests.conftest import Marketplace
from tests.fakes import Behaviour
from tests.graphql.conftest import (
    FakeMemberSessions,
    GraphQL,
    MemberLogin,
    Tokens,
    codes,
    rows,
    seed_call,
    seed_instance,
    seed_job,
)
from tests.graphql.organizations import TENANT_A, TENANT_B, Organizations, seed_organizations
from tests.kit.helpers import settle_events

pytestmark = pytest.mark.anyio

MEMBER_FIELDS = """id product tenantId userName name departmentName department { orgName parent { orgName } }
  grants { role subject grantedBy } inheritedGrants { role subject grantedBy } effectiveRoles"""
TENANT_FIELDS = f"""id product tenantId name roles {{ name }} instance {{ instanceId }}
  departments {{ orgCode orgName parent {{ orgName }} grants {{ role subject grantedBy }} }}
  members(first: 100) {{ totalCount edges {{ node {{ {MEMBER_FIELDS} }} }} }}"""
QUERIES: dict[str, str] = {
    "viewer": f"""{{ viewer {{ kind actor canWrite products {{ slug name adapter roles {{ name }} }}
        tenant {{ {TENANT_FIELDS} }} member {{ {MEMBER_FIELDS} }} }} }}""",
    "products": "{ products { slug name adapter } }",
    "node": f"""query($id: ID!) {{ node(id: $id) {{ id
        ... on Instance {{ product instanceId history {{ activity detail }} }}
        ... on Job {{ product tenantId instance {{ product instanceId }} }}
        ... on CallLogEntry {{ product body }}
        ... on AuditEntry {{ auditProduct: product target detail }}
        ... on Tenant {{ tenantOf: tenantId tenantName: name
          departments {{ orgCode orgName grants {{ subject grantedBy }} }}
          members(first: 100) {{ edges {{ node {{ {MEMBER_FIELDS} }} }} }} }}
        ... on Department {{ orgCode orgName departmentOf: tenantId parent {{ orgName }}
          grants {{ role subject grantedBy }} }}
        ... on Member {{ memberOf: tenantId userName memberName: name departmentName department {{ orgName }}
          grants {{ role subject grantedBy }} inheritedGrants {{ role subject grantedBy }} effectiveRoles }} }} }}""",
    "instances": """query($filter: InstanceFilter) { instances(filter: $filter) { totalCount
        edges { node { id product instanceId orderId frontEndUrl history { activity detail } } } } }""",
    "instance": """query($product: String!, $instanceId: String!) {
        instance(product: $product, instanceId: $instanceId) { product instanceId history { detail } } }""",
    "callLog": "{ callLog { totalCount edges { node { product activity body instanceId } } } }",
    "jobs": """{ jobs { totalCount edges { node { product tenantId instanceId
        instance { product instanceId history { detail } } } } } }""",
    "auditLog": "{ auditLog { totalCount edges { node { product actor target detail } } } }",
    "tenants": f"""query($filter: TenantFilter) {{ tenants(filter: $filter) {{ totalCount
        edges {{ node {{ {TENANT_FIELDS} }} }} }} }}""",
    "tenant": f"""query($product: String!, $tenantId: String!, $isTest: Boolean! = false) {{
        tenant(product: $product, tenantId: $tenantId, isTest: $isTest) {{ {TENANT_FIELDS} }} }}""",
}
MUTATIONS: dict[str, str] = {
    "jobRetry": """mutation($id: ID!) { jobRetry(id: $id) { __typename
        ... on JobRetrySuccess { job { product status } } ... on Error { code message } } }""",
    "instanceReconcile": """mutation($product: String!, $instanceId: String!) {
        instanceReconcile(product: $product, instanceId: $instanceId) { __typename
        ... on InstanceReconcileSuccess { changed instance { product instanceId } }
        ... on Error { code message } } }""",
    "memberRolesGrant": """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename
        ... on MemberRolesGrantSuccess { changedGrants tenant { tenantId name } } ... on Error { code message } } }""",
    "memberRolesRevoke": """mutation($input: MemberRolesRevokeInput!) { memberRolesRevoke(input: $input) { __typename
        ... on MemberRolesRevokeSuccess { changedGrants tenant { tenantId name } } ... on Error { code message } } }""",
}
LEAKS = ("beta", "bravo")
"""Every value of the data out of reach of alpha/A's admin and of alpha's operators contains one of these."""


@dataclass(frozen=True)
class World:
    """Alpha's and beta's data, with alpha/B and alpha/A's debug data for the tenant admin."""

    alpha_job: int
    beta_job: int
    orgs: Organizations
    beta_ids: dict[str, str]
    """One object of beta of each type, by type name."""
    bravo_ids: dict[str, str]
    """alpha/B's tenant, a department and a member."""


def global_id(type_name: str, row_id: int | None) -> str:
    return str(GlobalID(type_name=type_name, node_id=str(row_id)))


def tenant_gid(world: World, product: str, tenant_id: str) -> str:
    return global_id("Tenant", world.orgs.tenants[(product, tenant_id)])


@pytest.fixture
async def world(app: Starlette, gql: GraphQL, tokens: Tokens, marketplace: Marketplace) -> World:
    orgs = await seed_organizations(app, marketplace)
    await seed_instance(app, "alpha", "a-1")
    await seed_instance(app, "beta", "beta-1")
    # One instance id in both products: each side must see only its own record and history
    await seed_instance(app, "alpha", "same-id")
    await seed_instance(app, "beta", "same-id", app_info={"frontEndUrl": "https://beta.example.com/same-id"})
    await seed_instance(app, "beta", "only-there")
    await seed_instance(app, "beta", "inst-1", app_info={"frontEndUrl": "https://beta.example.com/inst-1"})
    await seed_call(app, "alpha", instance_id="a-1")
    await seed_call(app, "beta", activity="betaActivity", instance_id="beta-1")
    alpha_job = await seed_job(app, "alpha", "a-1", state=JobState.DEAD, attempts=25)
    # An alpha job naming an instance only beta has: its nested instance must stay hidden
    await seed_job(app, "alpha", "only-there", state=JobState.DEAD, attempts=25)
    beta_job = await seed_job(app, "beta", "beta-1", state=JobState.DEAD, attempts=25)
    beta_retry = await gql(MUTATIONS["jobRetry"], {"id": global_id("Job", beta_job)}, token=tokens.beta_write)
    assert beta_retry["data"]["jobRetry"]["__typename"] == "JobRetrySuccess"
    # Grants in beta/A (beta's ann shares her userName with alpha's) and in alpha/B, by their operators
    for token, product, tenant_id, member in (
        (tokens.beta_write, "beta", TENANT_A, "ann"),
        (tokens.alpha_write, "alpha", TENANT_B, "bravo-user"),
    ):
        grant = await gql(
            MUTATIONS["memberRolesGrant"],
            {
                "input": {
                    "tenant": global_id("Tenant", orgs.tenants[(product, tenant_id)]),
                    "roles": ["approver"],
                    "members": [member],
                    "departments": ["1"],
                    "includeSubDepartments": True,
                }
            },
            token=token,
        )
        assert grant["data"]["memberRolesGrant"]["changedGrants"] == 2, grant
    await settle_events(app)  # the Kit syncs' and the grants' events are delivered: no job moves after this
    [beta_audit] = [entry for entry in await rows(app, AuditEntry) if entry.action == "jobRetry"]
    instances = {(row.product, row.instance_id): row for row in await _instances(app)}
    calls = await gql("{ callLog { edges { node { id activity } } } }", token=tokens.beta_write)
    [beta_call] = [
        edge["node"]["id"] for edge in calls["data"]["callLog"]["edges"] if edge["node"]["activity"] == "betaActivity"
    ]
    return World(
        alpha_job=alpha_job,
        beta_job=beta_job,
        orgs=orgs,
        beta_ids={
            "Instance": global_id("Instance", instances[("beta", "beta-1")].id),
            "Job": global_id("Job", beta_job),
            "CallLogEntry": beta_call,
            "AuditEntry": global_id("AuditEntry", beta_audit.id),
            "Tenant": global_id("Tenant", orgs.tenants[("beta", TENANT_A)]),
            "Department": global_id("Department", orgs.departments[("beta", TENANT_A, "2")]),
            "Member": global_id("Member", orgs.members[("beta", TENANT_A, "ann")]),
        },
        bravo_ids={
            "Tenant": global_id("Tenant", orgs.tenants[("alpha", TENANT_B)]),
            "Department": global_id("Department", orgs.departments[("alpha", TENANT_B, "2")]),
            "Member": global_id("Member", orgs.members[("alpha", TENANT_B, "bravo-user")]),
        },
    )


@pytest.fixture
def admin(sessions: FakeMemberSessions, world: World) -> MemberLogin:
    """alpha/A's tenant admin, logged in through SSO."""
    return sessions.login("alpha", TENANT_A, "boss")


@pytest.fixture
def member(sessions: FakeMemberSessions, world: World) -> MemberLogin:
    """An ordinary member of alpha/A."""
    return sessions.login("alpha", TENANT_A, "ann", role="user")


async def _instances(app: Starlette) -> list[Any]:
    from tenants.models import Instance

    return await rows(app, Instance)


async def _snapshot(app: Starlette) -> tuple[Any, ...]:
    """What a refused mutation must leave as it was."""
    jobs = [(job.id, job.state, job.run_at, job.attempts) for job in await rows(app, Job)]
    instances = [(row.id, row.app_info, row.updated_at) for row in await _instances(app)]
    grants = [
        (row.id, row.role, row.subject_code, row.include_sub_departments) for row in await rows(app, MemberRoleGrant)
    ]
    return jobs, instances, grants, len(await rows(app, AuditEntry))


def _beta_arguments(world: World, field: str) -> dict[str, Any]:
    """Arguments that aim at beta (for alpha's operators) or at beta/A (for alpha/A's admin)."""
    role_change = {"tenant": world.beta_ids["Tenant"], "roles": ["approver"], "members": ["ann"]}
    arguments: dict[str, dict[str, Any]] = {
        "node": {"id": world.beta_ids["Instance"]},
        "instances": {"filter": None},
        "instance": {"product": "beta", "instanceId": "beta-1"},
        "tenants": {"filter": None},
        "tenant": {"product": "beta", "tenantId": TENANT_A},
        "jobRetry": {"id": world.beta_ids["Job"]},
        "instanceReconcile": {"product": "beta", "instanceId": "beta-1"},
        "memberRolesGrant": {"input": role_change},
        "memberRolesRevoke": {"input": role_change},
    }
    return arguments.get(field, {})


def _own_arguments(world: World, field: str) -> dict[str, Any]:
    """Arguments within alpha/A: what an operator of alpha or alpha/A's admin may reach."""
    role_change = {"tenant": tenant_gid(world, "alpha", TENANT_A), "roles": ["auditor"], "members": ["ann"]}
    arguments: dict[str, dict[str, Any]] = {
        "node": {"id": tenant_gid(world, "alpha", TENANT_A)},
        "instance": {"product": "alpha", "instanceId": "a-1"},
        "tenant": {"product": "alpha", "tenantId": TENANT_A},
        "jobRetry": {"id": global_id("Job", world.alpha_job)},
        "instanceReconcile": {"product": "alpha", "instanceId": "a-1"},
        "memberRolesGrant": {"input": role_change},
        "memberRolesRevoke": {"input": role_change},
    }
    return arguments.get(field, {})


def _document(field: str) -> str:
    return QUERIES.get(field) or MUTATIONS[field]


def _leaks(body: Any) -> list[str]:
    text = json.dumps(body).lower()
    return [marker for marker in LEAKS if marker in text]


EVERY_FIELD = [*QUERIES, *MUTATIONS]
OPERATIONS_FIELDS = ["instances", "instance", "callLog", "jobs", "jobRetry", "instanceReconcile"]


def test_the_matrix_covers_every_field_of_the_schema() -> None:
    schema = build_schema()._schema
    assert schema.query_type is not None and schema.mutation_type is not None
    assert set(QUERIES) == set(schema.query_type.fields)
    assert set(MUTATIONS) == set(schema.mutation_type.fields)


# -- anonymous and revoked ------------------------------------------------------------------


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_anonymous_callers_get_nothing(
    app: Starlette, gql: GraphQL, world: World, behaviours: dict[str, Behaviour], field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(_document(field), _beta_arguments(world, field))
    assert body["data"] in (None, {field: None})  # null bubbles up from non-null fields
    assert codes(body) == ["UNAUTHENTICATED"]
    assert await _snapshot(app) == before
    assert behaviours["beta"].calls["describe"] == 0


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_a_revoked_token_gets_nothing(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, field: str
) -> None:
    from tenants import admin

    async with app.state.database.transaction() as session:
        for token in await admin.list_api_tokens(session, caller=admin.Caller.system()):
            if token.name == "beta-writer":
                await admin.revoke_api_token(
                    session, caller=admin.Caller.system(), token_id=token.id or 0, now=token.created_at
                )
    before = await _snapshot(app)
    body = await gql(_document(field), _beta_arguments(world, field), token=tokens.beta_write)
    assert body["data"] in (None, {field: None})
    assert codes(body) == ["UNAUTHENTICATED"]
    assert await _snapshot(app) == before


# -- an ordinary member -----------------------------------------------------------------------


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_an_ordinary_member_reads_only_themselves(
    app: Starlette, gql: GraphQL, world: World, member: MemberLogin, field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(_document(field), _own_arguments(world, field), headers=member.cookie_headers())
    assert await _snapshot(app) == before
    if field == "products":
        assert body == {"data": {"products": [{"slug": "alpha", "name": "Alpha", "adapter": "recording"}]}}
        return
    if field != "viewer":
        assert body["data"] in (None, {field: None})
        assert codes(body) == ["FORBIDDEN"]
        return
    viewer = body["data"]["viewer"]
    assert (viewer["kind"], viewer["canWrite"], viewer["tenant"]) == ("MEMBER", False, None)
    assert viewer["member"] == {
        "id": global_id("Member", world.orgs.members[("alpha", TENANT_A, "ann")]),
        "product": "alpha",
        "tenantId": TENANT_A,
        "userName": "ann",
        "name": "Ann",
        "departmentName": "Sales",
        "department": None,  # members do not read the department tree
        "grants": [],
        "inheritedGrants": [],
        "effectiveRoles": ["viewer"],
    }


# -- a tenant admin ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", EVERY_FIELD)
async def test_a_tenant_admin_reaches_nothing_of_another_tenant_or_product(
    app: Starlette,
    gql: GraphQL,
    world: World,
    admin: MemberLogin,
    behaviours: dict[str, Behaviour],
    field: str,
) -> None:
    before = await _snapshot(app)
    attempts = [_beta_arguments(world, field)]
    if field in ("tenant", "memberRolesGrant", "memberRolesRevoke", "node"):
        bravo = {"tenant": world.bravo_ids["Tenant"], "roles": ["approver"], "members": ["bravo-user"]}
        more: dict[str, list[dict[str, Any]]] = {
            "tenant": [
                {"product": "alpha", "tenantId": TENANT_B},
                {"product": "alpha", "tenantId": TENANT_A, "isTest": True},
            ],
            "memberRolesGrant": [{"input": bravo}],
            "memberRolesRevoke": [{"input": bravo}],
            "node": [{"id": world.beta_ids[name]} for name in world.beta_ids]
            + [{"id": world.bravo_ids[name]} for name in world.bravo_ids],
        }
        attempts += more[field]
    for arguments in attempts:
        body = await gql(_document(field), arguments, headers=admin.cookie_headers())
        assert _leaks(body) == [], (arguments, body)
        if field in OPERATIONS_FIELDS:
            assert (body["data"] in (None, {field: None}), codes(body)) == (True, ["FORBIDDEN"])
        elif field in ("memberRolesGrant", "memberRolesRevoke"):
            assert body["data"][field]["code"] == "NOT_FOUND", body
        elif field in ("tenant", "node"):
            assert body == {"data": {field: None}}, arguments
        else:
            assert "errors" not in body, body
    assert await _snapshot(app) == before
    assert behaviours["beta"].calls["describe"] == behaviours["alpha"].calls["describe"] == 0


async def test_a_tenant_admin_lists_only_their_tenant(gql: GraphQL, world: World, admin: MemberLogin) -> None:
    body = await gql(QUERIES["tenants"], {"filter": {"products": ["alpha", "beta"]}}, headers=admin.cookie_headers())
    [edge] = body["data"]["tenants"]["edges"]
    assert (body["data"]["tenants"]["totalCount"], edge["node"]["tenantId"], edge["node"]["name"]) == (
        1,
        TENANT_A,
        "Alpha Buyer",
    )
    listed = {item["node"]["userName"] for item in edge["node"]["members"]["edges"]}
    assert listed == {"ann", "bob", "boss", "cat", "dan", "eve", "fay"}
    [ann] = [item["node"] for item in edge["node"]["members"]["edges"] if item["node"]["userName"] == "ann"]
    # beta's ann has grants and a department of her own: none of it shows here
    assert (ann["departmentName"], ann["grants"], ann["inheritedGrants"], ann["effectiveRoles"]) == (
        "Sales",
        [],
        [],
        ["viewer"],
    )
    assert edge["node"]["instance"] is None  # beta has an instance inst-1, alpha/A's admin sees no instance


async def test_a_tenant_admin_reads_their_tenants_audit_log_only(
    gql: GraphQL, world: World, admin: MemberLogin
) -> None:
    body = await gql(QUERIES["auditLog"], headers=admin.cookie_headers())
    assert body == {"data": {"auditLog": {"totalCount": 0, "edges": []}}}
    await gql(
        MUTATIONS["memberRolesGrant"],
        {"input": {"tenant": tenant_gid(world, "alpha", TENANT_A), "roles": ["auditor"], "members": ["cat"]}},
        headers=admin.cookie_headers(),
    )
    body = await gql(QUERIES["auditLog"], headers=admin.cookie_headers())
    assert [edge["node"]["target"] for edge in body["data"]["auditLog"]["edges"]] == [f"tenant:{TENANT_A}"]


@pytest.mark.parametrize("field", ["memberRolesGrant", "memberRolesRevoke"])
async def test_a_tenant_admin_changes_roles_in_their_tenant(
    app: Starlette, gql: GraphQL, world: World, admin: MemberLogin, field: str
) -> None:
    body = await gql(MUTATIONS[field], _own_arguments(world, field), headers=admin.cookie_headers())
    assert body["data"][field]["tenant"] == {"tenantId": TENANT_A, "name": "Alpha Buyer"}
    [entry] = [entry for entry in await rows(app, AuditEntry) if entry.actor_kind == "tenant_admin"]
    assert (entry.action, entry.product, entry.tenant_id) == (field, "alpha", TENANT_A)


# -- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", list(QUERIES))
async def test_an_alpha_token_sees_nothing_of_beta(gql: GraphQL, world: World, tokens: Tokens, field: str) -> None:
    body = await gql(_document(field), _beta_arguments(world, field), token=tokens.alpha_read)
    assert "errors" not in body, body
    assert "beta" not in json.dumps(body).lower(), body
    expected_empty = {"node": None, "instance": None, "tenant": None}
    if field in expected_empty:
        assert body["data"][field] is None


@pytest.mark.parametrize(
    "type_name", ["Instance", "Job", "CallLogEntry", "AuditEntry", "Tenant", "Department", "Member"]
)
async def test_node_lookup_of_beta_objects_finds_nothing_for_alpha(
    gql: GraphQL, world: World, tokens: Tokens, type_name: str
) -> None:
    body = await gql(QUERIES["node"], {"id": world.beta_ids[type_name]}, token=tokens.alpha_read)
    assert body == {"data": {"node": None}}
    # The same lookup by beta's own token finds it: the id is right, the scope is what hides it
    found = await gql(QUERIES["node"], {"id": world.beta_ids[type_name]}, token=tokens.beta_write)
    assert found["data"]["node"]["id"] == world.beta_ids[type_name]


async def test_filtering_for_beta_with_an_alpha_token_matches_nothing(
    gql: GraphQL, world: World, tokens: Tokens
) -> None:
    body = await gql(QUERIES["instances"], {"filter": {"products": ["beta"]}}, token=tokens.alpha_read)
    assert body == {"data": {"instances": {"totalCount": 0, "edges": []}}}
    tenants = await gql(QUERIES["tenants"], {"filter": {"products": ["beta"]}}, token=tokens.alpha_read)
    assert tenants == {"data": {"tenants": {"totalCount": 0, "edges": []}}}


async def test_nested_fields_stay_within_the_product(gql: GraphQL, world: World, tokens: Tokens) -> None:
    body = await gql(QUERIES["jobs"], token=tokens.alpha_read)
    nodes = [edge["node"] for edge in body["data"]["jobs"]["edges"]]
    by_instance = {node["instanceId"]: node["instance"] for node in nodes}
    assert by_instance["only-there"] is None  # an alpha job naming an instance id only beta has
    assert by_instance["a-1"] == {"product": "alpha", "instanceId": "a-1", "history": [{"detail": {"by": "alpha"}}]}
    same = await gql(QUERIES["instance"], {"product": "alpha", "instanceId": "same-id"}, token=tokens.alpha_read)
    assert same["data"]["instance"]["history"] == [{"detail": {"by": "alpha"}}]
    # alpha/A bought inst-1 and so did beta/A (only beta's is recorded): alpha's tenant shows none
    tenant = await gql(QUERIES["tenant"], {"product": "alpha", "tenantId": TENANT_A}, token=tokens.alpha_read)
    assert tenant["data"]["tenant"]["instance"] is None
    ann = [edge["node"] for edge in tenant["data"]["tenant"]["members"]["edges"] if edge["node"]["userName"] == "ann"]
    assert ann[0]["grants"] == [] and ann[0]["departmentName"] == "Sales"


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_a_read_token_cannot_change_anything(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, behaviours: dict[str, Behaviour], field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(MUTATIONS[field], _own_arguments(world, field), token=tokens.alpha_read)
    assert body["data"] is None
    assert codes(body) == ["FORBIDDEN"]
    assert await _snapshot(app) == before
    assert behaviours["alpha"].calls["describe"] == 0


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_an_alpha_write_token_cannot_reach_beta(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, behaviours: dict[str, Behaviour], field: str
) -> None:
    before = await _snapshot(app)
    body = await gql(MUTATIONS[field], _beta_arguments(world, field), token=tokens.alpha_write)
    assert body["data"][field] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "message": body["data"][field]["message"],
    }
    assert await _snapshot(app) == before
    assert behaviours["beta"].calls["describe"] == 0


@pytest.mark.parametrize("field", list(MUTATIONS))
async def test_a_write_token_may_act_on_its_products(
    app: Starlette, gql: GraphQL, world: World, tokens: Tokens, field: str
) -> None:
    body = await gql(MUTATIONS[field], _own_arguments(world, field), token=tokens.alpha_write)
    assert body["data"][field]["__typename"] == field[0].upper() + field[1:] + "Success", body
    audit = await rows(app, AuditEntry)
    assert [(entry.action, entry.product) for entry in audit][-1] == (field, "alpha")


async def test_instances_in_scope_are_all_listed(gql: GraphQL, world: World, tokens: Tokens) -> None:
    body = await gql(QUERIES["instances"], token=tokens.alpha_read)
    listed = sorted(edge["node"]["instanceId"] for edge in body["data"]["instances"]["edges"])
    assert (listed, body["data"]["instances"]["totalCount"]) == (["a-1", "same-id"], 2)
    assert InstanceStatus.ACTIVE  # the seeded instances are live
