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
of the log file that began after that commit has finished. The sync runs as a callback of the
event loop, after the callbacks already due: every commit made by then shares it, and commits
made later wait for the next one. A sync flushes every page of the file written before it, so
it covers every commit counted before it began.

The sync runs on the loop's thread, which waits for the disk meanwhile (8 % of the loop's time
at newInstance capacity in `bench.basic_calls`). Running it in the loop's executor instead
freed that time but cost more than it gave: every sync then handed the GIL back and forth
between two threads, and newInstance took 3.2-3.7 ms of CPU per call at its target load
against 2.8-3.2 ms inline (three runs each).

A failed sync is final. Linux may drop the pages that failed to reach the disk and report
success to the next sync, so no later sync can vouch for them: from then on every transaction
and reader of this `Database` is refused (`DatabaseUnavailableError`), and readiness fails,
until MarketGate is restarted and SQLite recovers the database from what is on disk.

Commits are counted per `Database` object: a reader waits for the commits of its own object,
not for those another object (or process) made to the same file.
"""

import asyncio
import errno
import os
from pathlib import Path


class GroupCommit:
    """Counts the commits to one SQLite database and makes them durable by syncing its log.

    Until `watch` names the database file (a WAL database on disk), commits count as durable
    as soon as they return: the database syncs its own commits, or keeps nothing on disk.
    """

    def __init__(self) -> None:
        self._log_path: Path | None = None
        self._committed = 0
        self._synced = 0
        self._next: asyncio.Future[None] | None = None
        self._failure: str | None = None
        self.syncs = 0
        """How many syncs have run."""

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
            if self._next is None or self._next.get_loop() is not loop:  # none, or of a loop gone
                self._next = loop.create_future()
                loop.call_soon(self._sync, self._next)
            await asyncio.shield(self._next)

    def _sync(self, done: "asyncio.Future[None]") -> None:
        if self._next is done:
            self._next = None
        covered = self._committed  # every commit counted so far has written its frames
        try:
            if self._failure is None and self._log_path is not None:
                self._sync_log(self._log_path)
        except Exception as exc:  # any failure is final (see the module)
            self._failure = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        else:
            if self._failure is None:
                self._synced = max(self._synced, covered)
                self.syncs += 1
        done.set_result(None)  # each waiter looks at the outcome itself: a fresh error each

    def _sync_log(self, log_path: Path) -> None:
        try:
            descriptor = os.open(log_path, os.O_RDONLY)
        except FileNotFoundError:
            # No log file: SQLite removes it only after checkpointing every frame into the
            # database and syncing that (when its last connection closes).
            return
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
