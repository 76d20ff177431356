"""Reading instances for queryInstance: what is answered, and how SQLite finds it."""

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tenants import instances
from tenants.database import Database
from tenants.migrate import upgrade
from tenants.models import InstanceStatus
from tests.conftest import Backend

pytestmark = pytest.mark.anyio

_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def _seed(database: Database, product: str, statuses: dict[str, InstanceStatus]) -> None:
    async with database.transaction() as session:
        for number, (instance_id, status) in enumerate(statuses.items()):
            await instances.create_instance_if_absent(
                session,
                product=product,
                instance_id=instance_id,
                order_id=f"order-{product}-{number}",
                order_line_id=f"line-{number}",
                is_test=False,
                now=_NOW,
            )
            changes = {"app_info": {"frontEndUrl": f"https://{product}.test/{instance_id}"}}
            if status is not InstanceStatus.PROVISIONING:
                await instances.change_status_if(
                    session,
                    product=product,
                    instance_id=instance_id,
                    expected=InstanceStatus.PROVISIONING,
                    status=InstanceStatus.ACTIVE,
                    activity="newInstance",
                    now=_NOW,
                    changes=changes,
                )
            if status in (InstanceStatus.FROZEN, InstanceStatus.RELEASED):
                await instances.change_status_if(
                    session,
                    product=product,
                    instance_id=instance_id,
                    expected=InstanceStatus.ACTIVE,
                    status=status,
                    activity="updateInstanceStatus",
                    now=_NOW,
                )


async def test_live_app_info_answers_active_and_frozen_instances_in_the_order_asked(backend: Backend) -> None:
    backend.reset()
    database = Database(backend.database_url)
    try:
        await _seed(
            database,
            "alpha",
            {
                "active-1": InstanceStatus.ACTIVE,
                "frozen-1": InstanceStatus.FROZEN,
                "released-1": InstanceStatus.RELEASED,
                "provisioning-1": InstanceStatus.PROVISIONING,
                "active-2": InstanceStatus.ACTIVE,
            },
        )
        await _seed(database, "beta", {"beta-only": InstanceStatus.ACTIVE})
        asked = ["active-2", "unknown", "released-1", "frozen-1", "provisioning-1", "beta-only", "active-1", "active-2"]
        async with database.reader() as session:
            found = await instances.list_live_app_info(session, product="alpha", instance_ids=asked, is_test=False)
    finally:
        await database.dispose()
    assert found == [
        ("active-2", {"frontEndUrl": "https://alpha.test/active-2"}),
        ("frozen-1", {"frontEndUrl": "https://alpha.test/frozen-1"}),
        ("active-1", {"frontEndUrl": "https://alpha.test/active-1"}),
    ]


async def test_sqlite_looks_the_asked_instances_up_by_their_key_not_by_status(tmp_path: Path) -> None:
    # SQLite keeps no statistics: a status condition made it walk every live instance of the
    # product for each queryInstance. The lookup must go through the (product, instance id) key.
    path = tmp_path / "plan.db"
    upgrade(f"sqlite:///{path}")
    database = Database(f"sqlite:///{path}")
    sent: list[tuple[str, Any]] = []

    @event.listens_for(database.engine.sync_engine, "before_cursor_execute")
    def _record(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    try:
        await _seed(database, "alpha", {f"i-{n}": InstanceStatus.ACTIVE for n in range(20)})
        sent.clear()
        asked = [f"i-{n}" for n in range(0, 20, 2)]  # ten ids, as the marketplace sends them
        async with database.reader() as session:
            found = await instances.list_live_app_info(session, product="alpha", instance_ids=asked, is_test=False)
    finally:
        await database.dispose()
    assert [instance_id for instance_id, _ in found] == asked
    [(statement, parameters)] = sent
    with closing(sqlite3.connect(path)) as connection:
        plan = " ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "(product=? AND instance_id=?)" in plan, plan
    assert "status" not in plan, plan


def test_only_a_debug_instance_comes_back_from_released() -> None:
    assert not instances.can_transition(InstanceStatus.RELEASED, InstanceStatus.PROVISIONING)
    assert instances.can_transition(InstanceStatus.RELEASED, InstanceStatus.PROVISIONING, is_test=True)
    assert not instances.can_transition(InstanceStatus.RELEASED, InstanceStatus.ACTIVE, is_test=True)
