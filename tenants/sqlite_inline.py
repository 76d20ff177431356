"""SQLite for SQLAlchemy's asyncio engine, driven in place on the event loop's thread.

SQLAlchemy's aiosqlite dialect goes through aiosqlite, which hands every call (cursor,
execute, fetch, close, commit) to a worker thread and its result back through the event loop:
a thread switch and a loop round trip per call, each waiting behind whatever else the loop has
to do, and three of them per statement. A statement on a local SQLite file takes microseconds,
far less than the hand-offs. So MarketGate keeps the aiosqlite dialect (SQL, types, pooling)
and gives it connections of its own that call `sqlite3` directly (`inline_creator`): per
statement one greenlet switch (SQLAlchemy's asyncio layer insists on one per execute) instead
of three round trips through a thread.

Commits too. A commit appends to the write-ahead log without syncing it
(`tenants.group_commit` syncs it once for many commits). Handing commits to a thread did not
pay when each synced the log: the worker thread waits for the GIL while the loop runs Python
(up to the switch interval, twice per commit), and it does so holding SQLite's one write lock,
so every writer queued behind it.

The price is that the loop waits meanwhile: on the disk during a statement (and during the
log's sync where the kernel offers no asynchronous one, see `tenants.group_commit`), and on
SQLite's file lock when another *process* writes (up to `busy_timeout`). The embedded database serves one
MarketGate process; its writers queue on `Database`'s lock and so never wait on the file lock.
"""

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncAdapt_dbapi_cursor
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.util.concurrency import await_

_DBAPI = SQLiteDialect_aiosqlite.import_dbapi()


async def _nothing() -> None:
    return None


class _InlineCursor(AsyncAdapt_dbapi_cursor):
    """A `sqlite3` cursor behind SQLAlchemy's asyncio cursor interface; rows are read at once."""

    __slots__ = ()
    _awaitable_cursor_close = False
    _cursor: sqlite3.Cursor  # type: ignore[assignment]

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        await_(_nothing())  # AsyncConnection.execute requires that its statement awaited once
        cursor = self._cursor
        result = cursor.execute(operation, () if parameters is None else parameters)
        if cursor.description:
            self._rows = collections.deque(cursor.fetchall())
        return result

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        await_(_nothing())
        return self._cursor.executemany(operation, seq_of_parameters)


class InlineConnection(AsyncAdapt_dbapi_connection):
    """A `sqlite3` connection behind SQLAlchemy's asyncio connection interface (see the module).
    Streamed results (`stream()`, `yield_per`) get the same cursor: the rows are local anyway."""

    __slots__ = ("_closed",)
    _cursor_cls = _InlineCursor
    _ss_cursor_cls = _InlineCursor  # type: ignore[assignment]  # buffered rows serve streaming too
    _connection: sqlite3.Connection  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: sqlite3.Connection) -> None:
        super().__init__(dbapi, connection)  # type: ignore[arg-type]  # sync: this class is the async face
        self._closed = False

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value  # type: ignore[assignment]

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._connection.create_function(*args, **kwargs)

    def commit(self) -> None:
        if not self._closed:
            self._connection.commit()

    def rollback(self) -> None:
        if not self._closed:  # as aiosqlite's adapter: a closed connection has nothing to undo
            self._connection.rollback()

    def close(self) -> None:
        self._closed = True
        self._connection.close()

    def terminate(self) -> None:
        self.close()


def inline_creator(database: str, **options: Any) -> Callable[[], InlineConnection]:
    """A `creator` for SQLAlchemy's async engine: opens `database` with `sqlite3.connect(**options)`."""

    def connect() -> InlineConnection:
        return InlineConnection(_DBAPI, sqlite3.connect(database, **options))

    return connect
