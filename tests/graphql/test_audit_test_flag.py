"""The audit log marks actions on the marketplace's debug data (testFlag 1): role changes in a test
tenant, reconciling a test instance, retrying a test tenant's or instance's job. Operators filter
on it; a test tenant's admin and the real tenant's admin each see only their own entries."""

from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette
from strawberry.relay import GlobalID

from tenants import jobs
from tenants.admin_models import AuditEntry
from tenants.directory_models import DirectoryTenant
from tenants.models import Job, JobState
from tests.conftest import Marketplace
from tests.graphql.conftest import NOW, FakeMemberSessions, GraphQL, Tokens, rows, seed_instance, seed_job
from tests.graphql.organizations import TENANT_A, kit, seed_organizations
from tests.kit.helpers import auth_sync, user

pytestmark = pytest.mark.anyio

GRANT = """mutation($input: MemberRolesGrantInput!) { memberRolesGrant(input: $input) { __typename } }"""
RETRY = """mutation($id: ID!) { jobRetry(id: $id) { __typename } }"""
RECONCILE = """mutation($instanceId: String!) { instanceReconcile(product: "alpha", instanceId: $instanceId) {
  __typename } }"""
AUDIT = """query($filter: AuditLogFilter) { auditLog(filter: $filter) { totalCount
  edges { node { action target isTest } } } }"""


def gid(type_name: str, row_id: int) -> str:
    return str(GlobalID(type_name=type_name, node_id=str(row_id)))


async def tenant_gid(app: Starlette, *, is_test: bool) -> str:
    [tenant] = [
        row
        for row in await rows(app, DirectoryTenant)
        if (row.product, row.tenant_id, row.is_test) == ("alpha", TENANT_A, is_test)
    ]
    return gid("Tenant", tenant.id)


async def directory_job(app: Starlette, *, is_test: bool) -> int:
    """A dead directory event job of alpha/A (its debug copy when `is_test`)."""
    async with app.state.database.transaction() as session:
        job = await jobs.create_job(
            session,
            product="alpha",
            kind="directory_event",
            payload={"type": "tenant.changed", "tenant_id": TENANT_A, "is_test": is_test, "data": {}},
            now=NOW,
        )
        assert job.id is not None
        await session.exec(update(Job).where(col(Job.id) == job.id).values(state=JobState.DEAD, attempts=3))
        return job.id


async def audit(gql: GraphQL, filter: dict[str, Any] | None = None, **credentials: Any) -> list[tuple[str, str, bool]]:
    body = await gql(AUDIT, {"filter": filter}, **credentials)
    assert "errors" not in body, body
    log = body["data"]["auditLog"]
    assert log["totalCount"] == len(log["edges"])
    return [(edge["node"]["action"], edge["node"]["target"], edge["node"]["isTest"]) for edge in log["edges"]]


@pytest.fixture
async def acted(app: Starlette, gql: GraphQL, marketplace: Marketplace, tokens: Tokens) -> dict[str, int]:
    """One action of each kind on real data and on the debug data, by an alpha operator."""
    await seed_organizations(app, marketplace)
    debug_admin = auth_sync(TENANT_A, 1, [user("debug-boss", org="1", role="admin")], test=True)
    await kit(marketplace, "alpha", "authSync", debug_admin)
    for is_test in (False, True):
        member = "bravo-debug" if is_test else "ann"
        variables = {
            "input": {"tenant": await tenant_gid(app, is_test=is_test), "roles": ["auditor"], "members": [member]}
        }
        assert (await gql(GRANT, variables, token=tokens.alpha_write))["data"]["memberRolesGrant"]["__typename"] == (
            "MemberRolesGrantSuccess"
        )
    await seed_instance(app, "alpha", "real-1")
    await seed_instance(app, "alpha", "debug-1", is_test=True)
    ids = {
        "real instance job": await seed_job(app, "alpha", "real-1", state=JobState.DEAD, attempts=3),
        "debug instance job": await seed_job(app, "alpha", "debug-1", state=JobState.DEAD, attempts=3),
        "real directory job": await directory_job(app, is_test=False),
        "debug directory job": await directory_job(app, is_test=True),
    }
    for job in ids.values():
        assert (await gql(RETRY, {"id": gid("Job", job)}, token=tokens.alpha_write))["data"]["jobRetry"][
            "__typename"
        ] == "JobRetrySuccess"
    for instance_id in ("real-1", "debug-1"):
        body = await gql(RECONCILE, {"instanceId": instance_id}, token=tokens.alpha_write)
        assert body["data"]["instanceReconcile"]["__typename"] == "InstanceReconcileSuccess"
    return ids


async def test_actions_on_debug_data_are_marked_and_operators_filter_on_it(
    app: Starlette, gql: GraphQL, tokens: Tokens, acted: dict[str, int]
) -> None:
    marked = {
        ("memberRolesGrant", f"tenant:{TENANT_A}:test", True),
        ("memberRolesGrant", f"tenant:{TENANT_A}", False),
        ("jobRetry", f"job:{acted['real instance job']}", False),
        ("jobRetry", f"job:{acted['debug instance job']}", True),
        ("jobRetry", f"job:{acted['real directory job']}", False),
        ("jobRetry", f"job:{acted['debug directory job']}", True),
        ("instanceReconcile", "instance:real-1", False),
        ("instanceReconcile", "instance:debug-1", True),
    }
    every = await audit(gql, token=tokens.alpha_read)
    assert set(every) == marked and len(every) == len(marked)
    assert set(await audit(gql, {"isTest": True}, token=tokens.alpha_read)) == {entry for entry in marked if entry[2]}
    assert set(await audit(gql, {"isTest": False}, token=tokens.alpha_read)) == {
        entry for entry in marked if not entry[2]
    }
    stored = {(entry.action, entry.target): entry.is_test for entry in await rows(app, AuditEntry)}
    assert {(action, target): is_test for action, target, is_test in marked}.items() <= stored.items()


async def test_a_debug_tenants_admin_and_the_real_tenants_admin_see_their_own_entries_only(
    gql: GraphQL, sessions: FakeMemberSessions, acted: dict[str, int]
) -> None:
    real = sessions.login("alpha", TENANT_A, "boss")
    debug = sessions.login("alpha", TENANT_A, "debug-boss", is_test=True)
    assert await audit(gql, headers=real.cookie_headers()) == [("memberRolesGrant", f"tenant:{TENANT_A}", False)]
    assert await audit(gql, headers=debug.cookie_headers()) == [("memberRolesGrant", f"tenant:{TENANT_A}:test", True)]
    assert await audit(gql, {"isTest": True}, headers=real.cookie_headers()) == []
