"""SQLite connections whose calls run on the event loop's own thread.

aiosqlite hands every call (cursor, execute, fetch, commit, close) to a worker thread and the
result back through the event loop: a thread switch and a loop round trip per call, each
waiting behind whatever else the loop has to do. A statement on a local SQLite file takes
microseconds, far less than the hand-off, so MarketGate runs them in place: the connection is
aiosqlite's own class, which SQLAlchemy's aiosqlite dialect drives unchanged, with the queue
to its worker thread replaced by one that runs each call at once.

Commits too. A commit syncs the write-ahead log (`synchronous=FULL`: answered means on disk),
which takes a fraction of a millisecond on an idle disk and a few under heavy I/O. Handing it
to a thread did not pay: the worker thread waits for the GIL while the loop runs Python (up to
the switch interval, twice per commit), and it does so holding SQLite's one write lock, so
every writer queued behind it. In one comparison with `bench.basic_calls` (on a loaded
machine), the worker spent about a sixth less CPU per newInstance with commits in place.

The price is that the loop waits meanwhile: on the disk during a commit, and on SQLite's file
lock when another *process* writes (up to `busy_timeout`). The embedded database serves one
MarketGate process; its writers queue on `Database`'s lock and so never wait on the file lock.
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

    def __await__(self) -> Generator[Any, None, "InlineConnection"]:
        # aiosqlite starts its worker thread here; this connection has none.
        yield from self._connect().__await__()
        return self


def inline_connector(database: str, **options: Any) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy: opens `database` with `sqlite3.connect(**options)`."""

    async def connect() -> InlineConnection:
        return await InlineConnection(lambda: sqlite3.connect(database, **options))

    return connect
