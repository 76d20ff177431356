"""SQLite commits reach the disk in shared syncs, and no transaction ends before its own."""

import asyncio
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from tenants import group_commit
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError
from tenants.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class Syncs:
    """Records every `os.fsync` of the group commit: the path synced and, for a log, its size."""

    def __init__(self) -> None:
        self._fsync = os.fsync
        self.synced: list[tuple[str, int]] = []
        self.failures: list[OSError] = []

    def fsync(self, descriptor: int) -> None:
        if self.failures:
            raise self.failures.pop()
        path = os.readlink(f"/proc/self/fd/{descriptor}")
        self.synced.append((path, os.fstat(descriptor).st_size))
        self._fsync(descriptor)

    def of_log(self) -> list[int]:
        """The log's size at each of its syncs."""
        return [size for path, size in self.synced if path.endswith("-wal")]


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    recorder = Syncs()
    monkeypatch.setattr(group_commit.os, "fsync", recorder.fsync)
    return recorder


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'group.db'}")


async def _create_table(database: Database) -> None:
    async with database.transaction() as session:
        await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))


async def _insert(database: Database, name: str, *, then: Callable[[], None] = lambda: None) -> None:
    async with database.transaction() as session:
        await (await session.connection()).execute(text("INSERT INTO t (name) VALUES (:name)"), {"name": name})
    then()


def _log_size(tmp_path: Path) -> int:
    return (tmp_path / "group.db-wal").stat().st_size


async def test_a_transaction_ends_only_once_a_sync_of_the_log_covers_its_commit(
    database: Database, syncs: Syncs, tmp_path: Path
) -> None:
    try:
        await _create_table(database)
        at_end: list[tuple[int, int]] = []  # (log size, log syncs) when the block had ended
        await _insert(database, "a", then=lambda: at_end.append((_log_size(tmp_path), len(syncs.of_log()))))
        # The log was synced after the insert's commit had written its frames, before the block ended
        log_size, log_syncs = at_end[0]
        assert log_syncs == 2
        assert syncs.of_log()[-1] == log_size > syncs.of_log()[0]
        # And the database file runs with synchronous=NORMAL: SQLite itself does not sync each commit
        async with database.reader() as session:
            level = (await (await session.connection()).execute(text("PRAGMA synchronous"))).scalar_one()
        assert level == 1
    finally:
        await database.dispose()


async def test_concurrent_writers_share_syncs(database: Database, syncs: Syncs) -> None:
    try:
        await _create_table(database)
        before = len(syncs.of_log())
        await asyncio.gather(*(_insert(database, f"n{index}") for index in range(20)))
        shared = len(syncs.of_log()) - before
        assert 1 <= shared < 20
        async with database.reader() as session:
            count = (await (await session.connection()).execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert count == 20
    finally:
        await database.dispose()


async def test_a_new_log_file_has_its_directory_synced_once(database: Database, syncs: Syncs, tmp_path: Path) -> None:
    try:
        await _create_table(database)
        await _insert(database, "a")
        directory_syncs = [path for path, _size in syncs.synced if path == str(tmp_path)]
        assert directory_syncs == [str(tmp_path)]
    finally:
        await database.dispose()


async def test_a_failed_sync_fails_the_transaction_and_the_next_sync_covers_it(
    database: Database, syncs: Syncs, tmp_path: Path
) -> None:
    try:
        await _create_table(database)
        syncs.failures.append(OSError(errno.EIO, "Input/output error"))
        with pytest.raises(DatabaseUnavailableError, match="Input/output error"):
            await _insert(database, "a")
        # The commit itself happened; the next transaction's sync covers it too
        await _insert(database, "b")
        assert syncs.of_log()[-1] == _log_size(tmp_path)
    finally:
        await database.dispose()


async def test_a_writer_cancelled_while_it_waits_leaves_the_sync_to_the_others(
    database: Database, syncs: Syncs
) -> None:
    try:
        await _create_table(database)
        before = len(syncs.of_log())
        ended: list[str] = []
        first = asyncio.create_task(_insert(database, "a", then=lambda: ended.append("a")))
        second = asyncio.create_task(_insert(database, "b", then=lambda: ended.append("b")))
        await asyncio.sleep(0)  # both committed, both wait for the sync the first one asked for
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        assert ended == ["b"]
        assert len(syncs.of_log()) == before + 1
        async with database.reader() as session:
            names = (await (await session.connection()).execute(text("SELECT name FROM t ORDER BY name"))).scalars()
            assert list(names) == ["a", "b"]
    finally:
        await database.dispose()


async def test_a_reader_waits_for_the_sync_of_every_commit_it_could_have_seen(tmp_path: Path, syncs: Syncs) -> None:
    log = tmp_path / "unit.db-wal"
    log.write_bytes(b"frames")
    commits = GroupCommit()
    commits.watch(tmp_path / "unit.db")
    commits.committed()  # a writer's commit whose writer has not waited yet
    await commits.durable(commits.last_commit)
    assert syncs.of_log() == [len(b"frames")]
    await commits.durable(commits.last_commit)  # nothing new: no second sync
    assert len(syncs.of_log()) == 1
    assert commits.syncs == 1


async def test_without_a_log_to_watch_commits_are_durable_as_they_return(syncs: Syncs) -> None:
    commits = GroupCommit()
    await commits.durable(commits.committed())
    assert syncs.synced == []
