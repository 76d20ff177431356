"""The demo product keeps its own member list from the directory events."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.adapters.demo import DemoAdapter
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import Marketplace
from tests.kit.helpers import TENANT_A, TENANT_B, auth_sync, settle_events, tenant_sync, user

pytestmark = pytest.mark.anyio


@pytest.fixture
async def demo_app(settings: Settings, store: Store) -> AsyncIterator[Starlette]:
    products = {slug: config.model_copy(update={"adapter": "demo"}) for slug, config in settings.products.items()}
    application = create_app(
        settings.model_copy(update={"products": products}), adapter_factories={"demo": DemoAdapter}, store=store
    )
    async with LifespanManager(application):
        yield application


async def test_demo_adapter_reflects_authorizations(demo_app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=demo_app), base_url="https://mg.test") as client:
        marketplace = Marketplace(client)
        # Given a tenant bound to both demo products, with members authorized, changed and revoked
        for slug in ("alpha", "beta"):
            await marketplace.kit(slug, "tenantSync", tenant_sync(TENANT_A, 1))
            users = [user("u1", role="admin"), user("u2"), user("u3")]
            await marketplace.kit(slug, "authSync", auth_sync(TENANT_A, 1, users))
        await marketplace.kit("alpha", "authSync", auth_sync(TENANT_A, 2, [user("u2", enable="false")]))
        await marketplace.kit("alpha", "authSync", auth_sync(TENANT_A, 3, [user("u3")]))
        await marketplace.kit("alpha", "authSync", auth_sync(TENANT_B, 1, [user("u9")]))
        await settle_events(demo_app)
        alpha: DemoAdapter = demo_app.state.edge.products["alpha"].adapter
        beta: DemoAdapter = demo_app.state.edge.products["beta"].adapter

        # Then the demo product's list matches what the marketplace authorized, per product
        def summary(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
            return [(row["user_name"], row["role"], row["enabled"]) for row in rows]

        assert summary(await alpha.list_members(tenant_id=TENANT_A)) == [("u1", "admin", True), ("u2", "user", False)]
        assert summary(await beta.list_members(tenant_id=TENANT_A)) == [
            ("u1", "admin", True),
            ("u2", "user", True),
            ("u3", "user", True),
        ]

        # When alpha's tenant A is unbound, then alpha forgets its members there, and only there
        await marketplace.kit("alpha", "tenantSync", tenant_sync(TENANT_A, 0))
        await settle_events(demo_app)
        assert await alpha.list_members(tenant_id=TENANT_A) == []
        assert summary(await alpha.list_members(tenant_id=TENANT_B)) == [("u9", "user", True)]
        assert len(await beta.list_members(tenant_id=TENANT_A)) == 3
