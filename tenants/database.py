"""The database: one async engine, sessions for reading and for writing.

SQLite (the embedded default) takes one writer at a time; writers in this process queue on
an asyncio lock instead of spinning on SQLITE_BUSY, and other processes wait on
`busy_timeout`. Its statements run on the event loop's thread (`tenants.sqlite_inline`), and
its commits reach the disk in batches (`tenants.group_commit`). PostgreSQL takes concurrent
writers and row locks.

Either way, a transaction's block ends only once its commit is on disk, and a reader's once
every commit it could have seen is.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.errors import DatabaseUnavailableError
from tenants.group_commit import GroupCommit
from tenants.sqlite_inline import inline_creator

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
_SQLITE_DIALECT = SQLiteDialect_aiosqlite()


_CONNECTION = "marketgate.connection"
_BEGAN = "marketgate.began"


class _Session(Session):
    """The ORM session beneath every session a `Database` hands out: notes in its `info` that it
    began a transaction on a connection, so that `Database.transaction` knows whether its block
    wrote anything to commit (however the block ended its transactions)."""


@event.listens_for(_Session, "after_begin")
def _note_begin(session: Session, _transaction: Any, _connection: Any) -> None:
    session.info[_BEGAN] = True


async def connection_of(session: AsyncSession) -> AsyncConnection:
    """The connection of `session`'s transaction, for Core statements.

    The session is asked once per transaction and its answer kept in `session.info`: each ask
    spawns a greenlet and passes through the ORM's transaction bookkeeping, and the data layer's
    functions want the connection for every statement (newInstance asked eight times)."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction and transaction.is_active:
        connection: AsyncConnection = kept[1]
        return connection
    connection = await session.connection()
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), connection)
    return connection


def shown_url(url: str) -> str:
    """The database URL fit for a message or a log: its password hidden (or nothing of it, if it
    does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable database URL)"


def _backend(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return backend


def async_url(url: str) -> URL:
    """The URL with the async driver MarketGate uses for its backend."""
    parsed = make_url(url)
    return parsed.set(drivername=_ASYNC_DRIVERS[_backend(parsed)])


def sync_url(url: str) -> URL:
    """The URL with a synchronous driver, for migrations."""
    parsed = make_url(url)
    return parsed.set(drivername=_SYNC_DRIVERS[_backend(parsed)])


def _prepare_sqlite(engine: AsyncEngine, group_commit: GroupCommit) -> None:
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA database_list")
        database_file = next(row[2] for row in cursor.fetchall() if row[1] == "main")
        if journal_mode == "wal" and database_file:
            # A commit does not sync the log; `GroupCommit` syncs it once for many commits,
            # before any of their transactions ends: answered still means on disk.
            cursor.execute("PRAGMA synchronous=NORMAL")
            group_commit.watch(Path(database_file))
        else:  # no log to sync (an in-memory database, or no WAL): every commit syncs itself
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class Database:
    """The engine and its sessions; opened by the app's lifespan, closed with it."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        """Connections are opened on demand; up to `pool_size` stay open once opened, and bursts
        open up to a quarter as many again, closed when given back. A connection opened and
        closed per request is expensive (a new backend process on PostgreSQL), so the pool should
        hold what a busy worker uses at once."""
        self.url = async_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {
            "pool_pre_ping": False,
            "pool_size": pool_size,
            "max_overflow": pool_size // 4,
            "pool_timeout": 5,
        }
        if self.is_sqlite:
            connect_args, connect_options = _SQLITE_DIALECT.create_connect_args(self.url)
            options["creator"] = inline_creator(*connect_args, **connect_options)
        else:
            options["connect_args"] = {"connect_timeout": 5}
        self.engine = create_async_engine(self.url, **options)
        self._group_commit = GroupCommit()
        if self.is_sqlite:
            _prepare_sqlite(self.engine, self._group_commit)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False
        )
        # PostgreSQL readers run each statement on its own (autocommit): no BEGIN before the first
        # and no ROLLBACK after the last, two round trips less per read; under READ COMMITTED every
        # statement sees its own snapshot either way. SQLite begins no transaction for a SELECT.
        readers = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = async_sessionmaker(
            readers, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False
        )
        self._sqlite_writer = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed, and on disk, when the block ends; rolled back on error.

        SQLite's writer lock is given back before the wait for the disk, so the next writer
        commits meanwhile and its commit joins the next sync. A caller cancelled during that
        wait has committed all the same (as one cancelled while PostgreSQL answers a COMMIT may
        have): its work must be idempotent, as every retried call's is.

        The session begins its transaction when first used, and the block commits it; a block
        that never began one (no statement, nothing added) has nothing to commit and waits for
        no sync. (`session.begin()` would cost every transaction a greenlet of its own, to begin
        what the first statement begins anyway.)"""
        async with self._translated_errors():
            self._group_commit.check()
            async with self._sqlite_writer if self.is_sqlite else nullcontext():
                async with self._session(self._sessions) as session:
                    try:
                        yield session
                    except BaseException:
                        await session.rollback()
                        raise
                    await session.commit()
                    began = session.info.get(_BEGAN, False)
                commit = self._group_commit.committed() if began else None
            if commit is not None:
                await self._group_commit.durable(commit)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (each statement on its own: nothing it writes is kept back).
        The block ends once every commit it could have read is on disk, so that nothing is
        answered from a commit that a power loss could still undo."""
        async with self._translated_errors():
            self._group_commit.check()
            async with self._session(self._readers) as session:
                yield session
            await self._group_commit.durable(self._group_commit.last_commit)

    @asynccontextmanager
    async def _session(self, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
        """A session, closed when the block ends.

        SQLAlchemy closes an AsyncSession in a task of its own, shielded, so that a cancelled
        caller cannot cut a close that does I/O short: right for PostgreSQL. SQLite's close does
        no I/O and never hands the loop over (its statements run in place), so it is closed in
        place. The task hand-off cost a loop round trip per session, and a writer paid it holding
        the writer lock, so every other writer waited too: newInstance spent a fifth more CPU.
        """
        if not self.is_sqlite:
            async with sessions() as session:
                try:
                    yield session
                finally:
                    session.info.clear()  # what connection_of kept: it refers back to the session
            return
        session = sessions()
        try:
            yield session
        finally:
            session.info.clear()
            await session.close()

    @asynccontextmanager
    async def _translated_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except (OperationalError, OSError) as exc:
            raise DatabaseUnavailableError(str(exc).splitlines()[0][:200]) from exc
        except PoolTimeoutError as exc:  # every pooled connection busy for `pool_timeout`
            raise DatabaseUnavailableError("no database connection free in time") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailableError("database connection lost") from exc
            raise

    async def ping(self) -> bool:
        """True when the database answers a trivial query (and no sync of its log has failed)."""
        if self._group_commit.failed:
            return False
        try:
            async with self.engine.connect() as connection:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)
            return True
        except (OperationalError, DBAPIError, OSError, TimeoutError):
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self._group_commit.close()
