"""The call log: every inbound production call with its outcome, secrets redacted."""

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.database import connection_of
from tenants.models import CallLogEntry

_COLUMNS = [column.name for column in CallLogEntry.__table__.columns if column.name != "id"]  # type: ignore[attr-defined]


async def add_call_log_entries(session: AsyncSession, *, entries: Sequence[CallLogEntry]) -> None:
    """One multi-row INSERT for a batch (the entries are not read back)."""
    rows = [{name: getattr(entry, name) for name in _COLUMNS} for entry in entries]
    connection = await connection_of(session)
    await connection.execute(CallLogEntry.__table__.insert(), rows)  # type: ignore[attr-defined]


async def list_call_log(session: AsyncSession, *, products: Sequence[str], limit: int = 100) -> Sequence[CallLogEntry]:
    query = (
        select(CallLogEntry)
        .where(col(CallLogEntry.product).in_(products))
        .order_by(col(CallLogEntry.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())
