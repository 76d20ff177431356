"""Runs the outbox: claims due jobs, runs their handlers, retries with backoff.

A request that creates a job may also run it at once (`run_now`) and wait for it up to its
answer deadline; whatever is unfinished then goes on in the background under the same
lease, which is extended while the job runs (one transaction every third of a lease extends
the leases of all the jobs this process runs). Jobs are at-least-once: a handler must be
idempotent, because a job whose process died is run again when its lease expires.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.adapters.contract import RetryLater
from gateway.clock import Clock
from tenants import jobs
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError
from tenants.models import Job, JobState

log = structlog.get_logger(__name__)

_WAIT_POLL_S = 0.02
_PRUNE_INTERVAL_S = 3600.0
"""How often a worker deletes the done jobs past their retention (and once when it starts)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """What a handler returns when it marked its job done itself, in its own last transaction
    (`tenants.jobs.finish_job`), saving a transaction; None leaves that to the runner."""

    successor_due: bool


JobHandler = Callable[[Job], Awaitable[Finished | None]]
DeadJobHandler = Callable[[AsyncSession, Job], Awaitable[None]]
"""Runs in the transaction that marks its job dead: both happen, or neither."""


class PermanentJobError(Exception):
    """The job cannot succeed by retrying; it is marked dead with this message."""

    code = "job_permanent"


class JobRunner:
    """One per process; `start` in the lifespan, `stop` on shutdown."""

    def __init__(
        self,
        database: Database,
        *,
        handlers: Mapping[str, JobHandler],
        clock: Clock,
        lease_s: float,
        poll_interval_s: float,
        max_attempts: int,
        concurrency: int = 8,
        on_dead: Mapping[str, DeadJobHandler] | None = None,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._database = database
        self._handlers = handlers
        self._on_dead = dict(on_dead or {})
        self._clock = clock
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self._max_attempts = max_attempts
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[int, asyncio.Task[Finished | None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._poller: asyncio.Task[None] | None = None
        self._lease_keeper: asyncio.Task[None] | None = None
        self._stop_keeping_leases = asyncio.Event()
        self._retention = retention
        self._next_prune = 0.0

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_forever(), name="marketgate-job-poller")

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop polling; give running jobs `grace_s`, then cancel them (their leases expire)."""
        self._stopping = True
        self._wake.set()
        if self._poller is not None:
            done, _ = await asyncio.wait([self._poller], timeout=grace_s)
            if not done:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=grace_s)
        for task in list(self._running.values()):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._lease_keeper is not None:
            # Last, so that the leases of the jobs given their grace are kept meanwhile; stopped,
            # not cancelled, so that a lease update in flight finishes its transaction.
            self._stop_keeping_leases.set()
            await self._lease_keeper

    def wake(self) -> None:
        """Look for due jobs now rather than at the next poll."""
        self._wake.set()

    def run_now(self, job: Job) -> asyncio.Task[Finished | None]:
        """Run a job this process leased when it created it; returns the running task."""
        assert job.id is not None and job.lease_owner == self.owner
        return self._launch(job)

    def running(self, job_id: int) -> asyncio.Task[Finished | None] | None:
        """The task running `job_id` in this process, if any."""
        return self._running.get(job_id)

    async def wait_for(self, job_id: int, *, timeout_s: float) -> Finished | None:
        """Wait until `job_id` has been run once (done, failed or waiting to retry), or `timeout_s`.

        Returns what its handler returned when it ran here to its end, within the time, having
        marked the job done itself (`Finished`); None otherwise. A job may be started by this
        process's poller after the caller asked, so until it is running here its state is read
        from the database every few milliseconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            task = self._running.get(job_id)
            if task is not None:
                await asyncio.wait([task], timeout=remaining)
                ended = task.done() and not task.cancelled() and task.exception() is None
                return task.result() if ended else None
            async with self._database.reader() as session:
                job = await session.get(Job, job_id)
                if job is None or job.state is not JobState.PENDING or job.attempts > 0:
                    return None
            await asyncio.sleep(min(remaining, _WAIT_POLL_S))
        return None

    @property
    def lease_s(self) -> float:
        return self._lease_s

    @property
    def concurrency(self) -> int:
        """How many jobs run at once at most in this process."""
        return self._concurrency

    def _launch(self, job: Job) -> asyncio.Task[Finished | None]:
        assert job.id is not None
        if (running := self._running.get(job.id)) is not None:
            return running  # claimed again while it waited for a slot: it is already running here
        task = asyncio.create_task(self._run(job), name=f"marketgate-job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(lambda _: self._running.pop(job.id or 0, None))
        if (self._lease_keeper is None or self._lease_keeper.done()) and not self._stop_keeping_leases.is_set():
            self._lease_keeper = asyncio.create_task(self._keep_leases(), name="marketgate-job-leases")
        return task

    async def _poll_forever(self) -> None:
        while not self._stopping:
            try:
                await self.poll_once()
                await self._prune_when_due()
            except DatabaseUnavailableError as exc:
                log.warning("job_poll_failed", error=str(exc))
            except Exception:  # the poller must outlive any surprise; it is logged with its trace
                log.exception("job_poll_crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
            self._wake.clear()

    async def poll_once(self) -> int:
        """Claim and start the due jobs that free slots allow; returns how many started."""
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        now = self._clock.now()
        async with self._database.reader() as session:
            if not await jobs.has_due_jobs(session, now=now):
                return 0  # most polls: nothing to do, and no write transaction taken for it
        async with self._database.transaction() as session:
            claimed = await jobs.claim_due_jobs(
                session, owner=self.owner, now=self._clock.now(), lease_s=self._lease_s, limit=free
            )
        for job in claimed:
            self._launch(job)
        return len(claimed)

    async def _prune_when_due(self) -> None:
        if self._clock.monotonic() < self._next_prune:
            return
        self._next_prune = self._clock.monotonic() + _PRUNE_INTERVAL_S
        pruned = await self.prune()
        if pruned:
            log.info("jobs_pruned", jobs=pruned, retention_days=self._retention.days)

    async def prune(self) -> int:
        """Delete the done jobs older than the retention, in batches; returns how many."""
        finished_before = self._clock.now() - self._retention
        pruned = 0
        while True:
            async with self._database.transaction() as session:
                batch = await jobs.prune_done_jobs(session, finished_before=finished_before)
            pruned += batch
            if batch == 0 or self._stopping:
                return pruned

    async def _run(self, job: Job) -> Finished | None:
        # Its lease is kept from its launch (`_keep_leases`), also while it waits for a slot: a
        # lease that ran out in the queue would let another process run the same job.
        async with self._slots:
            return await self._run_handler(job)

    async def _run_handler(self, job: Job) -> Finished | None:
        """Runs the job's handler; returns its `Finished` if it gave one (and so ended the job)."""
        assert job.id is not None
        try:
            finished = await self._handlers[job.kind](job)
        except asyncio.CancelledError:
            raise
        except (RetryLater, DatabaseUnavailableError) as exc:
            await self._record_failure(job, f"{type(exc).__name__}: {exc}", retry=True)
            return None
        except PermanentJobError as exc:
            await self._record_failure(job, str(exc), retry=False)
            return None
        except Exception as exc:  # an adapter bug must not kill the worker; retried, then dead
            log.exception("job_failed", job_id=job.id, kind=job.kind, product=job.product)
            await self._record_failure(job, f"{type(exc).__name__}: {exc}", retry=True)
            return None
        if finished is None:
            async with self._database.transaction() as session:
                successor_due = await jobs.finish_job(session, job=job, now=self._clock.now())
        else:
            successor_due = finished.successor_due
        if successor_due:
            self._wake.set()  # the next job of the sequence is due now
        return finished

    async def _record_failure(self, job: Job, error: str, *, retry: bool) -> None:
        assert job.id is not None
        try:
            async with self._database.transaction() as session:
                state = await jobs.fail_job(
                    session,
                    job_id=job.id,
                    owner=self.owner,
                    now=self._clock.now(),
                    error=error,
                    retry=retry,
                    max_attempts=self._max_attempts,
                )
                if state is JobState.DEAD and (gave_up := self._on_dead.get(job.kind)) is not None:
                    job.last_error = error  # this run's copy, told what the row now says: why it gave up
                    await gave_up(session, job)
        except DatabaseUnavailableError as exc:
            # Nothing recorded: the job stays pending under this lease, and runs again once it expires.
            log.warning("job_failure_not_recorded", job_id=job.id, kind=job.kind, error=str(exc))
            return
        level = log.error if state is JobState.DEAD else log.warning
        level("job_attempt_failed", job_id=job.id, kind=job.kind, product=job.product, state=state, error=error)

    async def _keep_leases(self) -> None:
        """Every third of a lease, extends the leases of all the jobs launched here and not yet
        ended, in one transaction, and cancels each run whose job another process has taken
        over (its lease ran out while this process could not reach the database, say): that
        run must not go on beside the other."""
        while not self._stop_keeping_leases.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_keeping_leases.wait(), timeout=self._lease_s / 3)
            running = dict(self._running)
            if self._stop_keeping_leases.is_set() or not running:
                continue
            until = self._clock.now() + timedelta(seconds=self._lease_s)
            try:
                async with self._database.transaction() as session:
                    taken_over = await jobs.extend_leases(session, job_ids=list(running), owner=self.owner, until=until)
            except Exception as exc:  # the keeper outlives every round: a dead one lets leases run out
                log.warning("job_leases_not_extended", jobs=len(running), error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            for job_id in taken_over:
                log.warning("job_lease_lost", job_id=job_id)
                running[job_id].cancel()
