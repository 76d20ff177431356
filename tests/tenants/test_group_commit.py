"""SQLite commits reach the disk in shared syncs, and no transaction ends before its own."""

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol, cast

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from tenants import group_commit
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError
from tenants.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class _PendingLogged(Protocol):
    """asyncio's Task (C and Python) warns on destruction while pending unless this flag is off."""

    _log_destroy_pending: bool


class Syncs:
    """Records every sync of the group commit (the path synced and, for a log, its size), which
    way it went (`os.fdatasync` on the loop's thread or the kernel's asynchronous I/O), and fails
    the next ones with `failures`."""

    def __init__(self, real_sync: Callable[[GroupCommit, int], Awaitable[None]]) -> None:
        self._real_sync = real_sync
        self.synced: list[tuple[str, int]] = []
        self.failures: list[OSError] = []
        self.on_loop_thread = 0

    async def sync(self, commits: GroupCommit, descriptor: int) -> None:
        if self.failures:
            raise self.failures.pop()
        path = os.readlink(f"/proc/self/fd/{descriptor}")
        self.synced.append((path, os.fstat(descriptor).st_size))
        await self._real_sync(commits, descriptor)

    def count_loop_thread_sync(self, descriptor: int) -> None:
        self.on_loop_thread += 1
        _os_fdatasync(descriptor)

    def of_log(self) -> list[int]:
        """The log's size at each of its syncs."""
        return [size for path, size in self.synced if path.endswith("-wal")]


_os_fdatasync = os.fdatasync


@pytest.fixture(params=["kernel-aio", "loop-thread"])
def syncs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Syncs:
    """Every test runs with the sync through the kernel's asynchronous I/O, and on the loop's
    thread (as where the kernel offers none)."""
    if request.param == "loop-thread":
        monkeypatch.setattr(group_commit, "kernel_aio", None)
    recorder = Syncs(GroupCommit._sync_data)

    async def recorded_sync(commits: GroupCommit, descriptor: int) -> None:
        await recorder.sync(commits, descriptor)

    monkeypatch.setattr(GroupCommit, "_sync_data", recorded_sync)
    monkeypatch.setattr(os, "fdatasync", recorder.count_loop_thread_sync)
    return recorder


@pytest.fixture
async def database(tmp_path: Path, syncs: Syncs) -> AsyncIterator[Database]:
    """A database file with a table `t` (name TEXT), its creation already synced (the way
    `syncs` says)."""
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    async with database.transaction() as session:
        await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))
    yield database
    await database.dispose()


async def _insert(database: Database, name: str, *, then: Callable[[], None] = lambda: None) -> None:
    async with database.transaction() as session:
        await (await session.connection()).execute(text("INSERT INTO t (name) VALUES (:name)"), {"name": name})
    then()


async def _count(database: Database) -> int:
    async with database.reader() as session:
        return int((await (await session.connection()).execute(text("SELECT count(*) FROM t"))).scalar_one())


def _log_size(tmp_path: Path) -> int:
    return (tmp_path / "group.db-wal").stat().st_size


async def test_a_transaction_ends_only_once_a_sync_of_the_log_covers_its_commit(
    database: Database, syncs: Syncs, tmp_path: Path
) -> None:
    size_before, syncs_before = _log_size(tmp_path), len(syncs.of_log())
    at_end: list[tuple[int, list[int]]] = []  # (log size, sizes synced) when the block had ended
    await _insert(database, "a", then=lambda: at_end.append((_log_size(tmp_path), syncs.of_log()[syncs_before:])))
    # The log was synced once, after the insert's commit had written its frames, before the block ended
    log_size, synced = at_end[0]
    assert synced == [log_size]
    assert log_size > size_before
    # And the database file runs with synchronous=NORMAL: SQLite itself does not sync each commit
    async with database.reader() as session:
        level = (await (await session.connection()).execute(text("PRAGMA synchronous"))).scalar_one()
    assert level == 1


async def test_a_transaction_that_wrote_nothing_waits_for_no_sync(database: Database, syncs: Syncs) -> None:
    before = len(syncs.of_log())
    async with database.transaction():
        pass
    assert len(syncs.of_log()) == before
    await _insert(database, "a")
    assert len(syncs.of_log()) == before + 1


async def test_a_block_that_commits_itself_still_ends_once_on_disk(database: Database, syncs: Syncs) -> None:
    before = len(syncs.of_log())
    async with database.transaction() as session:
        await (await session.connection()).execute(text("INSERT INTO t (name) VALUES ('a')"))
        await session.commit()
    assert len(syncs.of_log()) == before + 1
    assert await _count(database) == 1


async def test_a_transaction_whose_block_fails_is_rolled_back(database: Database, syncs: Syncs) -> None:
    async def failing_block() -> None:
        async with database.transaction() as session:
            await (await session.connection()).execute(text("INSERT INTO t (name) VALUES ('kept?')"))
            raise LookupError("the block fails")

    with pytest.raises(LookupError):
        await failing_block()
    assert await _count(database) == 0
    await _insert(database, "a")  # the writer lock and the connection were given back
    assert await _count(database) == 1


async def test_concurrent_writers_share_syncs(database: Database, syncs: Syncs) -> None:
    before = len(syncs.of_log())
    await asyncio.gather(*(_insert(database, f"n{index}") for index in range(20)))
    shared = len(syncs.of_log()) - before
    assert 1 <= shared < 20
    assert await _count(database) == 20


async def test_a_failed_sync_is_final(database: Database, syncs: Syncs) -> None:
    """Linux may drop pages that failed to reach the disk and report the next sync a success, so
    after a failed sync nothing more is read or written, and readiness fails."""
    assert await database.ping()
    syncs.failures.append(OSError(errno.EIO, "Input/output error"))
    with pytest.raises(DatabaseUnavailableError, match="Input/output error"):
        await _insert(database, "a")
    for attempt in (lambda: _insert(database, "b"), lambda: _count(database)):
        with pytest.raises(DatabaseUnavailableError, match="earlier sync of the database log failed"):
            await attempt()
    assert not await database.ping()


async def test_a_writer_cancelled_while_it_waits_leaves_the_sync_to_the_others(
    database: Database, syncs: Syncs
) -> None:
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


async def test_a_reader_ends_only_once_what_it_could_have_seen_is_synced(database: Database, syncs: Syncs) -> None:
    before = len(syncs.of_log())
    writer = asyncio.create_task(_insert(database, "a"))
    await asyncio.sleep(0)  # the writer has committed and waits for the sync it asked for
    async with database.reader() as session:
        names = (await (await session.connection()).execute(text("SELECT name FROM t"))).scalars().all()
    synced_when_the_reader_ended = len(syncs.of_log()) - before
    await writer
    assert names == ["a"]
    assert synced_when_the_reader_ended == 1


async def test_a_commit_counts_only_once_it_has_happened(database: Database, syncs: Syncs, tmp_path: Path) -> None:
    """A sync that another caller asks for while a writer's block still runs does not cover
    that writer's commit: the writer waits for a sync after it."""
    at_end: list[tuple[int, int]] = []

    async def slow_writer() -> None:
        async with database.transaction() as session:
            await asyncio.sleep(0.01)  # a reader's wait (and its sync) happens meanwhile
            await (await session.connection()).execute(text("INSERT INTO t (name) VALUES ('slow')"))
        at_end.append((_log_size(tmp_path), syncs.of_log()[-1]))

    writer = asyncio.create_task(slow_writer())
    await asyncio.sleep(0)
    await _count(database)
    await writer
    log_size, last_synced_size = at_end[0]
    assert last_synced_size == log_size


async def test_without_a_log_to_watch_commits_are_durable_as_they_return(syncs: Syncs) -> None:
    commits = GroupCommit()
    await commits.durable(commits.committed())
    assert syncs.synced == []


def test_a_sync_left_pending_by_a_loop_gone_is_not_waited_for(tmp_path: Path, syncs: Syncs) -> None:
    """A loop closed with a sync still due (a test's loop, a restarted server) leaves that sync
    unrun: a commit made on the next loop gets a sync of its own instead of waiting forever."""
    log = tmp_path / "gone.db-wal"
    log.write_bytes(b"frames")
    commits = GroupCommit()
    commits.watch(tmp_path / "gone.db")
    first_loop = asyncio.new_event_loop()
    try:
        first_loop.call_soon(first_loop.stop)  # after one pass: the waiter asks for a sync, still due
        waiter = first_loop.create_task(commits.durable(commits.committed()))
        first_loop.run_forever()
        assert not waiter.done()
        # it goes with its loop, as intended here (the flag exists on asyncio's Task, typeshed omits it)
        cast(_PendingLogged, waiter)._log_destroy_pending = False
    finally:
        first_loop.close()
    assert syncs.of_log() == []

    async def on_the_next_loop() -> None:
        await asyncio.wait_for(commits.durable(commits.committed()), timeout=5)

    asyncio.run(on_the_next_loop())
    assert syncs.of_log() == [len(b"frames")]


async def test_syncs_go_through_the_kernel_where_it_offers_asynchronous_io(
    database: Database, syncs: Syncs, request: pytest.FixtureRequest
) -> None:
    """Through the kernel's asynchronous I/O the loop's thread never syncs itself."""
    await asyncio.gather(*(_insert(database, f"n{index}") for index in range(5)))
    assert syncs.of_log()
    if request.node.callspec.params["syncs"] == "kernel-aio":
        assert syncs.on_loop_thread == 0
    else:
        assert syncs.on_loop_thread == len(syncs.synced)


class FakeKernelAio:
    """Stands in for caio's `linux_aio_asyncio`: its contexts fail as told, or pass syncs on."""

    def __init__(self, *, refuse_context: Exception | None = None, fail_after: int | None = None) -> None:
        self.refuse_context = refuse_context
        self.fail_after = fail_after
        """fsyncs that pass (the probe's first), after which each fails with EIO's message."""
        self.fsyncs = 0
        self.closed = 0
        self.hold: asyncio.Event | None = None
        """While set to an event, each fsync stays in flight until the event is set."""
        self.log_sizes: list[int] = []
        """The size of the file at each fsync."""
        fake = self

        class AsyncioContext:
            def __init__(self, *, max_requests: int, loop: asyncio.AbstractEventLoop) -> None:
                if fake.refuse_context is not None:
                    raise fake.refuse_context
                self.loop = loop

            async def fdsync(self, descriptor: int) -> None:
                fake.fsyncs += 1
                if fake.fail_after is not None and fake.fsyncs > fake.fail_after:
                    raise SystemError("Input/output error")  # what caio raises for a failed operation
                fake.log_sizes.append(os.fstat(descriptor).st_size)
                if fake.hold is not None:
                    await fake.hold.wait()
                _os_fdatasync(descriptor)

            def close(self) -> None:
                fake.closed += 1

        self.AsyncioContext = AsyncioContext


@pytest.fixture
def loop_thread_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counted(descriptor: int) -> None:
        calls.append(descriptor)
        _os_fdatasync(descriptor)

    monkeypatch.setattr(os, "fdatasync", counted)
    return calls


@pytest.mark.parametrize(
    "kernel",
    [
        FakeKernelAio(refuse_context=OSError(errno.EAGAIN, "Resource temporarily unavailable")),
        FakeKernelAio(fail_after=0),  # the probe's sync fails: an old kernel refuses IOCB_CMD_FSYNC
    ],
    ids=["no-context", "probe-fails"],
)
async def test_where_the_kernel_refuses_asynchronous_syncs_they_run_on_the_loop_thread(
    kernel: FakeKernelAio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_thread_fsyncs: list[int]
) -> None:
    monkeypatch.setattr(group_commit, "kernel_aio", kernel)
    database = Database(f"sqlite:///{tmp_path / 'fallback.db'}")
    try:
        with capture_logs() as logs:
            async with database.transaction() as session:
                await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))
            await _insert(database, "a")
        assert await _count(database) == 1
        assert await database.ping()
        assert len(loop_thread_fsyncs) >= 2  # each transaction's sync, on the loop's thread
        assert [entry["event"] for entry in logs] == ["sqlite_sync_on_loop_thread"]
        assert not [name for name in os.listdir(tmp_path) if "probe" in name]  # the probe's file is gone
    finally:
        await database.dispose()


async def test_a_failed_asynchronous_sync_is_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_thread_fsyncs: list[int]
) -> None:
    kernel = FakeKernelAio(fail_after=2)  # the probe and the table's creation pass, then EIO
    monkeypatch.setattr(group_commit, "kernel_aio", kernel)
    database = Database(f"sqlite:///{tmp_path / 'failing.db'}")
    try:
        async with database.transaction() as session:
            await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))
        with pytest.raises(DatabaseUnavailableError, match="Input/output error"):
            await _insert(database, "a")
        with pytest.raises(DatabaseUnavailableError, match="earlier sync of the database log failed"):
            await _count(database)
        assert not await database.ping()
        assert loop_thread_fsyncs == []  # no quiet second try on the loop's thread
    finally:
        await database.dispose()
    assert kernel.closed == 1


async def test_while_a_sync_is_in_flight_the_loop_goes_on_and_later_commits_wait_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_thread_fsyncs: list[int]
) -> None:
    """One sync at a time: a commit made while the disk works is not covered by that sync (it
    began before the commit) but by the next, which starts as soon as the first ends."""
    kernel = FakeKernelAio()
    monkeypatch.setattr(group_commit, "kernel_aio", kernel)
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    try:
        async with database.transaction() as session:
            await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))
        kernel.hold = asyncio.Event()
        syncs_before = kernel.fsyncs
        ended: list[str] = []
        first = asyncio.create_task(_insert(database, "a", then=lambda: ended.append("a")))
        await asyncio.sleep(0.05)  # the first commit's sync is in flight: this coroutine runs all the same
        assert kernel.fsyncs == syncs_before + 1 and ended == []
        size_in_flight = kernel.log_sizes[-1]
        second = asyncio.create_task(_insert(database, "b", then=lambda: ended.append("b")))
        await asyncio.sleep(0.05)  # the second has committed and waits: no second sync while one runs
        assert kernel.fsyncs == syncs_before + 1 and ended == []
        assert _log_size(tmp_path) > size_in_flight
        first_hold, kernel.hold = kernel.hold, asyncio.Event()  # the next sync stays in flight too
        first_hold.set()
        await asyncio.wait_for(first, timeout=5)
        await asyncio.sleep(0.05)
        assert kernel.fsyncs == syncs_before + 2  # the second's commit got a sync of its own, after the first
        assert kernel.log_sizes[-1] == _log_size(tmp_path)
        # Until that one ends, neither the second writer nor a reader (who may see "b") ends
        reader = asyncio.create_task(_count(database))
        await asyncio.sleep(0.05)
        assert ended == ["a"] and not reader.done()
        kernel.hold.set()
        assert await asyncio.wait_for(reader, timeout=5) == 2
        await asyncio.wait_for(second, timeout=5)
        assert ended == ["a", "b"]
        assert loop_thread_fsyncs == []
    finally:
        await database.dispose()


async def test_a_database_closed_under_a_sync_lets_the_sync_end_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_thread_fsyncs: list[int]
) -> None:
    kernel = FakeKernelAio()
    monkeypatch.setattr(group_commit, "kernel_aio", kernel)
    database = Database(f"sqlite:///{tmp_path / 'group.db'}")
    async with database.transaction() as session:
        await (await session.connection()).execute(text("CREATE TABLE t (name TEXT)"))
    kernel.hold = asyncio.Event()
    writer = asyncio.create_task(_insert(database, "a"))
    await asyncio.sleep(0.05)  # its sync is in flight
    closing = asyncio.create_task(database.dispose())
    await asyncio.sleep(0.05)
    assert not closing.done() and kernel.closed == 0
    kernel.hold.set()
    await asyncio.wait_for(asyncio.gather(writer, closing), timeout=5)
    assert kernel.closed == 1
