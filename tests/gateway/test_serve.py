"""`marketgate serve`'s server: what start-up built is frozen out of the collector's full passes."""

import asyncio
import gc

import pytest
import uvicorn
from starlette.applications import Starlette

from gateway.cli import _Server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_once_started_the_start_up_objects_are_frozen() -> None:
    gc.unfreeze()
    server = _Server(uvicorn.Config(Starlette(), host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn signals start-up with a flag only
                await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
