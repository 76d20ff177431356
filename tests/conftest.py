"""Fixtures compose settings -> database -> store -> app -> client, on both backends.

Every test that asks for `backend` (directly or through `app`) runs twice: on SQLite with
the in-memory store, and on PostgreSQL with Redis. The real services must be reachable:
an unreachable one fails the run, it is never skipped.
"""

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx
import pytest
import redis.asyncio
from asgi_lifespan import LifespanManager
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind
from gateway.settings import Environment, ProductConfig, Settings
from gateway.simulator.signer import marketplace_body, sign_call
from gateway.store import MemoryStore, RedisStore, Store
from tenants.database import sync_url
from tenants.migrate import upgrade
from tests.fakes import Behaviour, recording_factory

POSTGRES_URL = os.environ.get("MARKETGATE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
# A Redis database of this run's own (1 to 12; 13 to 15 are the benchmarks' and the store tests'),
# so that test runs side by side do not flush each other's keys.
REDIS_URL = os.environ.get("MARKETGATE_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{1 + os.getpid() % 12}")
ALPHA_KEY = "alpha-access-key-0123456789"
BETA_KEY = "beta-access-key-9876543210"


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None

    def reset(self) -> None:
        """Empty every table (the schema stays)."""
        engine = create_engine(sync_url(self.database_url))
        try:
            with engine.begin() as connection:
                tables = [name for name in inspect(connection).get_table_names() if name != "alembic_version"]
                if engine.dialect.name == "postgresql" and tables:
                    connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for name in tables:
                        connection.execute(text(f"DELETE FROM {name}"))
        finally:
            engine.dispose()


def _postgres_schema(url: str, schema: str, *, create: bool) -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            if create:
                connection.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        engine.dispose()


def _in_schema(url: str, schema: str) -> str:
    """The URL with `schema` first on the search path: each test session has its own tables."""
    with_schema = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return with_schema.render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'marketgate.db'}"
        upgrade(url)
        yield Backend("sqlite", url, None)
        return
    schema = f"marketgate_test_{os.getpid()}"
    _postgres_schema(POSTGRES_URL, schema, create=True)
    chosen = Backend("postgresql", _in_schema(POSTGRES_URL, schema), REDIS_URL)
    upgrade(chosen.database_url)
    yield chosen
    _postgres_schema(POSTGRES_URL, schema, create=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    if backend.redis_url is None:
        yield MemoryStore()
        return
    flusher = redis.asyncio.from_url(backend.redis_url)
    await flusher.flushdb()
    await flusher.aclose()
    redis_store = RedisStore(backend.redis_url)
    yield redis_store
    await redis_store.aclose()


@dataclass
class FrozenClock:
    """A clock tests can move; starts at the real time so signatures are current."""

    current: datetime = field(default_factory=lambda: datetime.now(UTC))
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        import time

        return time.monotonic()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def product(name: str, key: str, **overrides: object) -> ProductConfig:
    return ProductConfig.model_validate({"name": name, "adapter": "recording", "access_key": key, **overrides})


@pytest.fixture
def behaviours() -> dict[str, Behaviour]:
    return {"alpha": Behaviour(), "beta": Behaviour()}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    backend.reset()
    return Settings(
        environment=Environment.DEVELOPMENT,
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        data_dir=tmp_path,
        auto_migrate=False,
        job_poll_interval_s=0.05,
        job_lease_s=5,
        products={
            "alpha": product("Alpha", ALPHA_KEY),
            "beta": product("Beta", BETA_KEY, answer_deadline_s=1.0, sign_responses=True),
        },
    )


@pytest.fixture
async def app(settings: Settings, behaviours: dict[str, Behaviour], store: Store) -> AsyncIterator[Starlette]:
    application = create_app(settings, adapter_factories={"recording": recording_factory(behaviours)}, store=store)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mg.test") as http:
        yield http


class SigningOptions(TypedDict, total=False):
    """How `Marketplace.basic` signs a call, when not as the marketplace would now."""

    key: bytes | None
    now_ms: int | None
    nonce: str | None


class Marketplace:
    """Sends signed calls as the marketplace does."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.keys = {"alpha": ALPHA_KEY.encode(), "beta": BETA_KEY.encode()}

    async def basic(
        self,
        slug: str,
        fields: Mapping[str, object],
        *,
        key: bytes | None = None,
        now_ms: int | None = None,
        nonce: str | None = None,
    ) -> httpx.Response:
        body = marketplace_body(dict(fields))
        call = sign_call(
            CallKind.BASIC, body, key=key or self.keys[slug], now_ms=now_ms or epoch_ms(datetime.now(UTC)), nonce=nonce
        )
        return await self.client.post(f"/koogallery/{slug}", params=call.query, content=body, headers=call.headers)

    async def kit(
        self,
        slug: str,
        sync: str,
        fields: Mapping[str, object] | bytes,
        *,
        key: bytes | None = None,
        now_ms: int | None = None,
        nonce: str | None = None,
    ) -> httpx.Response:
        """A Kit sync (`sync` as in the path, e.g. "authSync"); `fields` or a raw body, signed in x- headers."""
        body = fields if isinstance(fields, bytes) else marketplace_body(dict(fields))
        call = sign_call(
            CallKind.KIT, body, key=key or self.keys[slug], now_ms=now_ms or epoch_ms(datetime.now(UTC)), nonce=nonce
        )
        return await self.client.post(f"/koogallery/{slug}/produceAPI/v2/{sync}", content=body, headers=call.headers)

    async def answer(
        self, slug: str, fields: Mapping[str, object], **signing: Unpack[SigningOptions]
    ) -> dict[str, Any]:
        """The JSON answer to a basic call that must succeed at the HTTP level (values as decoded)."""
        response = await self.basic(slug, fields, **signing)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def marketplace(client: httpx.AsyncClient) -> Marketplace:
    return Marketplace(client)
