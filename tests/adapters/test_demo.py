"""The demo product's adapter against a real SQLite file, and its pages through ASGI."""

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.adapters.contract import (
    Adapter,
    AdapterConfigError,
    AdapterContext,
    AppInfo,
    ChangeCheckRequest,
    ChangeDecision,
    InstanceRef,
    Order,
    ProvisionRequest,
    Refusal,
    Refused,
    RenewRequest,
    StatusRequest,
    UpgradeRequest,
)
from gateway.adapters.demo import REPEAT_MEMO, DemoAdapter, WorkspaceNotFoundError

pytestmark = pytest.mark.anyio

PUBLIC_URL = "https://marketgate.example.com"
FROZEN_NOTICE = "This workspace is frozen — renew to continue"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """On SQLite the demo keeps its tables in a file of its own, in the data folder."""
    return tmp_path / "demo-demo.db"


@pytest.fixture
def context(tmp_path: Path, db_path: Path) -> AdapterContext:
    return AdapterContext(
        product="demo",
        product_name="Demo Workspace",
        public_url=PUBLIC_URL,
        database_url=f"sqlite:///{tmp_path / 'marketgate.db'}",
        data_dir=str(tmp_path),
    )


@pytest.fixture
async def adapter(context: AdapterContext) -> AsyncIterator[DemoAdapter]:
    adapter = DemoAdapter({}, context)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def pages(adapter: DemoAdapter) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=adapter.web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def ref(instance_id: str = "inst-1") -> InstanceRef:
    return InstanceRef(product="demo", instance_id=instance_id, is_test=False)


def order(**changes: Any) -> Order:
    values: dict[str, Any] = {
        "order_id": "CS0001",
        "order_line_id": "CS0001-1",
        "sku_code": "basic",
        "product_name": "Demo Basic",
        "linear_value": 5,
        "expire_time": datetime(2030, 1, 31, tzinfo=UTC),
    }
    return Order(**(values | changes))


def rows(db_path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM demo_workspaces ORDER BY instance_id")]


async def test_full_lifecycle(adapter: DemoAdapter, pages: httpx.AsyncClient, db_path: Path) -> None:
    # given a provisioned workspace
    app_info = await adapter.provision(ProvisionRequest(instance=ref(), order=order()))
    url = f"{PUBLIC_URL}/apps/demo/w/inst-1"
    assert app_info.front_end_url == url
    assert app_info.admin_url is None  # no link to a page the demo does not serve
    assert app_info.user_name is not None
    assert app_info.user_name.startswith("admin-")
    assert app_info.password is not None
    assert len(app_info.password) >= 16
    assert await adapter.verify_admin_password(ref(), app_info.password)
    assert not await adapter.verify_admin_password(ref(), "wrong password")
    [row] = rows(db_path)
    assert row["status"] == "active"
    assert app_info.password not in row["admin_password_hash"]
    assert row["admin_password_hash"].startswith("sha256$")

    # describe gives the same access information, never the password
    assert await adapter.describe(ref()) == AppInfo(front_end_url=url, user_name=app_info.user_name)
    page = await pages.get("/w/inst-1")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Demo Workspace" in page.text
    assert "Demo Basic (basic), size 5" in page.text
    assert "2030-01-31 00:00 UTC" in page.text
    assert "<strong>Active</strong>" in page.text

    # renew moves the expiry
    await adapter.renew(RenewRequest(ref(), "trial_to_formal", "CS0002", datetime(2031, 1, 31, tzinfo=UTC), None))
    assert "2031-01-31 00:00 UTC" in (await pages.get("/w/inst-1")).text

    # freeze shows the renewal notice, unfreeze removes it
    await adapter.set_status(StatusRequest(instance=ref(), frozen=True))
    frozen = await pages.get("/w/inst-1")
    assert frozen.status_code == 200
    assert FROZEN_NOTICE in frozen.text
    await adapter.set_status(StatusRequest(instance=ref(), frozen=False))
    active = await pages.get("/w/inst-1")
    assert FROZEN_NOTICE not in active.text
    assert "<strong>Active</strong>" in active.text

    # upgrade applies the new plan
    await adapter.upgrade(
        UpgradeRequest(instance=ref(), order=order(sku_code="pro", product_name="Demo Pro", linear_value=10))
    )
    assert "Demo Pro (pro), size 10" in (await pages.get("/w/inst-1")).text

    # release deletes the workspace's plan and administrator; its page is gone
    await adapter.release(ref())
    gone = await pages.get("/w/inst-1")
    assert gone.status_code == 404
    assert "Workspace not found" in gone.text
    assert await adapter.describe(ref()) is None
    assert not await adapter.verify_admin_password(ref(), app_info.password)
    [row] = rows(db_path)
    assert row["status"] == "released"
    assert [
        row[name] for name in ("sku_code", "product_name", "linear_value", "admin_user", "admin_password_hash")
    ] == [None] * 5
    await adapter.release(ref())  # a repeat is harmless
    assert rows(db_path)[0]["status"] == "released"


async def test_provision_is_idempotent(adapter: DemoAdapter, db_path: Path) -> None:
    first = await adapter.provision(ProvisionRequest(instance=ref(), order=order()))
    second = await adapter.provision(ProvisionRequest(instance=ref(), order=order()))

    assert second.user_name == first.user_name
    assert second.front_end_url == first.front_end_url
    assert second.password is None
    assert second.memo == REPEAT_MEMO
    assert len(rows(db_path)) == 1
    assert first.password is not None
    assert await adapter.verify_admin_password(ref(), first.password)


async def test_refuses_new_purchases_beyond_the_quota(context: AdapterContext, db_path: Path) -> None:
    adapter = DemoAdapter({"refuse_when_more_than": 2}, context)
    try:
        await adapter.provision(ProvisionRequest(instance=ref("a"), order=None))
        await adapter.provision(ProvisionRequest(instance=ref("b"), order=None))

        with pytest.raises(Refused) as refused:
            await adapter.provision(ProvisionRequest(instance=ref("c"), order=None))

        assert refused.value.refusal is Refusal.NO_RESOURCE
        assert [row["instance_id"] for row in rows(db_path)] == ["a", "b"]
        # a repeat of a workspace that exists is not a new purchase
        assert (await adapter.provision(ProvisionRequest(instance=ref("a"), order=None))).password is None
        # a released workspace frees its place
        await adapter.release(ref("a"))
        assert (await adapter.provision(ProvisionRequest(instance=ref("c"), order=None))).password is not None
    finally:
        await adapter.aclose()


async def test_check_change_refuses_going_below_the_current_size(adapter: DemoAdapter) -> None:
    await adapter.provision(ProvisionRequest(instance=ref(), order=order(linear_value=5)))

    def change(linear_value: int | None) -> ChangeCheckRequest:
        return ChangeCheckRequest(ref(), product_id="p", sku_code="s", product_name="n", linear_value=linear_value)

    refused = await adapter.check_change(change(3))
    assert refused == ChangeDecision(accepted=False, reason="the workspace uses 5; cannot go down to 3")
    assert await adapter.check_change(change(5)) == ChangeDecision(accepted=True)
    assert await adapter.check_change(change(10)) == ChangeDecision(accepted=True)
    assert await adapter.check_change(change(None)) == ChangeDecision(accepted=True)
    unknown = ChangeCheckRequest(ref("nope"), product_id="p", sku_code="s", product_name="n", linear_value=1)
    assert (await adapter.check_change(unknown)).accepted is False


async def test_page_escapes_what_it_shows(adapter: DemoAdapter, pages: httpx.AsyncClient) -> None:
    await adapter.provision(
        ProvisionRequest(instance=ref(), order=order(product_name="<script>alert(1)</script>", sku_code="a&b"))
    )

    page = await pages.get("/w/inst-1")

    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (a&amp;b)" in page.text


async def test_page_shows_the_plan_label_without_an_order(context: AdapterContext) -> None:
    adapter = DemoAdapter({"plan_label": "Starter"}, context)
    try:
        await adapter.provision(ProvisionRequest(instance=ref(), order=None))
        transport = httpx.ASGITransport(app=adapter.web_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            page = await client.get("/w/inst-1")
        assert '<dd class="plan">Starter</dd>' in page.text
        assert "no expiry" in page.text
    finally:
        await adapter.aclose()


async def test_pages_work_under_marketgate_mount(adapter: DemoAdapter) -> None:
    await adapter.provision(ProvisionRequest(instance=ref(), order=order()))
    outer = Starlette(routes=[Mount("/apps/demo", app=adapter.web_app)])

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://testserver") as client:
        found = await client.get("/apps/demo/w/inst-1")
        missing = await client.get("/apps/demo/w/unknown")

    assert found.status_code == 200
    assert "inst-1" in found.text
    assert missing.status_code == 404


async def test_calls_for_unknown_workspaces_fail_and_change_nothing(adapter: DemoAdapter, db_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError):
        await adapter.renew(RenewRequest(ref("nope"), "renew", "CS1", datetime(2030, 1, 1, tzinfo=UTC), None))
    with pytest.raises(WorkspaceNotFoundError):
        await adapter.set_status(StatusRequest(instance=ref("nope"), frozen=True))
    with pytest.raises(WorkspaceNotFoundError):
        await adapter.upgrade(UpgradeRequest(instance=ref("nope"), order=order()))
    await adapter.release(ref("nope"))
    assert await adapter.describe(ref("nope")) is None
    assert rows(db_path) == []


async def test_is_an_adapter_and_touches_no_database_until_used(context: AdapterContext, db_path: Path) -> None:
    adapter = DemoAdapter({"plan_label": "Team", "refuse_when_more_than": 3}, context)
    try:
        assert isinstance(adapter, Adapter)
        assert (DemoAdapter.contract_version, DemoAdapter.handles_test_calls) == (3, False)
        assert not await anyio.Path(db_path).exists()
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "settings",
    [
        {"unknown": 1},
        {"refuse_when_more_than": -1},
        {"refuse_when_more_than": "many"},
        {"plan_label": ""},
        {"plan_label": 3},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], context: AdapterContext) -> None:
    with pytest.raises(AdapterConfigError, match="invalid demo settings"):
        DemoAdapter(settings, context)


def test_unsupported_database_is_refused(context: AdapterContext) -> None:
    bad = AdapterContext("demo", "Demo Workspace", PUBLIC_URL, "mysql://db.example.com/demo", context.data_dir)
    with pytest.raises(AdapterConfigError, match="cannot use database"):
        DemoAdapter({}, bad)
