"""newInstance asks the order-query open API for the order line, stores what it answers on the
instance and hands it to the adapter; a refused query leaves the instance provisioning, adapter
untouched. The local stand-in plays the marketplace's open API on a loopback port."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from gateway.adapters.contract import ProvisionRequest
from gateway.app import create_app
from gateway.settings import Settings
from gateway.simulator.open_api import (
    DEMO_ACCESS_KEY,
    DEMO_SECRET_KEY,
    MOCK_PRODUCT_ID,
    MOCK_SKU_CODE,
    OrderBook,
    create_open_api_app,
)
from gateway.store import Store
from tenants.models import InstanceStatus
from tests.conftest import ALPHA_KEY, Marketplace, product
from tests.fakes import Behaviour, recording_factory
from tests.gateway.helpers import get_instance
from tests.sso.live import loopback_socket, serve

pytestmark = pytest.mark.anyio

NEW: dict[str, object] = {
    "activity": "newInstance",
    "businessId": "biz-order-1",
    "orderId": "MOCKPERIODYEARNEW",
    "orderLineId": "MOCKPERIODYEARNEW-000001",
    "testFlag": "0",
}


@pytest.fixture
def open_api() -> Iterator[str]:
    app = create_open_api_app(credentials={DEMO_ACCESS_KEY: DEMO_SECRET_KEY}, orders=OrderBook())
    with loopback_socket() as sock, serve(app, sock, lifespan="off"):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def _app_with_open_api(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store, *, endpoint: str, secret: str
) -> AsyncIterator[tuple[Starlette, Marketplace]]:
    alpha = product(
        "Alpha", ALPHA_KEY, open_api_endpoint=endpoint, open_api_ak=DEMO_ACCESS_KEY, open_api_sk=secret
    )
    app = create_app(
        settings.model_copy(update={"products": {"alpha": alpha}}),
        adapter_factories={"recording": recording_factory(behaviours)},
        store=store,
    )
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mg.test") as client:
            yield app, Marketplace(client)


async def test_new_instance_stores_the_order_and_hands_it_to_the_adapter(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store, open_api: str
) -> None:
    async with _app_with_open_api(settings, behaviours, store, endpoint=open_api, secret=DEMO_SECRET_KEY) as (
        app,
        marketplace,
    ):
        answer = await marketplace.answer("alpha", NEW)
        assert (answer["resultCode"], answer["instanceId"]) == ("000000", "biz-order-1")
        instance = await get_instance(app, "alpha", "biz-order-1")
    assert instance is not None and instance.status is InstanceStatus.ACTIVE
    assert (instance.sku_code, instance.product_id) == (MOCK_SKU_CODE, MOCK_PRODUCT_ID)
    assert instance.charging_mode == "PERIOD"
    assert instance.expire_time is not None and instance.expire_time.year == 2025
    assert instance.order_details is not None and instance.order_details["periodType"] == "year"
    provisions = [request for name, request in behaviours["alpha"].requests if name == "provision"]
    assert len(provisions) == 1 and isinstance(provisions[0], ProvisionRequest)
    assert provisions[0].order is not None and provisions[0].order.sku_code == MOCK_SKU_CODE


async def test_a_refused_order_query_leaves_the_instance_provisioning_and_the_adapter_untouched(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store, open_api: str
) -> None:
    wrong_secret = "not-the-open-api-secret"
    async with _app_with_open_api(settings, behaviours, store, endpoint=open_api, secret=wrong_secret) as (
        app,
        marketplace,
    ):
        answer = await marketplace.answer("alpha", NEW)
        assert answer["resultCode"] == "000004"  # the job retries the query later
        instance = await get_instance(app, "alpha", "biz-order-1")
    assert instance is not None and instance.status is InstanceStatus.PROVISIONING
    assert instance.sku_code is None
    assert behaviours["alpha"].calls["provision"] == 0
