"""The vendor's operations view: instances and their history, the call log and jobs.

Every function takes the `Caller` and reads only what its `operations_products` allow, in
SQL; a row outside them is indistinguishable from a row that does not exist. Changes
(retrying a job, repairing an instance) require a caller that may write, and write the
audit log in the same transaction.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants import instances, jobs
from tenants.admin import (
    Caller,
    Page,
    PageRequest,
    count_rows,
    create_audit_entry,
    fetch_page,
    products_clause,
)
from tenants.errors import InstanceNotFoundError, TenantsError
from tenants.models import LIVE_STATUSES, CallLogEntry, Instance, InstanceEvent, InstanceStatus, Job, JobState

InstanceKey = tuple[str, str]
"""(product, instance_id): an instance id is only meaningful within its product."""


class JobNotFoundError(TenantsError):
    """No such job among the caller's products."""

    code = "job_not_found"


class JobFinishedError(TenantsError):
    """The job is done; there is nothing to retry."""

    code = "job_finished"


class InstanceNotReconcilableError(TenantsError):
    """The instance is not live (provisioning, failed or released): the adapter has nothing to say."""

    code = "instance_not_reconcilable"

    def __init__(self, status: InstanceStatus) -> None:
        super().__init__(f"the instance is {status.value}")
        self.status = status


def _scope(column: Any, caller: Caller, wanted: frozenset[str] | None) -> list[ColumnElement[bool]]:
    clauses = [products_clause(column, caller.operations_products)]
    if wanted is not None:
        clauses.append(products_clause(column, wanted))
    return clauses


def _prefix(column: Any, text: str) -> ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return col(column).like(escaped + "%", escape="\\")


# --- instances ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    """Which instances to list; None means any."""

    products: frozenset[str] | None = None
    statuses: frozenset[InstanceStatus] | None = None
    is_test: bool | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    search: str | None = None
    """A prefix of the instance id or of the order id."""


def _instance_clauses(caller: Caller, wanted: InstanceFilter) -> list[ColumnElement[bool]]:
    clauses = _scope(Instance.product, caller, wanted.products)
    if wanted.statuses is not None:
        clauses.append(col(Instance.status).in_(sorted(wanted.statuses)))
    if wanted.is_test is not None:
        clauses.append(col(Instance.is_test) == wanted.is_test)
    if wanted.expires_after is not None:
        clauses.append(col(Instance.expire_time) >= wanted.expires_after)
    if wanted.expires_before is not None:
        clauses.append(col(Instance.expire_time) < wanted.expires_before)
    if wanted.search:
        clauses.append(or_(_prefix(Instance.instance_id, wanted.search), _prefix(Instance.order_id, wanted.search)))
    return clauses


async def list_instances(
    session: AsyncSession, *, caller: Caller, wanted: InstanceFilter, page: PageRequest
) -> Page[Instance]:
    """Instances of the caller's products matching `wanted`, newest first."""
    return await fetch_page(session, Instance, clauses=_instance_clauses(caller, wanted), page=page)


async def count_instances(session: AsyncSession, *, caller: Caller, wanted: InstanceFilter) -> int:
    """How many instances of the caller's products match `wanted`."""
    return await count_rows(session, Instance, clauses=_instance_clauses(caller, wanted))


async def get_instance_by_row_id(session: AsyncSession, *, caller: Caller, row_id: int) -> Instance | None:
    """One instance by its row id, if among the caller's products."""
    clauses = [*_scope(Instance.product, caller, None), col(Instance.id) == row_id]
    return (await session.exec(select(Instance).where(*clauses))).first()


async def get_instance(session: AsyncSession, *, caller: Caller, product: str, instance_id: str) -> Instance | None:
    """One instance by product and marketplace id, if among the caller's products."""
    clauses = [
        *_scope(Instance.product, caller, None),
        col(Instance.product) == product,
        col(Instance.instance_id) == instance_id,
    ]
    return (await session.exec(select(Instance).where(*clauses))).first()


async def list_instances_by_keys(
    session: AsyncSession, *, caller: Caller, keys: Sequence[InstanceKey]
) -> dict[InstanceKey, Instance]:
    """The instances among `keys` that the caller may see, by key, in one query."""
    if not keys:
        return {}
    query = select(Instance).where(
        *_scope(Instance.product, caller, None),
        tuple_(col(Instance.product), col(Instance.instance_id)).in_(sorted(set(keys))),
    )
    return {(row.product, row.instance_id): row for row in (await session.exec(query)).all()}


async def list_instance_histories(
    session: AsyncSession, *, caller: Caller, keys: Sequence[InstanceKey]
) -> dict[InstanceKey, list[InstanceEvent]]:
    """The history of each instance among `keys` the caller may see, oldest change first, in one query."""
    histories: dict[InstanceKey, list[InstanceEvent]] = {}
    if not keys:
        return histories
    query = (
        select(InstanceEvent)
        .where(
            *_scope(InstanceEvent.product, caller, None),
            tuple_(col(InstanceEvent.product), col(InstanceEvent.instance_id)).in_(sorted(set(keys))),
        )
        .order_by(col(InstanceEvent.id))
    )
    for event in (await session.exec(query)).all():
        histories.setdefault((event.product, event.instance_id), []).append(event)
    return histories


async def repair_instance_app_info(
    session: AsyncSession,
    *,
    caller: Caller,
    product: str,
    instance_id: str,
    app_info: dict[str, str] | None,
    now: datetime,
) -> tuple[Instance, bool]:
    """Store what the adapter now says about an instance (None: it has nothing newer).

    Returns the instance and whether it changed; a change is written to its history. The
    audit log records the action either way, naming the fields changed, never their values.
    """
    caller.require_write()
    query = select(Instance).where(
        *_scope(Instance.product, caller, None),
        col(Instance.product) == product,
        col(Instance.instance_id) == instance_id,
    )
    instance = (await session.exec(query.with_for_update())).first()
    if instance is None:
        raise InstanceNotFoundError(f"no instance {instance_id!r} of {product!r}")
    if instance.status not in LIVE_STATUSES:
        raise InstanceNotReconcilableError(instance.status)
    changed = app_info is not None and app_info != instance.app_info
    fields = sorted(set(app_info or {}) | set(instance.app_info or {})) if changed else []
    if changed:
        await instances.record_event(
            session,
            instance=instance,
            activity="reconciled",
            now=now,
            request_id=caller.request_id,
            detail={"fields": fields},
        )
        instance.app_info = app_info
        instance.updated_at = now
        session.add(instance)
    await create_audit_entry(
        session,
        caller=caller,
        action="instanceReconcile",
        product=product,
        target=f"instance:{instance_id}",
        detail={"changed": changed, "fields": fields},
        now=now,
        is_test=instance.is_test,
    )
    return instance, changed


# --- call log -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallLogFilter:
    """Which production calls to list; None means any."""

    products: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    activities: frozenset[str] | None = None
    result_codes: frozenset[str] | None = None
    instance_id: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _call_log_clauses(caller: Caller, wanted: CallLogFilter) -> list[ColumnElement[bool]]:
    clauses = _scope(CallLogEntry.product, caller, wanted.products)
    if wanted.kinds is not None:
        clauses.append(col(CallLogEntry.kind).in_(sorted(wanted.kinds)))
    if wanted.activities is not None:
        clauses.append(col(CallLogEntry.activity).in_(sorted(wanted.activities)))
    if wanted.result_codes is not None:
        clauses.append(col(CallLogEntry.result_code).in_(sorted(wanted.result_codes)))
    if wanted.instance_id is not None:
        clauses.append(col(CallLogEntry.instance_id) == wanted.instance_id)
    if wanted.request_id is not None:
        clauses.append(col(CallLogEntry.request_id) == wanted.request_id)
    if wanted.since is not None:
        clauses.append(col(CallLogEntry.created_at) >= wanted.since)
    if wanted.until is not None:
        clauses.append(col(CallLogEntry.created_at) < wanted.until)
    return clauses


async def list_call_log_entries(
    session: AsyncSession, *, caller: Caller, wanted: CallLogFilter, page: PageRequest
) -> Page[CallLogEntry]:
    """Production calls to the caller's products matching `wanted`, newest first."""
    return await fetch_page(session, CallLogEntry, clauses=_call_log_clauses(caller, wanted), page=page)


async def count_call_log_entries(session: AsyncSession, *, caller: Caller, wanted: CallLogFilter) -> int:
    """How many production calls to the caller's products match `wanted`."""
    return await count_rows(session, CallLogEntry, clauses=_call_log_clauses(caller, wanted))


async def get_call_log_entry(session: AsyncSession, *, caller: Caller, entry_id: int) -> CallLogEntry | None:
    """One production call by its row id, if to one of the caller's products."""
    clauses = [*_scope(CallLogEntry.product, caller, None), col(CallLogEntry.id) == entry_id]
    return (await session.exec(select(CallLogEntry).where(*clauses))).first()


# --- jobs ---------------------------------------------------------------------------------


class JobStatus(enum.StrEnum):
    """A job as an operator sees it: the outbox's state, with retrying jobs told apart."""

    PENDING = "pending"
    """Waiting for its first run."""
    FAILED = "failed"
    """Failed at least once; waiting for its next attempt."""
    DEAD = "dead"
    """Gave up; runs again only if an operator retries it."""
    DONE = "done"


def job_status(job: Job) -> JobStatus:
    """How an operator sees a job's state."""
    if job.state is JobState.PENDING:
        return JobStatus.FAILED if job.attempts > 0 else JobStatus.PENDING
    return JobStatus(job.state.value)


_JOB_STATUS_CLAUSES: dict[JobStatus, ColumnElement[bool]] = {
    JobStatus.PENDING: and_(col(Job.state) == JobState.PENDING, col(Job.attempts) == 0),
    JobStatus.FAILED: and_(col(Job.state) == JobState.PENDING, col(Job.attempts) > 0),
    JobStatus.DEAD: col(Job.state) == JobState.DEAD,
    JobStatus.DONE: col(Job.state) == JobState.DONE,
}


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs to list; None means any."""

    products: frozenset[str] | None = None
    statuses: frozenset[JobStatus] | None = None
    kinds: frozenset[str] | None = None


def _job_clauses(caller: Caller, wanted: JobFilter) -> list[ColumnElement[bool]]:
    clauses = _scope(Job.product, caller, wanted.products)
    if wanted.statuses is not None:
        clauses.append(or_(*(_JOB_STATUS_CLAUSES[status] for status in sorted(wanted.statuses))))
    if wanted.kinds is not None:
        clauses.append(col(Job.kind).in_(sorted(wanted.kinds)))
    return clauses


async def list_jobs(session: AsyncSession, *, caller: Caller, wanted: JobFilter, page: PageRequest) -> Page[Job]:
    """Background jobs of the caller's products matching `wanted`, newest first."""
    return await fetch_page(session, Job, clauses=_job_clauses(caller, wanted), page=page)


async def count_jobs(session: AsyncSession, *, caller: Caller, wanted: JobFilter) -> int:
    """How many jobs of the caller's products match `wanted`."""
    return await count_rows(session, Job, clauses=_job_clauses(caller, wanted))


async def get_job(session: AsyncSession, *, caller: Caller, job_id: int) -> Job | None:
    """One job by its id, if of one of the caller's products."""
    clauses = [*_scope(Job.product, caller, None), col(Job.id) == job_id]
    return (await session.exec(select(Job).where(*clauses))).first()


async def retry_job(session: AsyncSession, *, caller: Caller, job_id: int, now: datetime) -> Job:
    """Put a failed, dead or waiting job back to run now, and audit it (idempotent).

    Raises `JobNotFoundError` for a job outside the caller's products, `JobFinishedError`
    for a job that is done.
    """
    caller.require_write()
    query = select(Job).where(*_scope(Job.product, caller, None), col(Job.id) == job_id).with_for_update()
    job = (await session.exec(query)).first()
    if job is None:
        raise JobNotFoundError(f"no job {job_id}")
    if job.state is JobState.DONE:
        raise JobFinishedError(f"job {job_id} is done")
    before = job_status(job)
    retried = await jobs.retry_job(session, product=job.product, job_id=job_id, now=now)
    assert retried is not None  # locked above, within the caller's products, and not done
    await create_audit_entry(
        session,
        caller=caller,
        action="jobRetry",
        product=job.product,
        target=f"job:{job_id}",
        detail={"kind": job.kind, "status": before.value, "attempts": job.attempts},
        now=now,
        is_test=await _job_is_test(session, job),
    )
    return retried


async def _job_is_test(session: AsyncSession, job: Job) -> bool:
    """Whether a job works on the marketplace's debug data: its payload says so (directory jobs), or
    the instance it names is a test instance (instance jobs)."""
    payload = job.payload
    if "is_test" in payload:
        return bool(payload["is_test"])
    instance_id = payload.get("instance_id")
    if not isinstance(instance_id, str):
        return False
    query = select(Instance.is_test).where(
        col(Instance.product) == job.product, col(Instance.instance_id) == instance_id
    )
    return bool((await session.exec(query)).first())
