"""Concurrent duplicates, slow adapters, crashes mid-provisioning and a database that is down."""

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlmodel import select
from starlette.applications import Starlette

from gateway.adapters.contract import Refusal, Refused
from gateway.app import create_app
from gateway.settings import Environment, Settings
from gateway.store import MemoryStore
from tenants.migrate import upgrade
from tenants.models import InstanceEvent, InstanceStatus, Job, JobState
from tests.conftest import FrozenClock, Marketplace, product
from tests.fakes import Behaviour, recording_factory
from tests.gateway.helpers import count_rows, get_instance

pytestmark = pytest.mark.anyio


def new_instance(n: int, order: str = "CS50") -> dict[str, object]:
    return {"activity": "newInstance", "orderId": order, "orderLineId": f"{order}-000001", "businessId": f"biz-{n}"}


async def test_fifty_concurrent_purchases_of_one_order_line_give_one_instance(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].provision_delay_s = 0.2
    answers = await asyncio.gather(*(marketplace.answer("alpha", new_instance(n)) for n in range(50)))
    instance_ids = {answer["instanceId"] for answer in answers}
    assert len(instance_ids) == 1
    assert {answer["resultCode"] for answer in answers} == {"000000"}
    [instance_id] = instance_ids
    assert behaviours["alpha"].calls["provision"] == 1
    assert behaviours["alpha"].provisioned[str(instance_id)] == 1
    assert await count_rows(app, Job) == 1


async def test_adapter_slower_than_the_deadline_gives_processing_then_active(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["beta"].provision_delay_s = 1.5  # beta's deadline is 1 s
    answer = await marketplace.answer("beta", new_instance(1))
    assert answer == {"resultCode": "000004", "resultMsg": "request is processing", "instanceId": "biz-1"}
    query = {"activity": "queryInstance", "instanceId": "biz-1"}
    assert (await marketplace.answer("beta", query))["info"] == []
    for _ in range(100):
        instance = await get_instance(app, "beta", "biz-1")
        assert instance is not None
        if instance.status is InstanceStatus.ACTIVE:
            break
        await asyncio.sleep(0.05)
    assert instance is not None and instance.status is InstanceStatus.ACTIVE
    info = (await marketplace.answer("beta", query))["info"]
    assert info[0]["appInfo"]["frontEndUrl"] == "https://beta.example.com/biz-1"
    repeat = await marketplace.answer("beta", new_instance(2))
    assert (repeat["resultCode"], repeat["instanceId"]) == ("000000", "biz-1")
    assert behaviours["beta"].calls["provision"] == 1


async def test_refusal_is_answered_and_a_retry_provisions_again(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].provision_refusal = Refused(Refusal.SOLD_OUT, "sold out today")
    refused = await marketplace.answer("alpha", new_instance(1))
    assert (refused["resultCode"], refused["resultMsg"]) == ("000106", "sold out today")
    instance = await get_instance(app, "alpha", "biz-1")
    assert instance is not None and instance.status is InstanceStatus.FAILED
    behaviours["alpha"].provision_refusal = None
    retried = await marketplace.answer("alpha", new_instance(2))
    assert (retried["resultCode"], retried["instanceId"]) == ("000000", "biz-1")


async def test_a_refusal_message_is_cut_to_the_255_characters_of_result_msg(
    marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].provision_refusal = Refused(Refusal.SOLD_OUT, "sold out: " + "x" * 400)
    refused = await marketplace.answer("alpha", new_instance(1))
    assert refused["resultCode"] == "000106"
    assert refused["resultMsg"] == ("sold out: " + "x" * 400)[:255]


async def test_an_app_info_over_the_marketplaces_limits_fails_the_provisioning(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    """Stored, it would be answered to queryInstance and refused there; a retry would repeat it."""
    behaviours["alpha"].provision_memo = "m" * 1025
    answer = await marketplace.answer("alpha", new_instance(1))
    assert (answer["resultCode"], answer["resultMsg"]) == ("000005", "other inner error")
    instance = await get_instance(app, "alpha", "biz-1")
    assert instance is not None and instance.status is InstanceStatus.FAILED and instance.app_info is None
    assert instance.failure_reason is not None and "memo over 1024 characters" in instance.failure_reason
    assert behaviours["alpha"].calls["provision"] == 1  # not retried
    query = {"activity": "queryInstance", "instanceId": "biz-1"}
    assert (await marketplace.answer("alpha", query))["info"] == []


async def test_adapter_errors_are_retried_in_the_background(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].provision_errors = 1
    first = await marketplace.answer("alpha", new_instance(1))
    assert first["resultCode"] == "000004"
    async with app.state.database.transaction() as session:
        job = (await session.exec(select(Job))).one()
        assert job.attempts == 1 and job.state is JobState.PENDING and job.last_error
        job.run_at = job.run_at - timedelta(hours=1)  # the backoff has passed
        session.add(job)
    app.state.runner.wake()
    for _ in range(100):
        instance = await get_instance(app, "alpha", "biz-1")
        if instance is not None and instance.status is InstanceStatus.ACTIVE:
            break
        await asyncio.sleep(0.05)
    assert instance is not None and instance.status is InstanceStatus.ACTIVE
    assert behaviours["alpha"].provisioned["biz-1"] == 1


async def test_two_products_side_by_side_keep_their_own_instances(app: Starlette, marketplace: Marketplace) -> None:
    same_order = new_instance(1)
    alpha = await marketplace.answer("alpha", same_order)
    beta = await marketplace.answer("beta", {**same_order, "businessId": "other"})
    assert (alpha["instanceId"], beta["instanceId"]) == ("biz-1", "other")
    release = {"activity": "releaseInstance", "instanceId": "biz-1"}
    assert (await marketplace.answer("beta", release))["resultCode"] == "000003"
    assert (await marketplace.answer("alpha", release))["resultCode"] == "000000"


async def test_a_crash_mid_provisioning_is_finished_by_the_next_process(
    settings: Settings, behaviours: dict[str, Behaviour]
) -> None:
    clock = FrozenClock()
    store = MemoryStore()
    factories = {"recording": recording_factory(behaviours)}
    behaviours["alpha"].provision_delay_s = 3600  # the first process hangs in the adapter
    first = create_app(settings, clock=clock, adapter_factories=factories, store=store)
    async with LifespanManager(first):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="https://mg") as http:
            answer = await Marketplace(http).answer("alpha", new_instance(1))
        assert answer["resultCode"] == "000004"
        # The process dies: its work stops where it is, and nothing records the job's end.
        await first.state.runner.stop(grace_s=0)
    behaviours["alpha"].provision_delay_s = 0
    clock.advance(settings.job_lease_s + 1)  # its lease has expired
    second = create_app(settings, clock=clock, adapter_factories=factories, store=store)
    async with LifespanManager(second):
        for _ in range(100):
            instance = await get_instance(second, "alpha", "biz-1")
            if instance is not None and instance.status is InstanceStatus.ACTIVE:
                break
            await asyncio.sleep(0.05)
        assert instance is not None and instance.status is InstanceStatus.ACTIVE
        async with second.state.database.reader() as session:
            activities = [event.activity for event in (await session.exec(select(InstanceEvent))).all()]
    assert behaviours["alpha"].provisioned["biz-1"] == 1
    assert activities == ["newInstance", "provisioned"]


def _app_on(database_url: str, tmp_path: Path, behaviours: dict[str, Behaviour]) -> Starlette:
    """Product alpha on `database_url`, which start-up does not migrate."""
    settings = Settings(
        environment=Environment.DEVELOPMENT,
        database_url=database_url,
        data_dir=tmp_path,
        auto_migrate=False,
        products={"alpha": product("Alpha", "alpha-access-key-0123456789")},
    )
    return create_app(settings, adapter_factories={"recording": recording_factory(behaviours)})


async def test_database_down_answers_internal_error(tmp_path: Path, behaviours: dict[str, Behaviour]) -> None:
    down = _app_on("postgresql://127.0.0.1:1/nothing", tmp_path, behaviours)
    async with LifespanManager(down):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down), base_url="https://mg") as http:
            answer = await Marketplace(http).answer("alpha", new_instance(1))
            ready = await http.get("/readyz")
    assert answer["resultCode"] == "000005"
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "down"
    assert not behaviours["alpha"].calls


async def test_a_database_whose_schema_is_behind_is_not_ready(tmp_path: Path, behaviours: dict[str, Behaviour]) -> None:
    """Started with `--no-migrate` on a database nobody upgraded, every call would be 000005."""
    url = f"sqlite:///{tmp_path / 'not-upgraded.db'}"
    behind = _app_on(url, tmp_path, behaviours)
    async with LifespanManager(behind):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=behind), base_url="https://mg") as http:
            before = await http.get("/readyz")
            await asyncio.to_thread(upgrade, url)
            after = await http.get("/readyz")
    assert before.status_code == 503
    assert before.json()["checks"] == {"database": "ok", "schema": "behind", "store": "ok"}
    assert after.status_code == 200 and after.json()["checks"]["schema"] == "ok"


async def test_a_database_upgraded_by_a_newer_marketgate_is_not_ready(
    tmp_path: Path, behaviours: dict[str, Behaviour]
) -> None:
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    await asyncio.to_thread(upgrade, url)
    with sqlite3.connect(tmp_path / "ahead.db") as database:
        database.execute("UPDATE alembic_version SET version_num = 'zzz'")
    ahead = _app_on(url, tmp_path, behaviours)
    async with LifespanManager(ahead):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ahead), base_url="https://mg") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "schema": "behind", "store": "ok"}


async def test_the_job_runner_runs_as_many_jobs_at_once_as_the_settings_say(
    settings: Settings, behaviours: dict[str, Behaviour], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETGATE_JOB_CONCURRENCY", "3")
    assert Settings(environment=Environment.DEVELOPMENT, products={}).job_concurrency == 3
    with pytest.raises(ValidationError, match="job_concurrency"):
        Settings(environment=Environment.DEVELOPMENT, products={}, job_concurrency=0)
    application = create_app(
        settings.model_copy(update={"job_concurrency": 3}),
        adapter_factories={"recording": recording_factory(behaviours)},
    )
    async with LifespanManager(application):
        assert application.state.runner.concurrency == 3
