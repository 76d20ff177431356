"""The demo product's own tables, `demo_workspaces` and `demo_members`, and the few queries they need.

The tables live in their own `MetaData`, apart from MarketGate's tables: the demo product owns
its data, creates its tables on first use and never reads the gateway's rows.
"""

import asyncio
import enum
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.adapters.contract import RetryLater
from tenants.database import Database, connection_of
from tenants.errors import DatabaseUnavailableError

metadata = MetaData()

demo_workspaces = Table(
    "demo_workspaces",
    metadata,
    Column("product", String(64), primary_key=True),
    Column("instance_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("sku_code", String(64)),
    Column("product_name", String(256)),
    Column("linear_value", Integer),
    Column("expire_time", DateTime(timezone=True)),
    Column("admin_user", String(64)),
    Column("admin_password_hash", String(256)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


demo_members = Table(
    "demo_members",
    metadata,
    Column("product", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("is_test", Boolean, primary_key=True),
    Column("user_name", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("org_code", String(64), nullable=False),
    Column("role", String(8), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""The members the marketplace authorized for the product, kept from the Kit's directory events."""

_INSERT_WORKSPACE = demo_workspaces.insert()


class WorkspaceStatus(enum.StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    RELEASED = "released"


LIVE_STATUSES = (WorkspaceStatus.ACTIVE, WorkspaceStatus.FROZEN)


@dataclass(frozen=True, slots=True)
class Workspace:
    """One row of `demo_workspaces`; times are UTC-aware."""

    product: str
    instance_id: str
    status: WorkspaceStatus
    sku_code: str | None
    product_name: str | None
    linear_value: int | None
    expire_time: datetime | None
    admin_user: str | None
    admin_password_hash: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


def as_utc(moment: datetime | None) -> datetime | None:
    """UTC-aware; naive times (SQLite gives them back so) are taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _workspace(row: RowMapping) -> Workspace:
    values = dict(row)
    values["status"] = WorkspaceStatus(values["status"])
    for name in ("expire_time", "created_at", "updated_at"):
        values[name] = as_utc(values[name])
    return Workspace(**values)


def _stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values ready to write: times in UTC, since SQLite keeps no offset."""
    return {name: as_utc(value) if isinstance(value, datetime) else value for name, value in values.items()}


class WorkspaceStore:
    """The demo product's database access; the table is created on first use."""

    def __init__(self, database_url: str) -> None:
        # MarketGate's own database access (SQLite writers queued in-process, as the gateway's).
        self._database = Database(database_url)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    @asynccontextmanager
    async def _connection(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A connection (in a transaction when it writes); a database that does not answer means
        "retry later"."""
        try:
            await self._ensure_schema()
            async with self._database.transaction() if write else self._database.reader() as session:
                yield await connection_of(session)
        except DatabaseUnavailableError as exc:
            raise RetryLater(f"demo database unavailable: {exc}") from exc

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:
            if not self._schema_ready:
                async with self._database.transaction() as session:
                    await (await connection_of(session)).run_sync(metadata.create_all)
                self._schema_ready = True

    async def get(self, *, product: str, instance_id: str) -> Workspace | None:
        query = select(demo_workspaces).where(
            demo_workspaces.c.product == product, demo_workspaces.c.instance_id == instance_id
        )
        async with self._connection(write=False) as connection:
            row = (await connection.execute(query)).mappings().first()
        return _workspace(row) if row is not None else None

    async def count_live(self, *, product: str) -> int:
        query = (
            select(func.count())
            .select_from(demo_workspaces)
            .where(demo_workspaces.c.product == product, demo_workspaces.c.status.in_(list(LIVE_STATUSES)))
        )
        async with self._connection(write=False) as connection:
            return int((await connection.execute(query)).scalar_one())

    async def insert(self, workspace: Workspace) -> bool:
        """Add the workspace; False if a row for the same instance already exists."""
        values = _stored({column.name: getattr(workspace, column.name) for column in demo_workspaces.columns})
        try:
            async with self._connection() as connection:
                await connection.execute(_INSERT_WORKSPACE, values)
        except IntegrityError:
            return False
        return True

    async def update(self, *, product: str, instance_id: str, changes: Mapping[str, Any]) -> bool:
        """Change columns of one row; False if there is no such row."""
        statement = (
            demo_workspaces.update()
            .where(demo_workspaces.c.product == product, demo_workspaces.c.instance_id == instance_id)
            .values(**_stored(changes))
        )
        async with self._connection() as connection:
            result = await connection.execute(statement)
        return isinstance(result, CursorResult) and result.rowcount > 0

    async def upsert_members(self, rows: list[dict[str, Any]]) -> None:
        """Add or replace members (rows hold every `demo_members` column)."""
        if not rows:
            return
        insert = sqlite_insert if self._database.is_sqlite else postgresql_insert
        statement = insert(demo_members)
        keys = ["product", "tenant_id", "is_test", "user_name"]
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in rows[0] if name not in keys}
        )
        async with self._connection() as connection:
            await connection.execute(statement, [_stored(row) for row in rows])

    async def delete_members(
        self, *, product: str, tenant_id: str, is_test: bool, user_names: list[str] | None
    ) -> None:
        """Remove the named members, or every member of the tenant when `user_names` is None."""
        statement = delete(demo_members).where(
            demo_members.c.product == product, demo_members.c.tenant_id == tenant_id, demo_members.c.is_test == is_test
        )
        if user_names is not None:
            statement = statement.where(demo_members.c.user_name.in_(user_names))
        async with self._connection() as connection:
            await connection.execute(statement)

    async def list_members(self, *, product: str, tenant_id: str, is_test: bool = False) -> list[dict[str, Any]]:
        query = (
            select(demo_members)
            .where(
                demo_members.c.product == product,
                demo_members.c.tenant_id == tenant_id,
                demo_members.c.is_test == is_test,
            )
            .order_by(demo_members.c.user_name)
        )
        async with self._connection() as connection:
            return [dict(row) for row in (await connection.execute(query)).mappings().all()]

    async def dispose(self) -> None:
        await self._database.dispose()
