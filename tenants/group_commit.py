"""Group commit for the embedded SQLite database: many commits made durable by one sync.

With `synchronous=FULL` every SQLite commit syncs the write-ahead log before it returns. That
sync is the most expensive step of a small transaction, and it happens on the event loop's
thread (`tenants.sqlite_inline`) while the writer holds the one write lock: a newInstance
commits three times, and every other call waited meanwhile.

So MarketGate runs a WAL database at `synchronous=NORMAL`: a commit writes its frames to the
log and returns. SQLite itself then syncs only the log's header when it starts or restarts a
log (and the directory when it creates one), the log before a checkpoint and the database
after it. Such a commit survives a crash of the process but not, on its own, a power loss.
`GroupCommit` adds what `FULL` would have done, once for many commits: `Database` reports each
commit (`committed`) and, before the transaction's block ends, waits (`durable`) until a sync
of the log file that began after that commit has finished. A sync starts after the event
loop's callbacks already due, so every commit made by then shares it. A sync flushes every page
of the file written before it, so it covers every commit counted before it began.

The sync does not hold up the event loop: where the kernel offers asynchronous I/O (Linux's
`io_submit`, through `caio`), the loop submits it and serves other calls while the disk works,
and learns of its end from an eventfd it watches like a socket. One sync runs at a time; the
commits made while it runs wait for the next, which starts as soon as it ends. Elsewhere (no
such kernel interface, or its probe failed) the sync runs on the loop's thread, which waits for
the disk meanwhile.

What that buys was measured with `python -m bench.compare_builds --baseline 6e03b73` (the
sync on the loop's thread) on 2026-11-27, ten alternating 8-second phases per build. At 85
newInstance calls a second, near the worker's capacity as at issue 2's target load, the p99
was lower in all ten rounds (median 236 ms against 556 ms): a loop that waits for the disk
falls behind there. At 70 and 60 calls a second there was no consistent difference (lower in
4 and in 6 of 10 rounds). CPU per call was the same (ratios 0.99-1.01). Running the sync in
the loop's executor (a thread) instead was tried before: every sync then handed the GIL back
and forth between two threads, and newInstance took 3.2-3.7 ms of CPU per call against
2.8-3.2 ms inline.

A failed sync is final. Linux may drop the pages that failed to reach the disk and report
success to the next sync, so no later sync can vouch for them: from then on every transaction
and reader of this `Database` is refused (`DatabaseUnavailableError`), and readiness fails,
until MarketGate is restarted and SQLite recovers the database from what is on disk.

Commits are counted per `Database` object: a reader waits for the commits of its own object,
not for those another object (or process) made to the same file.
"""

import asyncio
import errno
import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

import structlog


def _kernel_aio_module() -> Any:
    """caio's asyncio binding of Linux's asynchronous I/O; None where there is none (not Linux)."""
    try:
        return importlib.import_module("caio.linux_aio_asyncio")
    except ImportError:
        return None


kernel_aio: Any = _kernel_aio_module()

log = structlog.get_logger(__name__)


class GroupCommit:
    """Counts the commits to one SQLite database and makes them durable by syncing its log.

    Until `watch` names the database file (a WAL database on disk), commits count as durable
    as soon as they return: the database syncs its own commits, or keeps nothing on disk.
    """

    def __init__(self) -> None:
        self._log_path: Path | None = None
        self._committed = 0
        self._synced = 0
        self._running: asyncio.Future[None] | None = None
        """Done when the sync in progress has ended."""
        self._running_covers = 0
        """The last commit the sync in progress covers."""
        self._next: asyncio.Future[None] | None = None
        """Done when the sync that starts after the one in progress (or soon) has ended."""
        self._failure: str | None = None
        self._kernel_aio: Any = None
        """caio's context on the loop of the latest sync, once its probe passed."""
        self._kernel_aio_works: bool | None = None
        """Whether the kernel's asynchronous sync passed its probe (None: not tried yet)."""

    def watch(self, database_file: Path) -> None:
        """Sync the write-ahead log of `database_file` (an absolute path) for every commit."""
        self._log_path = database_file.with_name(database_file.name + "-wal")

    @property
    def failed(self) -> bool:
        """True once a sync has failed (see the module): nothing may be read or written."""
        return self._failure is not None

    def check(self) -> None:
        """Raise OSError if a sync has failed."""
        if self._failure is not None:
            raise OSError(errno.EIO, f"an earlier sync of the database log failed ({self._failure}); restart")

    @property
    def last_commit(self) -> int:
        """The number of the latest commit reported: what a reader may have seen."""
        return self._committed

    def committed(self) -> int:
        """Report a commit that just returned; returns its number for `durable`."""
        self._committed += 1
        return self._committed

    async def durable(self, commit: int) -> None:
        """Return once commit number `commit` (and every earlier one) is on disk.

        Raises OSError when the sync fails, or failed before. A caller cancelled while it waits
        leaves the sync to run for the others."""
        loop = asyncio.get_running_loop()
        while self._synced < commit and self._log_path is not None:
            self.check()
            if self._running is not None and self._running.get_loop() is not loop:
                self._running = None  # of a loop gone: it will never end here
            if self._next is not None and self._next.get_loop() is not loop:
                self._next = None
            if self._running is not None and self._running_covers >= commit:
                await asyncio.shield(self._running)
                continue
            if self._next is None:
                self._next = loop.create_future()
                if self._running is None:
                    loop.call_soon(self._start_sync)
            await asyncio.shield(self._next)

    async def close(self) -> None:
        """Let the sync in flight end, then let go of the kernel's asynchronous I/O context (the
        database is being closed): closed under a sync, the context would never report its end."""
        running = self._running
        if running is not None and running.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(running)
        self._release_kernel_aio()

    def _release_kernel_aio(self) -> None:
        context, self._kernel_aio = self._kernel_aio, None
        if context is not None and not context.loop.is_closed():
            context.close()

    def _start_sync(self) -> None:
        """Start the next sync; it covers every commit counted so far."""
        done, self._next = self._next, None
        if done is None:
            return
        covered = self._committed  # every commit counted so far has written its frames
        self._running, self._running_covers = done, covered
        if self._failure is not None or self._log_path is None:
            self._end_sync(done, covered, None)
            return
        syncing = asyncio.ensure_future(self._sync_log(self._log_path), loop=done.get_loop())
        syncing.add_done_callback(lambda ended: self._end_sync(done, covered, ended))

    def _end_sync(self, done: "asyncio.Future[None]", covered: int, ended: "asyncio.Future[None] | None") -> None:
        """Record how the sync `ended` (None: it never started) and wake its waiters."""
        error = ended.exception() if ended is not None and not ended.cancelled() else None
        if error is not None:  # any failure is final (see the module)
            reason = error.strerror if isinstance(error, OSError) else None
            self._failure = reason or str(error) or type(error).__name__
        elif self._failure is None and ended is not None and not ended.cancelled():
            self._synced = max(self._synced, covered)
        if self._running is done:
            self._running = None
        done.set_result(None)  # each waiter looks at the outcome itself: a fresh error each
        if self._next is not None and self._next.get_loop() is done.get_loop():
            self._start_sync()  # the commits made meanwhile

    async def _sync_log(self, log_path: Path) -> None:
        try:
            descriptor = os.open(log_path, os.O_RDONLY)
        except FileNotFoundError:
            # No log file: SQLite removes it only after checkpointing every frame into the
            # database and syncing that (when its last connection closes).
            return
        try:
            await self._sync_data(descriptor)
        finally:
            os.close(descriptor)

    async def _sync_data(self, descriptor: int) -> None:
        """fdatasync(2) of `descriptor`: through the kernel's asynchronous I/O where it works,
        else on the loop's thread.

        A commit needs the log's frames on disk, and its size where it grew, and fdatasync
        syncs both; fsync would also record the file's times, a journal commit of the file
        system per sync (SQLite too syncs its log with fdatasync). Measured with
        `python -m bench.compare_builds --baseline 10b0a8a --rate 200 --rounds 8` (fsync) on
        2026-11-27: CPU per call the same, the p99 lower in 6 of 8 rounds (median 17.6 ms against
        20.2 ms)."""
        context = await self._kernel_aio_context()
        if context is None:
            getattr(os, "fdatasync", os.fsync)(descriptor)  # macOS has no fdatasync
        else:
            await context.fdsync(descriptor)

    async def _kernel_aio_context(self) -> Any:
        """caio's context for the running loop, or None where the kernel's asynchronous sync is
        not to be used. The first time, a sync of a scratch file beside the log probes it: a
        kernel or container that refuses it falls back to the loop's thread, not to a failure
        (which would be final)."""
        loop = asyncio.get_running_loop()
        if self._kernel_aio is not None and self._kernel_aio.loop is loop:
            return self._kernel_aio
        self._release_kernel_aio()  # a context of a loop gone
        if kernel_aio is None or self._kernel_aio_works is False or self._log_path is None:
            return None
        try:
            context = kernel_aio.AsyncioContext(max_requests=4, loop=loop)
        except Exception as exc:  # no AIO context to be had here (limits, seccomp)
            self._kernel_aio_refused(exc)
            return None
        if self._kernel_aio_works is None:
            try:
                await self._probe(context, self._log_path.parent)
            except Exception as exc:  # refused by this kernel or file system
                context.close()
                self._kernel_aio_refused(exc)
                return None
            self._kernel_aio_works = True
        self._kernel_aio = context
        return context

    @staticmethod
    async def _probe(context: Any, directory: Path) -> None:
        descriptor, name = tempfile.mkstemp(prefix=".marketgate-sync-probe-", dir=directory)
        try:
            os.write(descriptor, b"probe")
            await context.fdsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(name)

    def _kernel_aio_refused(self, exc: Exception) -> None:
        self._kernel_aio_works = False
        log.warning("sqlite_sync_on_loop_thread", reason=f"{type(exc).__name__}: {exc}"[:200])
