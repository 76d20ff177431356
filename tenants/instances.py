"""Instances and their lifecycle: provisioning → active ⇄ frozen → released, or failed.

Services take the session first and the product explicitly: an instance id is only
meaningful within its product.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.errors import InvalidTransitionError
from tenants.models import Instance, InstanceEvent, InstanceStatus

_TRANSITIONS: dict[InstanceStatus, frozenset[InstanceStatus]] = {
    InstanceStatus.PROVISIONING: frozenset({InstanceStatus.ACTIVE, InstanceStatus.FAILED, InstanceStatus.RELEASED}),
    InstanceStatus.FAILED: frozenset({InstanceStatus.PROVISIONING, InstanceStatus.RELEASED}),
    InstanceStatus.ACTIVE: frozenset({InstanceStatus.FROZEN, InstanceStatus.RELEASED}),
    InstanceStatus.FROZEN: frozenset({InstanceStatus.ACTIVE, InstanceStatus.RELEASED}),
    InstanceStatus.RELEASED: frozenset(),
}


def can_transition(current: InstanceStatus, target: InstanceStatus) -> bool:
    return target in _TRANSITIONS[current]


async def get_instance(session: AsyncSession, *, product: str, instance_id: str) -> Instance | None:
    query = select(Instance).where(Instance.product == product, Instance.instance_id == instance_id)
    return (await session.exec(query)).first()


async def get_instance_for_update(session: AsyncSession, *, product: str, instance_id: str) -> Instance | None:
    """The instance with its row locked until the transaction ends (PostgreSQL)."""
    query = select(Instance).where(Instance.product == product, Instance.instance_id == instance_id).with_for_update()
    return (await session.exec(query)).first()


async def list_live_app_info(
    session: AsyncSession, *, product: str, instance_ids: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(instance id, stored AppInfo) of the active or frozen instances among `instance_ids` that
    have one, in the order asked; others are left out. Two columns, no entities: queryInstance
    asks for up to 100 at a time."""
    query = select(Instance.instance_id, Instance.app_info).where(
        Instance.product == product,
        col(Instance.instance_id).in_(instance_ids),
        col(Instance.status).in_([InstanceStatus.ACTIVE, InstanceStatus.FROZEN]),
    )
    found: dict[str, dict[str, Any]] = {
        instance_id: dict(app_info) for instance_id, app_info in (await session.exec(query)).all() if app_info
    }
    return [(instance_id, found[instance_id]) for instance_id in dict.fromkeys(instance_ids) if instance_id in found]


async def create_instance_if_absent(
    session: AsyncSession,
    *,
    product: str,
    instance_id: str,
    order_id: str,
    order_line_id: str,
    is_test: bool,
    now: datetime,
) -> tuple[Instance, bool]:
    """The instance of an order line, created in `provisioning` unless it exists already.

    Returns (instance, created). Concurrent callers for one order line all get the same row:
    the insert does nothing on a conflict, and the row is then read back.
    """
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    values = {
        "product": product,
        "instance_id": instance_id,
        "order_id": order_id,
        "order_line_id": order_line_id,
        "status": InstanceStatus.PROVISIONING.value,
        "is_test": is_test,
        "created_at": now,
        "updated_at": now,
    }
    inserted = await session.exec(insert(Instance).values(**values).on_conflict_do_nothing().returning(Instance))
    instance = inserted.scalars().first()
    if instance is not None:
        return instance, True
    query = select(Instance).where(
        Instance.product == product, Instance.order_id == order_id, Instance.order_line_id == order_line_id
    )
    instance = (await session.exec(query.with_for_update())).first()
    if instance is None:
        # The instance id is taken by another order line: a new businessId will be sent.
        raise InvalidTransitionError("instance id already used by another order line")
    return instance, False


async def change_status(
    session: AsyncSession,
    *,
    instance: Instance,
    status: InstanceStatus,
    activity: str,
    now: datetime,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move `instance` to `status` and write the change to its history."""
    if not can_transition(instance.status, status):
        raise InvalidTransitionError(f"{instance.status} cannot become {status}")
    await record_event(
        session,
        instance=instance,
        activity=activity,
        now=now,
        request_id=request_id,
        detail=detail,
        to_status=status,
    )
    instance.status = status
    instance.updated_at = now
    session.add(instance)


async def record_event(
    session: AsyncSession,
    *,
    instance: Instance,
    activity: str,
    now: datetime,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
    to_status: InstanceStatus | None = None,
) -> None:
    """Write one line of an instance's history (a plain INSERT: nothing reads it back)."""
    connection = await session.connection()
    await connection.execute(
        InstanceEvent.__table__.insert(),  # type: ignore[attr-defined]
        {
            "product": instance.product,
            "instance_id": instance.instance_id,
            "activity": activity,
            "from_status": instance.status,
            "to_status": to_status or instance.status,
            "order_id": (detail or {}).get("orderId"),
            "detail": detail,
            "request_id": request_id,
            "created_at": now,
        },
    )


async def list_instance_events(session: AsyncSession, *, product: str, instance_id: str) -> Sequence[InstanceEvent]:
    query = (
        select(InstanceEvent)
        .where(InstanceEvent.product == product, InstanceEvent.instance_id == instance_id)
        .order_by(col(InstanceEvent.id))
    )
    return list((await session.exec(query)).all())
