"""SQLite connections whose statements run on the event loop's own thread; commits do not.

aiosqlite hands every call (cursor, execute, fetch, commit, close) to a worker thread and the
result back through the event loop: a thread switch and a loop round trip per call, each
waiting behind whatever else the loop has to do. A statement on a local SQLite file takes
microseconds, far less than the hand-off, so MarketGate runs them in place: the connection is
aiosqlite's own class, which SQLAlchemy's aiosqlite dialect drives unchanged, with the queue
to its worker thread replaced by one that runs each call at once. The one call that waits on
the disk, `commit` (it syncs the write-ahead log, and now and then checkpoints it), runs in a
thread of the loop's executor, so the loop serves other requests meanwhile.

The price is that a statement waiting on SQLite's file lock (another *process* writing, up to
`busy_timeout`) holds the event loop meanwhile. The embedded database serves one MarketGate
process; its writers queue on `Database`'s lock and so never wait on the file lock.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite

Call = tuple[asyncio.Future[Any] | None, Callable[[], Any]]


class _RunAtOnce:
    """Stands in for aiosqlite's queue to its worker thread: each call put on it runs now."""

    def put_nowait(self, call: Call) -> None:
        future, function = call
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite's thread does
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its worker thread (see the module's docstring)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    async def commit(self) -> None:
        await asyncio.to_thread(self._conn.commit)

    def __await__(self) -> Generator[Any, None, "InlineConnection"]:
        # aiosqlite starts its worker thread here; this connection has none.
        yield from self._connect().__await__()
        return self


def inline_connector(database: str, **options: Any) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy: opens `database` with `sqlite3.connect(**options)`."""

    async def connect() -> InlineConnection:
        return await InlineConnection(lambda: sqlite3.connect(database, **options))

    return connect
