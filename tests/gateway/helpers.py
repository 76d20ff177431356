"""Reading what the app stored, for assertions that something did or did not happen."""

from typing import Any

from sqlmodel import col, func, select
from starlette.applications import Starlette

from tenants.database import Database
from tenants.models import CallLogEntry, Instance, Job


async def count_rows(app: Starlette, model: Any) -> int:
    async with app.state.database.reader() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def state_counts(app: Starlette) -> tuple[int, int]:
    """(instances, jobs): what a rejected call must leave unchanged."""
    return await count_rows(app, Instance), await count_rows(app, Job)


async def call_log(app: Starlette) -> list[CallLogEntry]:
    await app.state.edge.call_log.flush()
    async with app.state.database.reader() as session:
        return list((await session.exec(select(CallLogEntry).order_by(col(CallLogEntry.id)))).all())


async def get_instance(app: Starlette, product: str, instance_id: str) -> Instance | None:
    database: Database = app.state.database
    async with database.reader() as session:
        query = select(Instance).where(Instance.product == product, Instance.instance_id == instance_id)
        return (await session.exec(query)).first()
