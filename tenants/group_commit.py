"""Group commit for the embedded SQLite database: many commits made durable by one sync.

With `synchronous=FULL` every SQLite commit syncs the write-ahead log before it returns. That
sync is the most expensive step of a small transaction, and it happens on the event loop's
thread (`tenants.sqlite_inline`) while the writer holds the one write lock: three syncs in a
row for each newInstance, and every other call waiting meanwhile.

So MarketGate runs a WAL database at `synchronous=NORMAL`: a commit appends its frames to the
log and returns, and SQLite itself syncs only around checkpoints (the log before one, the
database after it). Such a commit survives a crash of the process but not, on its own, a
power loss. `GroupCommit` adds what `FULL` would have done, once for many commits: `Database`
reports each commit (`committed`) and, before the transaction's block ends, waits (`durable`)
until a sync of the log file that began after that commit has finished. The sync runs as a
callback of the event loop, after the callbacks already due: every commit made by then shares
it, and commits made later wait for the next one. The log only grows between checkpoints, so
one sync of it covers every commit appended before; the first sync of a new log file also
syncs its directory, as SQLite does.
"""

import asyncio
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
        self._synced_log: int | None = None  # inode of the log file last synced
        self._next: asyncio.Future[Exception | None] | None = None
        self.syncs = 0
        """How many syncs have run."""

    def watch(self, database_file: Path) -> None:
        """Sync the write-ahead log of `database_file` (an absolute path) for every commit."""
        self._log_path = database_file.with_name(database_file.name + "-wal")

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

        Raises OSError when the sync fails. A caller cancelled while it waits leaves the sync to
        run for the others."""
        while self._synced < commit and self._log_path is not None:
            if self._next is None:
                loop = asyncio.get_running_loop()
                self._next = loop.create_future()
                loop.call_soon(self._sync, self._next)
            failure = await asyncio.shield(self._next)
            if failure is not None:
                raise failure

    def _sync(self, done: "asyncio.Future[Exception | None]") -> None:
        self._next = None
        covered = self._committed  # every commit counted so far has written its frames
        try:
            if self._log_path is not None:
                self._sync_log(self._log_path)
        except Exception as exc:  # every waiter gets it; none may be left waiting
            done.set_result(exc)
            return
        self._synced = max(self._synced, covered)
        self.syncs += 1
        done.set_result(None)

    def _sync_log(self, log_path: Path) -> None:
        try:
            descriptor = os.open(log_path, os.O_RDONLY)
        except FileNotFoundError:
            # No log file: SQLite removes it only after checkpointing every frame into the
            # database and syncing that (when its last connection closes).
            return
        try:
            os.fsync(descriptor)
            inode = os.fstat(descriptor).st_ino
        finally:
            os.close(descriptor)
        if inode != self._synced_log:
            directory = os.open(log_path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._synced_log = inode
