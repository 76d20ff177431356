"""The services themselves hold callers to their scope, whatever a resolver does."""

from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from tenants import admin, operations
from tenants.admin import AuditFilter, Caller, CallerKind, PageRequest
from tenants.admin_models import AuditEntry
from tenants.models import Job, JobState
from tests.graphql.conftest import rows, seed_call, seed_instance, seed_job

pytestmark = pytest.mark.anyio

ALPHA_READER = Caller(kind=CallerKind.OPERATOR, actor="token:1:r", products=frozenset({"alpha"}))
ALPHA_WRITER = Caller(kind=CallerKind.OPERATOR, actor="token:2:w", products=frozenset({"alpha"}), can_write=True)
EVERY_PAGE = PageRequest(first=100)


async def _everything(app: Starlette, caller: Caller) -> set[str]:
    """The products of every row of operations data and audit log the caller can list."""
    async with app.state.database.reader() as session:
        found = [
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
        with pytest.raises(operations.InstanceNotFoundError):
            await operations.repair_instance_app_info(
                session, caller=ALPHA_WRITER, product="beta", instance_id="i-1", app_info={}, now=datetime.now(UTC)
            )
