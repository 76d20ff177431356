"""The call log: every inbound production call with its outcome, secrets redacted."""

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.database import connection_of
from tenants.models import CallLogEntry


class NewCallLogEntry(TypedDict):
    """A call log entry to write: the columns of `CallLogEntry` but its id, as plain data. Every
    call writes one, and only writes it: building the table model cost about 30 µs a call."""

    product: str
    kind: str
    activity: str | None
    result_code: str
    reason: str | None
    http_status: int
    latency_ms: float
    request_id: str
    instance_id: str | None
    is_test: bool
    body: str | None
    created_at: datetime


async def add_call_log_entries(session: AsyncSession, *, entries: Sequence[NewCallLogEntry]) -> None:
    """One multi-row INSERT for a batch (the entries are not read back)."""
    connection = await connection_of(session)
    await connection.execute(CallLogEntry.__table__.insert(), list(entries))  # type: ignore[attr-defined]


async def list_call_log(session: AsyncSession, *, products: Sequence[str], limit: int = 100) -> Sequence[CallLogEntry]:
    query = (
        select(CallLogEntry)
        .where(col(CallLogEntry.product).in_(products))
        .order_by(col(CallLogEntry.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())
