"""The outbox: claims by several processes never overlap; sequences run in order."""

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import update
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import col

from gateway.adapters.contract import RetryLater
from gateway.clock import SystemClock
from gateway.worker import Finished, JobHandler, JobRunner
from tenants import jobs
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError
from tenants.models import Job, JobState
from tests.conftest import Backend

pytestmark = pytest.mark.anyio


async def test_concurrent_claimers_never_take_the_same_job(backend: Backend) -> None:
    backend.reset()
    now = datetime.now(UTC)
    # Given 300 due jobs and three processes, each with its own connection pool
    databases = [Database(backend.database_url) for _ in range(3)]
    try:
        async with databases[0].transaction() as session:
            for n in range(300):
                await jobs.create_job(session, product="alpha", kind="noop", payload={"n": n}, now=now)

        claimed: dict[str, list[int]] = {}

        async def claimer(index: int) -> None:
            owner = f"process-{index}"
            claimed[owner] = []
            while True:
                async with databases[index].transaction() as session:
                    batch = await jobs.claim_due_jobs(session, owner=owner, now=now, lease_s=60, limit=7)
                if not batch:
                    return
                claimed[owner] += [job.id for job in batch if job.id is not None]

        # When they all claim at once
        await asyncio.gather(*(claimer(index) for index in range(3)))
    finally:
        for database in databases:
            await database.dispose()
    # Then every job was claimed exactly once
    every_claim = [job_id for ids in claimed.values() for job_id in ids]
    assert len(every_claim) == 300
    assert len(set(every_claim)) == 300


async def test_expired_leases_are_taken_over_and_sequences_wait(backend: Backend) -> None:
    backend.reset()
    now = datetime.now(UTC)
    database = Database(backend.database_url)
    try:
        async with database.transaction() as session:
            first = await jobs.create_job(
                session,
                product="alpha",
                kind="noop",
                payload={},
                now=now,
                sequence_key="instance:1",
                lease_owner="dead",
                lease_s=30,
            )
            second = await jobs.create_job(
                session,
                product="alpha",
                kind="noop",
                payload={},
                now=now,
                sequence_key="instance:1",
                lease_owner="me",
                lease_s=30,
            )
        # The second job of a sequence is never born leased while the first is pending.
        assert second.lease_owner is None
        async with database.transaction() as session:
            assert await jobs.claim_due_jobs(session, owner="me", now=now, lease_s=30, limit=10) == []
        later = now + timedelta(seconds=31)
        async with database.transaction() as session:
            [taken] = await jobs.claim_due_jobs(session, owner="me", now=later, lease_s=30, limit=10)
        assert taken.id == first.id
        async with database.transaction() as session:
            assert await jobs.complete_job(session, job_id=first.id or 0, owner="dead", now=later) is False
            assert await jobs.complete_job(session, job_id=first.id or 0, owner="me", now=later) is True
        async with database.transaction() as session:
            [next_job] = await jobs.claim_due_jobs(session, owner="me", now=later, lease_s=30, limit=10)
        assert next_job.id == second.id
        async with database.transaction() as session:
            state = await jobs.fail_job(
                session, job_id=second.id or 0, owner="me", now=later, error="boom", retry=True, max_attempts=1
            )
        assert state is JobState.DEAD
    finally:
        await database.dispose()


async def test_done_jobs_past_their_retention_are_pruned_and_nothing_else(backend: Backend) -> None:
    backend.reset()
    long_ago = datetime.now(UTC) - timedelta(days=40)
    recently = datetime.now(UTC) - timedelta(days=2)
    database = Database(backend.database_url)
    try:
        async with database.transaction() as session:
            created = {
                name: await jobs.create_job(
                    session, product="alpha", kind="noop", payload={}, now=when, lease_owner="me", lease_s=30
                )
                for name, when in [("old done", long_ago), ("new done", recently), ("old dead", long_ago)]
            }
            created["old pending"] = await jobs.create_job(
                session, product="alpha", kind="noop", payload={}, now=long_ago
            )
        async with database.transaction() as session:
            for name in ("old done", "new done"):
                job_id = created[name].id
                assert job_id is not None
                when = long_ago if name.startswith("old") else recently
                assert await jobs.complete_job(session, job_id=job_id, owner="me", now=when)
            dead_id = created["old dead"].id
            assert dead_id is not None
            await jobs.fail_job(
                session, job_id=dead_id, owner="me", now=long_ago, error="broken", retry=False, max_attempts=1
            )

        async with database.transaction() as session:
            pruned = await jobs.prune_done_jobs(session, finished_before=datetime.now(UTC) - timedelta(days=30))

        assert pruned == 1
        async with database.reader() as session:
            left = {job.id for job in await jobs.list_jobs(session, products=["alpha"])}
        assert left == {created[name].id for name in ("new done", "old dead", "old pending")}
    finally:
        await database.dispose()


async def test_the_worker_prunes_in_batches_until_none_is_left(backend: Backend) -> None:
    backend.reset()
    long_ago = datetime.now(UTC) - timedelta(days=3)
    database = Database(backend.database_url)
    try:
        async with database.transaction() as session:
            for _ in range(5):
                job = await jobs.create_job(
                    session, product="alpha", kind="noop", payload={}, now=long_ago, lease_owner="me", lease_s=30
                )
                assert job.id is not None
                await jobs.complete_job(session, job_id=job.id, owner="me", now=long_ago)
        runner = JobRunner(
            database,
            handlers={},
            clock=SystemClock(),
            lease_s=30,
            poll_interval_s=1,
            max_attempts=3,
            retention=timedelta(days=1),
        )
        with patch.object(jobs, "prune_done_jobs", partial(jobs.prune_done_jobs, limit=2)):
            assert await runner.prune() == 5
        async with database.reader() as session:
            assert list(await jobs.list_jobs(session, products=["alpha"])) == []
    finally:
        await database.dispose()


async def test_waiting_on_a_job_gives_what_its_handler_finished_with(backend: Backend) -> None:
    """`wait_for` hands back a handler's `Finished` (the handler ended the job itself), and None
    when the handler left that to the runner, failed, or was still running at the timeout."""
    backend.reset()
    database = Database(backend.database_url)
    release = asyncio.Event()

    async def finishing(job: Job) -> Finished:
        async with database.transaction() as session:
            return Finished(successor_due=await jobs.finish_job(session, job=job, now=datetime.now(UTC)))

    async def plain(job: Job) -> None:
        return None

    async def failing(job: Job) -> None:
        raise RetryLater("not yet")

    async def slow(job: Job) -> None:
        await release.wait()

    handlers: dict[str, JobHandler] = {"finishing": finishing, "plain": plain, "failing": failing, "slow": slow}
    runner = JobRunner(database, handlers=handlers, clock=SystemClock(), lease_s=30, poll_interval_s=1, max_attempts=3)
    try:
        outcomes: dict[str, Finished | None] = {}
        for kind in handlers:
            async with database.transaction() as session:
                job = await jobs.create_job(
                    session, product="alpha", kind=kind, payload={}, now=datetime.now(UTC), lease_owner=runner.owner
                )
            assert job.id is not None
            runner.run_now(job)
            outcomes[kind] = await runner.wait_for(job.id, timeout_s=0.5 if kind == "slow" else 10)
        assert outcomes == {"finishing": Finished(successor_due=False), "plain": None, "failing": None, "slow": None}
        async with database.reader() as session:
            states = {job.kind: job.state for job in await jobs.list_jobs(session, products=["alpha"])}
        assert states == {
            "finishing": JobState.DONE,
            "plain": JobState.DONE,
            "failing": JobState.PENDING,
            "slow": JobState.PENDING,
        }
    finally:
        release.set()
        await runner.stop()
        await database.dispose()


async def test_the_runner_runs_no_more_jobs_at_once_than_its_concurrency(backend: Backend) -> None:
    """Jobs past the limit wait for a slot (those a call starts too), and all of them run."""
    backend.reset()
    database = Database(backend.database_url)
    running = 0
    most_at_once = 0
    release = asyncio.Event()

    async def slow(job: Job) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await release.wait()
        running -= 1

    runner = JobRunner(
        database,
        handlers={"slow": slow},
        clock=SystemClock(),
        lease_s=30,
        poll_interval_s=1,
        max_attempts=3,
        concurrency=2,
    )
    try:
        tasks = []
        for _ in range(5):
            async with database.transaction() as session:
                job = await jobs.create_job(
                    session, product="alpha", kind="slow", payload={}, now=datetime.now(UTC), lease_owner=runner.owner
                )
            tasks.append(runner.run_now(job))
        await asyncio.sleep(0.2)
        assert (running, most_at_once) == (2, 2)
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        assert most_at_once == 2
        async with database.reader() as session:
            assert {job.state for job in await jobs.list_jobs(session, products=["alpha"])} == {JobState.DONE}
    finally:
        release.set()
        await runner.stop()
        await database.dispose()


async def _lease_of(database: Database, job_id: int) -> tuple[str | None, datetime | None]:
    async with database.reader() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job.lease_owner, job.lease_until


async def _leased_job(database: Database, runner: JobRunner, kind: str, *, lease_s: float) -> Job:
    """A job of `kind` born leased by `runner`, for it to run at once."""
    async with database.transaction() as session:
        job = await jobs.create_job(
            session,
            product="alpha",
            kind=kind,
            payload={},
            now=datetime.now(UTC),
            lease_owner=runner.owner,
            lease_s=lease_s,
        )
    assert job.id is not None
    return job


async def test_the_leases_of_running_and_queued_jobs_are_kept_in_one_transaction(backend: Backend) -> None:
    """A job that runs for longer than its lease keeps it, and so does one waiting for a slot;
    one transaction a third of a lease extends them all."""
    backend.reset()
    database = Database(backend.database_url)
    release = asyncio.Event()

    async def slow(job: Job) -> None:
        await release.wait()

    lease_s = 0.9
    runner = JobRunner(
        database,
        handlers={"slow": slow},
        clock=SystemClock(),
        lease_s=lease_s,
        poll_interval_s=60,
        max_attempts=3,
        concurrency=1,
    )
    extensions: list[list[int]] = []
    real_extend = jobs.extend_leases

    async def counted(session: Any, *, job_ids: list[int], owner: str, until: datetime) -> set[int]:
        extensions.append(sorted(job_ids))
        return await real_extend(session, job_ids=job_ids, owner=owner, until=until)

    try:
        created = [await _leased_job(database, runner, "slow", lease_s=lease_s) for _ in range(3)]
        with patch("gateway.worker.jobs.extend_leases", counted):
            tasks = [runner.run_now(job) for job in created]
            await asyncio.sleep(lease_s * 2.2)  # past the leases they were born with
            for job in created:
                owner, until = await _lease_of(database, job.id or 0)
                assert owner == runner.owner
                assert until is not None and until > datetime.now(UTC)
            assert extensions and all(ids == sorted(job.id or 0 for job in created) for ids in extensions)
            assert not any(task.done() for task in tasks)  # one runs, two wait for the slot
            release.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        async with database.reader() as session:
            assert {job.state for job in await jobs.list_jobs(session, products=["alpha"])} == {JobState.DONE}
    finally:
        release.set()
        await runner.stop()
        await database.dispose()


async def test_a_run_whose_job_another_process_took_over_is_cancelled(backend: Backend) -> None:
    backend.reset()
    database = Database(backend.database_url)
    started = asyncio.Event()
    outcome: list[str] = []

    async def slow(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")

    runner = JobRunner(
        database, handlers={"slow": slow}, clock=SystemClock(), lease_s=0.6, poll_interval_s=60, max_attempts=3
    )
    try:
        job = await _leased_job(database, runner, "slow", lease_s=0.6)
        assert job.id is not None
        task = runner.run_now(job)
        await asyncio.wait_for(started.wait(), timeout=5)
        # Another process took the job over (as after this one lost the database for a lease)
        taken_until = datetime.now(UTC) + timedelta(seconds=60)
        async with database.transaction() as session:
            await session.exec(
                update(Job).where(col(Job.id) == job.id).values(lease_owner="other", lease_until=taken_until)
            )
        await asyncio.wait([task], timeout=5)
        assert task.cancelled() and outcome == ["cancelled"]
        # and the other process keeps its lease
        assert await _lease_of(database, job.id) == ("other", taken_until)
    finally:
        await runner.stop()
        await database.dispose()


async def test_the_lease_keeper_outlives_a_failed_round(backend: Backend) -> None:
    """Whatever one round raises (a pool timeout, say), the next round extends the leases: a
    keeper that died would let them run out under a running job."""
    backend.reset()
    database = Database(backend.database_url)
    release = asyncio.Event()

    async def slow(job: Job) -> None:
        await release.wait()

    runner = JobRunner(
        database, handlers={"slow": slow}, clock=SystemClock(), lease_s=0.6, poll_interval_s=60, max_attempts=3
    )
    real_extend = jobs.extend_leases
    rounds = 0

    async def failing_once(session: Any, **options: Any) -> set[int]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("the pool had no connection free in time")
        return await real_extend(session, **options)

    try:
        job = await _leased_job(database, runner, "slow", lease_s=0.6)
        with patch("gateway.worker.jobs.extend_leases", failing_once):
            task = runner.run_now(job)
            await asyncio.sleep(1.3)  # past the lease it was born with, and two rounds
            owner, until = await _lease_of(database, job.id or 0)
            assert rounds >= 2 and owner == runner.owner
            assert until is not None and until > datetime.now(UTC)
        release.set()
        await asyncio.wait_for(task, timeout=10)
    finally:
        release.set()
        await runner.stop()
        await database.dispose()


async def test_a_pool_timeout_is_the_database_being_unavailable(backend: Backend) -> None:
    database = Database(backend.database_url)
    try:
        with pytest.raises(DatabaseUnavailableError, match="no database connection free in time"):
            async with database.transaction():
                raise PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached")
    finally:
        await database.dispose()
