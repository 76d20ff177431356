"""The services themselves hold callers to their scope, whatever a resolver does."""

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette

from tenants import admin, operations, roles
from tenants.admin import AuditFilter, Caller, CallerKind, PageRequest
from tenants.admin_models import AuditEntry
from tenants.errors import InstanceNotFoundError
from tenants.models import CallLogEntry, Instance, Job, JobState
from tests.graphql.conftest import rows, seed_call, seed_instance, seed_job

pytestmark = pytest.mark.anyio

ALPHA_READER = Caller(kind=CallerKind.OPERATOR, actor="token:1:r", products=frozenset({"alpha"}))
ALPHA_WRITER = Caller(kind=CallerKind.OPERATOR, actor="token:2:w", products=frozenset({"alpha"}), can_write=True)
EVERY_PAGE = PageRequest(first=100)


async def _everything(app: Starlette, caller: Caller) -> set[str]:
    """The products of every row of operations data and audit log the caller can list."""
    async with app.state.database.reader() as session:
        found: list[Instance | CallLogEntry | Job | AuditEntry] = [
            *(
                await operations.list_instances(
                    session, caller=caller, wanted=operations.InstanceFilter(), page=EVERY_PAGE
                )
            ).items,
            *(
                await operations.list_call_log_entries(
                    session, caller=caller, wanted=operations.CallLogFilter(), page=EVERY_PAGE
                )
            ).items,
            *(await operations.list_jobs(session, caller=caller, wanted=operations.JobFilter(), page=EVERY_PAGE)).items,
            *(await admin.list_audit_entries(session, caller=caller, wanted=AuditFilter(), page=EVERY_PAGE)).items,
        ]
        histories = await operations.list_instance_histories(
            session, caller=caller, keys=[("alpha", "i-1"), ("beta", "i-1")]
        )
        by_keys = await operations.list_instances_by_keys(
            session, caller=caller, keys=[("alpha", "i-1"), ("beta", "i-1")]
        )
    return {str(row.product) for row in found} | {key[0] for key in histories} | {key[0] for key in by_keys}


@pytest.fixture
async def seeded(app: Starlette) -> None:
    for product in ("alpha", "beta"):
        await seed_instance(app, product, "i-1")
        await seed_call(app, product, instance_id="i-1")
        job = await seed_job(app, product, "i-1", state=JobState.DEAD, attempts=3)
        async with app.state.database.transaction() as session:
            writer = Caller(kind=CallerKind.OPERATOR, actor="w", products=frozenset({product}), can_write=True)
            await operations.retry_job(session, caller=writer, job_id=job, now=datetime.now(UTC))


async def test_operators_read_only_their_products(app: Starlette, seeded: None) -> None:
    assert await _everything(app, ALPHA_READER) == {"alpha"}
    both = Caller(kind=CallerKind.OPERATOR, actor="b", products=frozenset({"alpha", "beta"}))
    assert await _everything(app, both) == {"alpha", "beta"}


@pytest.mark.parametrize(
    "caller",
    [
        Caller.anonymous(),
        Caller(kind=CallerKind.OPERATOR, actor="no products"),
        # not an operator, held to one tenant (as tenant admins will be): no operations data,
        # and only that tenant's audit entries
        Caller(kind=CallerKind.SYSTEM, actor="tenant-held", products=frozenset({"alpha"}), tenant_id="t-9"),
    ],
)
async def test_callers_without_operator_scope_read_nothing(app: Starlette, seeded: None, caller: Caller) -> None:
    assert await _everything(app, caller) == set()


async def test_a_read_caller_changes_nothing(app: Starlette, seeded: None) -> None:
    before = [(job.id, job.state, job.run_at) for job in await rows(app, Job)]
    audit_before = len(await rows(app, AuditEntry))
    [alpha_job] = [job.id for job in await rows(app, Job) if job.product == "alpha"]
    assert alpha_job is not None
    async with app.state.database.transaction() as session:
        with pytest.raises(admin.AccessDeniedError):
            await operations.retry_job(session, caller=ALPHA_READER, job_id=alpha_job, now=datetime.now(UTC))
        with pytest.raises(admin.AccessDeniedError):
            await operations.repair_instance_app_info(
                session, caller=ALPHA_READER, product="alpha", instance_id="i-1", app_info={}, now=datetime.now(UTC)
            )
    assert [(job.id, job.state, job.run_at) for job in await rows(app, Job)] == before
    assert len(await rows(app, AuditEntry)) == audit_before


async def test_a_write_caller_cannot_reach_another_product(app: Starlette, seeded: None) -> None:
    [beta_job] = [job.id for job in await rows(app, Job) if job.product == "beta"]
    assert beta_job is not None
    async with app.state.database.transaction() as session:
        with pytest.raises(operations.JobNotFoundError):
            await operations.retry_job(session, caller=ALPHA_WRITER, job_id=beta_job, now=datetime.now(UTC))
        with pytest.raises(InstanceNotFoundError):
            await operations.repair_instance_app_info(
                session, caller=ALPHA_WRITER, product="beta", instance_id="i-1", app_info={}, now=datetime.now(UTC)
            )


async def test_the_organization_services_hold_each_caller_to_its_reach(app: Starlette, marketplace: Any) -> None:
    from tenants import organization
    from tenants.admin import TenantScope
    from tests.graphql.organizations import TENANT_A, TENANT_B, seed_organizations

    orgs = await seed_organizations(app, marketplace)
    alpha_a, alpha_b, beta_a = (
        TenantScope("alpha", TENANT_A),
        TenantScope("alpha", TENANT_B),
        TenantScope("beta", TENANT_A),
    )
    callers = {
        "anonymous": Caller.anonymous(),
        "alpha operator": ALPHA_READER,
        "alpha/A admin": Caller.member_of(alpha_a, user_name="boss", is_admin=True),
        "alpha/A member": Caller.member_of(alpha_a, user_name="ann", is_admin=False),
    }
    reached: dict[str, set[tuple[str, str, str]]] = {}
    async with app.state.database.reader() as session:
        for label, caller in callers.items():
            seen: set[tuple[str, str, str]] = set()
            for scope in (alpha_a, alpha_b, beta_a):
                if await organization.get_tenant(session, caller=caller, scope=scope) is not None:
                    seen.add((scope.product, scope.tenant_id, "tenant"))
                for department in await organization.list_departments(session, caller=caller, scope=scope):
                    seen.add((department.product, department.tenant_id, "department"))
                page = await organization.list_members(
                    session,
                    caller=caller,
                    scope=scope,
                    wanted=organization.MemberFilter(),
                    catalog=roles.RoleCatalog(),
                    page=organization.MemberPageRequest(first=100),
                )
                seen |= {(row.member.product, row.member.tenant_id, row.member.user_name) for row in page.items}
            for (product, tenant_id, user_name), row_id in orgs.members.items():
                found = await organization.get_member_by_row_id(session, caller=caller, row_id=row_id)
                if found is not None:
                    seen.add((product, tenant_id, f"by id: {user_name}"))
            listed = await organization.list_tenants(
                session, caller=caller, wanted=organization.TenantFilter(), page=EVERY_PAGE
            )
            seen |= {(row.product, row.tenant_id, "listed" + (" test" if row.is_test else "")) for row in listed.items}
            reached[label] = seen
    assert reached["anonymous"] == set()
    assert reached["alpha/A member"] == {("alpha", TENANT_A, "ann"), ("alpha", TENANT_A, "by id: ann")}
    assert {(product, tenant) for product, tenant, _ in reached["alpha/A admin"]} == {("alpha", TENANT_A)}
    assert ("alpha", TENANT_A, "listed test") not in reached["alpha/A admin"]  # the debug data is another tenant
    assert {product for product, _, _ in reached["alpha operator"]} == {"alpha"}
    assert ("alpha", TENANT_B, "by id: bravo-user") in reached["alpha operator"]
