"""Defects found in review, each pinned by a test: keys, nesting, chunked bodies, real times,
retries that give up, and ids at the length limit."""

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from click.testing import CliRunner
from prometheus_client import generate_latest
from pydantic import ValidationError
from sqlmodel import select
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.cli import main
from gateway.clock import epoch_ms
from gateway.koogallery.signing import CallKind, sign
from gateway.settings import ConfigError, Environment, ProductConfig, Settings
from gateway.simulator.signer import marketplace_body, new_nonce, sign_call
from gateway.store import Store
from gateway.worker import JobRunner
from tenants.database import Database
from tenants.errors import DatabaseUnavailableError
from tenants.models import CallLogEntry, InstanceStatus, Job, JobState
from tests.conftest import ALPHA_KEY, Backend, Marketplace
from tests.fakes import Behaviour, recording_factory
from tests.gateway.helpers import get_instance, state_counts

pytestmark = pytest.mark.anyio

OLD_KEY = "the-previous-access-key-0001"
NEW_KEY = "the-current-access-key-00002"


def test_empty_or_short_keys_are_refused_wherever_they_stand() -> None:
    for keys in ({"previous_access_keys": [""]}, {"kit_access_key": "short"}, {"previous_kit_access_keys": ["x"]}):
        with pytest.raises(ValidationError, match="at least 8 bytes"):
            ProductConfig.model_validate({"name": "A", "adapter": "demo", "access_key": NEW_KEY, **keys})


def test_production_refuses_placeholder_kit_and_previous_keys(tmp_path: Path) -> None:
    product = ProductConfig.model_validate(
        {"name": "A", "adapter": "demo", "access_key": NEW_KEY, "kit_access_key": "changeme-changeme"}
    )
    with pytest.raises(ConfigError, match="placeholder"):
        Settings(secret_key="s" * 40, data_dir=tmp_path, products={"a": product})


def test_an_empty_secret_source_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import parse_products

    monkeypatch.setenv("EMPTY_KEY", "")
    (tmp_path / "empty.txt").write_text("\n")
    for source in ({"access_key_env": "EMPTY_KEY"}, {"access_key_file": "empty.txt"}):
        with pytest.raises(ConfigError, match="empty"):
            parse_products({"products": {"a": {"name": "A", "adapter": "demo", **source}}}, base_dir=tmp_path)


def test_an_open_api_endpoint_with_credentials_is_refused() -> None:
    # the order query is AK/SK signed; user:password in its address would be sent along (or refused)
    with pytest.raises(ValidationError, match="open_api_endpoint"):
        ProductConfig.model_validate(
            {"name": "A", "adapter": "demo", "access_key": NEW_KEY, "open_api_endpoint": "https://u:p@mkt.example.com"}
        )


@pytest.fixture
async def rotating_app(backend: Backend, tmp_path: Path, store: Store) -> AsyncIterator[Starlette]:
    backend.reset()
    encoded = base64.b64encode(b"raw-key-bytes-\x00\xff-rotating").decode()
    products = {
        "rot": ProductConfig.model_validate(
            {"name": "Rot", "adapter": "recording", "access_key": NEW_KEY, "previous_access_keys": [OLD_KEY]}
        ),
        "b64": ProductConfig.model_validate(
            {"name": "B64", "adapter": "recording", "access_key": encoded, "key_encoding": "base64"}
        ),
    }
    settings = Settings(
        environment=Environment.DEVELOPMENT,
        database_url=backend.database_url,
        data_dir=tmp_path,
        auto_migrate=False,
        products=products,
    )
    behaviours = {"rot": Behaviour(), "b64": Behaviour()}
    app = create_app(settings, adapter_factories={"recording": recording_factory(behaviours)}, store=store)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        yield app


async def test_previous_keys_and_base64_keys_verify(rotating_app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rotating_app), base_url="https://mg") as http:
        marketplace = Marketplace(http)
        new = {"activity": "newInstance", "orderId": "R1", "orderLineId": "R1-1", "businessId": "r1"}
        assert (await marketplace.answer("rot", new, key=OLD_KEY.encode()))["resultCode"] == "000000"
        assert (await marketplace.answer("rot", {**new, "orderId": "R2", "businessId": "r2"}, key=NEW_KEY.encode()))[
            "resultCode"
        ] == "000000"
        assert (
            await marketplace.answer("rot", {**new, "orderId": "R3", "businessId": "r3"}, key=b"neither-key-000000")
        )["resultCode"] == "000001"
        raw_key = b"raw-key-bytes-\x00\xff-rotating"
        assert (await marketplace.answer("b64", new, key=raw_key))["resultCode"] == "000000"


async def test_deep_nesting_is_a_bad_parameter(app: Starlette, client: httpx.AsyncClient) -> None:
    body = b'{"activity":' + b"[" * 500 + b"1" + b"]" * 500 + b"}"
    nonce, timestamp = new_nonce(), str(epoch_ms(datetime.now(UTC)))
    # Signed over its raw bytes: the only form a body too deep to read has (unsigned, it is 000001).
    signature = sign(CallKind.BASIC, ALPHA_KEY.encode(), nonce=nonce, timestamp=timestamp, payload=body)
    params = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    response = await client.post("/koogallery/alpha", content=body, params=params)
    assert response.json()["resultCode"] == "000002"


async def test_chunked_body_over_the_cap_is_413(app: Starlette, client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192  # 160 KiB, no Content-Length

    response = await client.post("/koogallery/alpha", content=chunks())
    assert response.status_code == 413
    assert await state_counts(app) == (0, 0)


async def test_a_time_of_the_right_shape_but_no_real_time_is_a_bad_parameter(
    app: Starlette, marketplace: Marketplace
) -> None:
    nonce = new_nonce()
    refresh = {
        "activity": "refreshInstance",
        "instanceId": "i",
        "orderId": "o",
        "orderLineId": "l",
        "scene": "RENEWAL",
        "expireTime": "20231399000000",
    }
    assert (await marketplace.answer("alpha", refresh, nonce=nonce))["resultCode"] == "000002"
    new = {"activity": "newInstance", "orderId": "T1", "orderLineId": "T1-1", "businessId": "t1"}
    assert (await marketplace.answer("alpha", new, nonce=nonce))["resultCode"] == "000000"  # nonce unused


async def test_ids_at_their_full_length_fit_every_key(app: Starlette, marketplace: Marketplace) -> None:
    instance_id, order, line = "i" * 64, "o" * 64, "l" * 64
    new = {"activity": "newInstance", "orderId": order, "orderLineId": line, "businessId": instance_id}
    assert (await marketplace.answer("alpha", new))["resultCode"] == "000000"
    upgrade = {"activity": "upgradeInstance", "instanceId": instance_id, "orderId": "u" * 64, "orderLineId": "v" * 64}
    assert (await marketplace.answer("alpha", upgrade))["resultCode"] == "000000"
    renew = {
        "activity": "refreshInstance",
        "instanceId": instance_id,
        "orderId": "u" * 64,
        "orderLineId": "w" * 64,
        "scene": "RENEWAL",
        "expireTime": "20301124023618",
    }
    assert (await marketplace.answer("alpha", renew))["resultCode"] == "000000"


async def test_provisioning_that_gives_up_leaves_the_instance_failed(
    app: Starlette, marketplace: Marketplace, behaviours: dict[str, Behaviour]
) -> None:
    behaviours["alpha"].provision_errors = 1000
    new = {"activity": "newInstance", "orderId": "G1", "orderLineId": "G1-1", "businessId": "g1"}
    assert (await marketplace.answer("alpha", new))["resultCode"] == "000004"
    settings: Settings = app.state.settings
    for _ in range(settings.job_max_attempts + 5):
        async with app.state.database.transaction() as session:
            job = (await session.exec(select(Job))).one()
            if job.state is JobState.DEAD:
                break
            job.run_at = datetime.now(UTC) - timedelta(seconds=1)  # its backoff has passed
            session.add(job)
        app.state.runner.wake()
        await asyncio.sleep(0.05)
    for _ in range(50):
        instance = await get_instance(app, "alpha", "g1")
        if instance is not None and instance.status is InstanceStatus.FAILED:
            break
        await asyncio.sleep(0.05)
    assert instance is not None and instance.status is InstanceStatus.FAILED
    assert instance.failure_code == "000005"
    again = await marketplace.answer("alpha", {**new, "businessId": "g2"})
    assert (again["resultCode"], again["instanceId"]) == ("000004", "g1")  # a new newInstance tries again


def test_signed_body_helper_is_canonical() -> None:
    body = marketplace_body({"b": 1, "a": "中"})
    call = sign_call(CallKind.BASIC, body, key=b"k" * 16, now_ms=epoch_ms(datetime.now(UTC)))
    assert body == '{"a":"中","b":1}'.encode() and call.signature


@asynccontextmanager
async def _one_attempt_app(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store
) -> AsyncIterator[tuple[Starlette, Marketplace]]:
    """The app with jobs that give up after their first failed attempt, and a marketplace for it."""
    one_attempt = settings.model_copy(update={"job_max_attempts": 1})
    app = create_app(one_attempt, adapter_factories={"recording": recording_factory(behaviours)}, store=store)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mg.test") as client:
            yield app, Marketplace(client)


async def test_a_provisioning_that_gave_up_is_answered_without_its_inner_error(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store
) -> None:
    """000005 with the code's own message: what failed inside (an adapter's exception text) stays
    in the instance's history and the logs, not in `resultMsg`."""
    behaviours["alpha"].provision_errors = 1000
    async with _one_attempt_app(settings, behaviours, store) as (app, marketplace):
        new = {"activity": "newInstance", "orderId": "G5", "orderLineId": "G5-1", "businessId": "g5"}
        answer = await marketplace.answer("alpha", new)
        instance = await get_instance(app, "alpha", "g5")
    assert instance is not None and instance.status is InstanceStatus.FAILED
    assert instance.failure_reason and "RuntimeError" in instance.failure_reason
    assert answer == {"resultCode": "000005", "resultMsg": "other inner error", "instanceId": "g5"}


def test_a_secret_from_both_a_variable_and_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import parse_products

    monkeypatch.setenv("ALPHA_KEY", NEW_KEY)
    (tmp_path / "key.txt").write_text(OLD_KEY)
    both = {"name": "A", "adapter": "demo", "access_key_env": "ALPHA_KEY", "access_key_file": "key.txt"}
    with pytest.raises(ConfigError, match="either access_key_env or access_key_file"):
        parse_products({"products": {"a": both}}, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('default_roles = { admin = ["editor"] }', "default_roles.admin: not declared in roles: editor"),
        ('rsa_private_key = "not a pem key at all"', "rsa_private_key"),
    ],
)
def test_check_config_refuses_what_serve_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, expected: str
) -> None:
    monkeypatch.setenv("MARKETGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETGATE_ENVIRONMENT", "development")
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'mg.db'}")
    products = tmp_path / "products.toml"
    products.write_text(f'[products.crm]\nname = "CRM"\nadapter = "demo"\naccess_key = "{NEW_KEY}"\n{extra}\n')
    result = CliRunner().invoke(main, ["check-config", "--config", str(products)])
    assert result.exit_code != 0 and expected in result.output, result.output
    assert "Traceback" not in result.output


def test_check_config_never_shows_a_database_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETGATE_ENVIRONMENT", "development")
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", "postgres://bob:HunterPw99@127.0.0.1/x")
    products = tmp_path / "products.toml"
    products.write_text(f'[products.crm]\nname = "CRM"\nadapter = "demo"\naccess_key = "{NEW_KEY}"\n')
    result = CliRunner().invoke(main, ["check-config", "--config", str(products)])
    assert result.exit_code != 0 and "demo adapter cannot use database" in result.output, result.output
    assert "HunterPw99" not in result.output and "bob:***@" in result.output


async def test_an_unknown_activity_is_one_metrics_series_whatever_its_name(
    app: Starlette, marketplace: Marketplace
) -> None:
    for name in ("junk-1", "junk-2", "junk-3"):
        assert (await marketplace.answer("alpha", {"activity": name}))["resultCode"] == "000002"
    assert (await marketplace.answer("alpha", {"activity": ["not", "a", "name"]}))["resultCode"] == "000002"
    exposed = generate_latest(app.state.edge.metrics.registry).decode()
    assert "junk-" not in exposed
    assert 'activity="other"' in exposed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bob:HunterPw99@127.0.0.1:1/x", "Connection refused"),
        ("mysql://bob:HunterPw99@127.0.0.1/x", "unsupported database 'mysql'"),
    ],
)
def test_db_upgrade_says_in_one_line_why_it_cannot(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("MARKETGATE_ENVIRONMENT", "development")
    monkeypatch.setenv("MARKETGATE_DATABASE_URL", url)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 1 and expected in result.output, result.output
    assert "bob:***@" in result.output and "HunterPw99" not in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1


def test_the_demo_keeps_its_files_in_the_data_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import demo

    assert demo.make_context("demo", []).params["data_dir"] == Path(".marketgate")
    monkeypatch.setenv("MARKETGATE_DATA_DIR", str(tmp_path))
    assert demo.make_context("demo", []).params["data_dir"] == tmp_path
    assert demo.make_context("demo", ["--data-dir", "elsewhere"]).params["data_dir"] == Path("elsewhere")


def test_products_never_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only from the products file: from MARKETGATE_PRODUCTS they replaced it silently, took no
    `_env`/`_file` secrets, and a refusal echoed the key."""
    products = tmp_path / "products.toml"
    products.write_text(f'[products.crm]\nname = "CRM"\nadapter = "demo"\naccess_key = "{NEW_KEY}"\n')
    monkeypatch.setenv("MARKETGATE_PRODUCTS", '{"x": {"name": "x", "adapter": "demo", "access_key": "Qw7Er"}}')
    settings = Settings(environment=Environment.DEVELOPMENT, data_dir=tmp_path, config=products)
    assert list(settings.products) == ["crm"]


async def test_a_job_gives_up_together_with_its_instance_or_not_at_all(
    settings: Settings, behaviours: dict[str, Behaviour], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job marked dead and the instance marked failed are one transaction: were the second
    refused, the instance would stay `provisioning` for ever, with no job left to finish it."""
    from tenants import instances

    behaviours["alpha"].provision_errors = 1000
    real_change = instances.change_status_if
    refusals = 0

    async def refused_once(session: Any, **options: Any) -> bool:
        nonlocal refusals
        if options.get("status") is InstanceStatus.FAILED and refusals == 0:
            refusals += 1
            raise DatabaseUnavailableError("the database went away")
        return await real_change(session, **options)

    monkeypatch.setattr(instances, "change_status_if", refused_once)
    async with _one_attempt_app(settings, behaviours, store) as (app, marketplace):
        new = {"activity": "newInstance", "orderId": "G7", "orderLineId": "G7-1", "businessId": "g7"}
        answer = await marketplace.answer("alpha", new)
        async with app.state.database.reader() as session:
            [job] = (await session.exec(select(Job))).all()
        instance = await get_instance(app, "alpha", "g7")
    assert refusals == 1 and answer["resultCode"] == "000004"
    assert instance is not None and instance.status is InstanceStatus.PROVISIONING
    assert (job.state, job.attempts) == (JobState.PENDING, 0)  # nothing recorded: it runs again


async def _one_call_then_shut_down(app: Starlette) -> None:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mg.test") as client:
            query = {"activity": "queryInstance", "instanceId": "nobody"}
            assert (await Marketplace(client).answer("alpha", query))["resultCode"] == "000000"


async def test_shutdown_flushes_the_call_log_whatever_the_job_runner_did(
    settings: Settings,
    behaviours: dict[str, Behaviour],
    store: Store,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every shutdown step runs even if one before it fails."""
    app = create_app(settings, adapter_factories={"recording": recording_factory(behaviours)}, store=store)
    stopped: list[str] = []

    async def failing_stop(runner: JobRunner, *, grace_s: float = 5.0) -> None:
        stopped.append(runner.owner)
        raise RuntimeError("the runner would not stop")

    monkeypatch.setattr(JobRunner, "stop", failing_stop)
    with pytest.raises(RuntimeError, match="the runner would not stop"):
        await _one_call_then_shut_down(app)
    assert len(stopped) == 1
    database = Database(backend.database_url)
    try:
        async with database.reader() as session:
            logged = (await session.exec(select(CallLogEntry))).all()
    finally:
        await database.dispose()
    assert [entry.activity for entry in logged] == ["queryInstance"]
