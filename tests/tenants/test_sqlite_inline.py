"""SQLite statements and commits run on the event loop's thread; errors reach the caller."""

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from tenants.database import Database
from tenants.sqlite_inline import InlineConnection

pytestmark = pytest.mark.anyio


@pytest.fixture
async def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'inline.db'}")


async def test_statements_run_on_the_loop_thread(database: Database) -> None:
    @event.listens_for(database.engine.sync_engine, "connect")
    def _thread_function(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.driver_connection.create_function("thread_of", 0, threading.get_ident)

    try:
        async with database.transaction() as session:
            in_statement = (await (await session.connection()).execute(text("SELECT thread_of()"))).scalar_one()
        assert in_statement == threading.get_ident()
    finally:
        await database.dispose()


async def test_commits_run_on_the_loop_thread(database: Database) -> None:
    """No hand-off to a thread that would wait for the GIL holding SQLite's write lock."""
    committed_in: list[int] = []
    try:
        async with database.transaction() as session:
            connection = await session.connection()
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            inline = (await connection.get_raw_connection()).dbapi_connection
            assert isinstance(inline, InlineConnection)
            driver = inline._connection
            inline._connection = _CommitWatcher(driver, committed_in)
        inline._connection = driver  # the block's end committed through the watcher
        assert committed_in == [threading.get_ident()]
    finally:
        await database.dispose()


async def test_errors_reach_the_caller_and_the_connection_goes_on(database: Database) -> None:
    try:
        async with database.transaction() as session:
            connection = await session.connection()
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        await _insert_names(database, "a")
        with pytest.raises(IntegrityError):
            await _insert_names(database, "b", "a")
        async with database.reader() as session:
            connection = await session.connection()
            names = (await connection.execute(text("SELECT name FROM t ORDER BY name"))).scalars().all()
        assert names == ["a"]  # the failed transaction left nothing behind
    finally:
        await database.dispose()


async def _insert_names(database: Database, *names: str) -> None:
    async with database.transaction() as session:
        connection = await session.connection()
        for name in names:
            await connection.execute(text("INSERT INTO t (name) VALUES (:name)"), {"name": name})


class _CommitWatcher:
    """A sqlite3 connection whose commits note their thread (sqlite3's own methods are read-only)."""

    def __init__(self, wrapped: Any, threads: list[int]) -> None:
        self.wrapped = wrapped
        self._threads = threads

    def commit(self) -> None:
        self._threads.append(threading.get_ident())
        self.wrapped.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


async def test_results_can_be_streamed(database: Database) -> None:
    try:
        async with database.reader() as session:
            connection = await session.connection()
            result = await connection.stream(text("SELECT 1 UNION ALL SELECT 2"))
            assert [row async for (row,) in result] == [1, 2]
    finally:
        await database.dispose()


async def test_a_writer_gives_the_lock_back_before_any_other_task_runs(database: Database) -> None:
    """Commit, close and the writer lock's release all happen in place: no other task runs while
    the writer lock is held on the way out (a hand-off there made every other writer wait a
    round trip). Only then does the writer wait for the disk (`tenants.group_commit`)."""
    loop = asyncio.get_running_loop()
    lock_held_when_others_ran: list[bool] = []
    try:
        async with database.transaction() as session:
            await (await session.connection()).execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            loop.call_soon(lambda: lock_held_when_others_ran.append(database._sqlite_writer.locked()))
        await asyncio.sleep(0)
        assert lock_held_when_others_ran == [False]
    finally:
        await database.dispose()


async def test_a_reader_with_nothing_left_to_sync_never_hands_the_loop_over(database: Database) -> None:
    loop = asyncio.get_running_loop()
    others_ran: list[str] = []
    try:
        async with database.transaction() as session:  # its commit is on disk once the block ends
            await (await session.connection()).execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        async with database.reader() as session:
            await (await session.connection()).execute(text("SELECT 1"))
            loop.call_soon(others_ran.append, "other")
        assert others_ran == []
        await asyncio.sleep(0)
        assert others_ran == ["other"]
    finally:
        await database.dispose()
