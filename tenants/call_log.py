"""The call log: every inbound production call with its outcome, secrets redacted."""

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.models import CallLogEntry


async def create_call_log_entry(session: AsyncSession, *, entry: CallLogEntry) -> None:
    session.add(entry)


async def list_call_log(session: AsyncSession, *, products: Sequence[str], limit: int = 100) -> Sequence[CallLogEntry]:
    query = (
        select(CallLogEntry)
        .where(col(CallLogEntry.product).in_(products))
        .order_by(col(CallLogEntry.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())
