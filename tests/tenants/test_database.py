"""The connection pool: what a busy worker opened stays open, bursts beyond it are bounded; the
connection of a session's transaction."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, text
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import MemoryStore
from tenants.database import Database, connection_of
from tests.conftest import Backend
from tests.fakes import Behaviour, recording_factory

pytestmark = pytest.mark.anyio


async def test_connections_up_to_the_pool_size_are_kept_and_bursts_are_bounded(backend: Backend) -> None:
    database = Database(backend.database_url, pool_size=4)
    opened: list[object] = []
    event.listen(database.engine.sync_engine, "connect", lambda connection, _record: opened.append(connection))
    try:

        async def readers(count: int) -> None:
            async with AsyncExitStack() as stack:
                for _ in range(count):
                    session = await stack.enter_async_context(database.reader())
                    await (await session.connection()).execute(text("SELECT 1"))

        # Given four readers at once, then four again
        await readers(4)
        await readers(4)
        # Then the second four reused the first four's connections
        assert len(opened) == 4
        # And a burst may open a quarter as many again, but not more (the sixth waits for one)
        await readers(5)
        assert len(opened) == 5
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(readers(6), timeout=1)
    finally:
        await database.dispose()


async def test_the_pool_size_setting_reaches_the_gateway_database(
    settings: Settings, behaviours: dict[str, Behaviour]
) -> None:
    sized = settings.model_copy(update={"database_pool_size": 3})
    application = create_app(sized, adapter_factories={"recording": recording_factory(behaviours)}, store=MemoryStore())
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        assert application.state.database.engine.pool.size() == 3


async def test_a_sessions_connection_is_asked_once_per_transaction(backend: Backend) -> None:
    database = Database(backend.database_url)
    asked: list[object] = []
    try:
        async with AsyncSession(database.engine) as session:
            real_connection = session.sync_session.connection

            def counted(*args: object, **kwargs: object) -> object:
                asked.append(args)
                return real_connection(*args, **kwargs)  # type: ignore[arg-type]

            session.sync_session.connection = counted  # type: ignore[method-assign,assignment]
            # Within one transaction: the session is asked once, and every statement gets that connection
            first = await connection_of(session)
            assert await connection_of(session) is first
            assert (await first.execute(text("SELECT 1"))).scalar() == 1
            assert len(asked) == 1
            # Once the transaction has ended, the next gets the connection of the session's new one
            await session.commit()
            second = await connection_of(session)
            assert second is not first and second.in_transaction()
            assert len(asked) == 2
    finally:
        await database.dispose()
