"""SSO fixtures: the Kit test products (alpha decrypts client secrets), served at https://mg.test,
with every tenant identity domain answered by the authlib identity server over ASGI."""

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.adapters.demo import DemoAdapter
from gateway.app import create_app
from gateway.settings import Settings
from gateway.simulator.identity import IdentityDirectory, create_identity_app
from gateway.store import Store
from tests.conftest import FrozenClock, Marketplace
from tests.fakes import Behaviour, recording_factory
from tests.kit.helpers import RSA_VECTORS
from tests.sso.helpers import IDP, MG, REDEEM_KEY, MovableClock, bind_tenant, browser, identity_directory


@pytest.fixture
def settings(settings: Settings) -> Settings:
    key = SecretStr(RSA_VECTORS["private_key_pkcs8_base64"])
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(
        update={
            "rsa_private_key": key,
            "sso_redeem_key": SecretStr(REDEEM_KEY),
            "sso_redirect_allow": ["https://alpha.example.com/app"],
        }
    )
    return settings.model_copy(
        update={"products": products, "public_url": MG, "sso_callback_rate_limit": 1000, "sso_identity_timeout_s": 1.0}
    )


@pytest.fixture
def directory() -> IdentityDirectory:
    return identity_directory()


@pytest.fixture
def identity_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def identity_app(directory: IdentityDirectory, identity_clock: MovableClock) -> Starlette:
    return create_identity_app(directory, issuer=IDP, clock=identity_clock)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


AppFactory = Callable[..., AbstractAsyncContextManager[Starlette]]


@pytest.fixture
def app_factory(
    settings: Settings,
    behaviours: dict[str, Behaviour],
    store: Store,
    identity_app: Starlette,
    clock: FrozenClock,
) -> AppFactory:
    """Another MarketGate on the same database and store (a replica), with settings changed."""

    @asynccontextmanager
    async def make(*, factories: Mapping[str, Any] | None = None, **updates: Any) -> AsyncIterator[Starlette]:
        application = create_app(
            settings.model_copy(update=updates),
            clock=clock,
            adapter_factories=factories or {"recording": recording_factory(behaviours), "demo": DemoAdapter},
            store=store,
            identity_transport=httpx.ASGITransport(app=identity_app),
        )
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
            yield application

    return make


@pytest.fixture
async def app(app_factory: AppFactory) -> AsyncIterator[Starlette]:
    async with app_factory() as application:
        yield application


@pytest.fixture
async def bound(marketplace: Marketplace) -> None:
    """Tenant A bound to alpha, with its app credentials and alice, bob and dave authorized."""
    await bind_tenant(marketplace)


@pytest.fixture
async def web(app: Starlette, identity_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app, identity_app) as client:
        yield client
