"""The outbox: durable background work, written in the transaction of the change it serves.

A job is claimed by taking a lease (owner and expiry) with one conditional UPDATE, so two
MarketGate processes sharing a database never run the same job at once; on PostgreSQL the
candidate rows are also locked with SKIP LOCKED so claimers do not queue on each other.
A process that dies leaves its lease to expire; another process then takes the job over.
"""

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.database import connection_of
from tenants.models import Job, JobState

MAX_BACKOFF_S = 600.0

# The statements every provisioning runs, built once: SQLAlchemy Core, no ORM unit of work.
_JOBS = Job.__table__  # type: ignore[attr-defined]
_INSERT_JOB = _JOBS.insert().returning(_JOBS.c.id)
_SEQUENCE_PENDING = (
    select(_JOBS.c.id).where(_JOBS.c.sequence_key == bindparam("sequence"), _JOBS.c.state == JobState.PENDING).limit(1)
)
_COMPLETE_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job"), _JOBS.c.lease_owner == bindparam("owner"), _JOBS.c.state == JobState.PENDING)
    .values(state=JobState.DONE, lease_owner=None, lease_until=None, updated_at=bindparam("now"), last_error=None)
)


def backoff_s(attempts: int, *, base_s: float = 1.0) -> float:
    """Exponential backoff with full jitter, capped at ten minutes."""
    ceiling = min(MAX_BACKOFF_S, base_s * 2 ** min(attempts, 20))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


async def create_job(
    session: AsyncSession,
    *,
    product: str,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
    sequence_key: str | None = None,
    lease_owner: str | None = None,
    lease_s: float = 0.0,
    new_sequence: bool = False,
) -> Job:
    """Add a job; with `lease_owner` it is born claimed, for the caller to run at once.
    Returns the job as written: a copy the session does not track.

    A job that must wait for an earlier one of its sequence is never born claimed;
    `new_sequence` says the caller knows there is none (its sequence was just created).
    """
    if lease_owner and sequence_key and not new_sequence and await _sequence_busy(session, sequence_key):
        lease_owner = None
    values: dict[str, Any] = {
        "product": product,
        "kind": kind,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "sequence_key": sequence_key,
        "state": JobState.PENDING,
        "attempts": 0,
        "run_at": now,
        "lease_owner": lease_owner,
        "lease_until": now + timedelta(seconds=lease_s) if lease_owner else None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    connection = await connection_of(session)
    job_id = (await connection.execute(_INSERT_JOB, values)).scalar_one()
    return Job(id=job_id, **values)


async def _sequence_busy(session: AsyncSession, sequence_key: str) -> bool:
    connection = await connection_of(session)
    return (await connection.execute(_SEQUENCE_PENDING, {"sequence": sequence_key})).first() is not None


async def claim_due_jobs(
    session: AsyncSession, *, owner: str, now: datetime, lease_s: float, limit: int
) -> Sequence[Job]:
    """Lease up to `limit` pending jobs that are due and not leased by a live owner."""
    earlier = aliased(Job)
    waits_for_earlier = exists().where(
        col(earlier.sequence_key) == col(Job.sequence_key),
        col(earlier.state) == JobState.PENDING,
        col(earlier.id) < col(Job.id),
    )
    due = (
        select(Job.id)
        .where(Job.state == JobState.PENDING, Job.run_at <= now)
        .where(or_(col(Job.lease_until).is_(None), col(Job.lease_until) < now))
        .where(or_(col(Job.sequence_key).is_(None), ~waits_for_earlier))
        .order_by(col(Job.run_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.exec(
        update(Job)
        .where(col(Job.id).in_(due.scalar_subquery()))
        .where(or_(col(Job.lease_until).is_(None), col(Job.lease_until) < now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), updated_at=now)
        .returning(Job)
    )
    return list(claimed.scalars())


async def extend_leases(session: AsyncSession, *, job_ids: Sequence[int], owner: str, until: datetime) -> set[int]:
    """Keep the leases `owner` holds on `job_ids` alive until `until`; returns the ids among them
    whose lease another owner has taken over (a job that ended, or gave its lease back after a
    failed attempt, is not among them)."""
    await session.exec(
        update(Job)
        .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == owner, col(Job.state) == JobState.PENDING)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    taken_over = select(Job.id).where(
        col(Job.id).in_(job_ids), col(Job.lease_owner).is_not(None), col(Job.lease_owner) != owner
    )
    return {job_id for job_id in (await session.exec(taken_over)).all() if job_id is not None}


async def complete_job(session: AsyncSession, *, job_id: int, owner: str, now: datetime) -> bool:
    """Mark a job done if `owner` still holds its lease."""
    connection = await connection_of(session)
    result = await connection.execute(_COMPLETE_JOB, {"job": job_id, "owner": owner, "now": now})
    return bool(result.rowcount)


async def finish_job(session: AsyncSession, *, job: Job, now: datetime) -> bool:
    """Mark `job` done inside the caller's transaction (its last change); True if the next job
    of its sequence is now due."""
    assert job.id is not None and job.lease_owner is not None
    if not await complete_job(session, job_id=job.id, owner=job.lease_owner, now=now):
        return False
    return job.sequence_key is not None and await _sequence_busy(session, job.sequence_key)


async def has_due_jobs(session: AsyncSession, *, now: datetime) -> bool:
    """A cheap read before a claim: is any job due and not leased by a live owner?"""
    due = (
        select(Job.id)
        .where(Job.state == JobState.PENDING, Job.run_at <= now)
        .where(or_(col(Job.lease_until).is_(None), col(Job.lease_until) < now))
        .limit(1)
    )
    return (await session.exec(due)).first() is not None


async def fail_job(
    session: AsyncSession,
    *,
    job_id: int,
    owner: str,
    now: datetime,
    error: str,
    retry: bool,
    max_attempts: int,
) -> JobState | None:
    """Record a failed attempt: back off and retry, or give up (dead). None: lease lost."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None or job.lease_owner != owner or job.state != JobState.PENDING:
        return None
    job.attempts += 1
    job.last_error = error[:1024]
    job.lease_owner = None
    job.lease_until = None
    job.updated_at = now
    if retry and job.attempts < max_attempts:
        job.run_at = now + timedelta(seconds=backoff_s(job.attempts))
    else:
        job.state = JobState.DEAD
    session.add(job)
    return job.state


async def retry_job(session: AsyncSession, *, product: str, job_id: int, now: datetime) -> Job | None:
    """Put a dead or waiting job back to run now (an operator's retry)."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None or job.product != product or job.state == JobState.DONE:
        return None
    job.state = JobState.PENDING
    job.run_at = now
    job.updated_at = now
    session.add(job)
    return job


async def list_jobs(
    session: AsyncSession, *, products: Sequence[str], state: JobState | None = None, limit: int = 100
) -> Sequence[Job]:
    query = select(Job).where(col(Job.product).in_(products)).order_by(col(Job.id).desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    return list((await session.exec(query)).all())


async def get_pending_job(session: AsyncSession, *, product: str, sequence_key: str, kind: str) -> Job | None:
    query = select(Job).where(
        Job.product == product, Job.sequence_key == sequence_key, Job.kind == kind, Job.state == JobState.PENDING
    )
    return (await session.exec(query.order_by(col(Job.id)))).first()


async def get_job_by_dedupe_key(session: AsyncSession, *, product: str, dedupe_key: str) -> Job | None:
    query = select(Job).where(Job.product == product, Job.dedupe_key == dedupe_key)
    return (await session.exec(query)).first()


async def prune_done_jobs(session: AsyncSession, *, finished_before: datetime, limit: int = 1000) -> int:
    """Delete up to `limit` jobs that finished before `finished_before`; returns how many.

    Only done jobs go: dead ones wait for an operator (`jobRetry`), pending ones are work. A
    done job's dedupe key answers a repeated renewal or upgrade as a repeat, so the retention
    must outlast the marketplace's retries (hours).
    """
    oldest = (
        select(Job.id)
        .where(Job.state == JobState.DONE, col(Job.run_at) < finished_before, col(Job.updated_at) < finished_before)
        .limit(limit)
    )
    pruning = delete(Job).where(col(Job.id).in_(oldest.scalar_subquery()))
    result = await session.exec(pruning.execution_options(synchronize_session=False))
    return int(result.rowcount)
