"""Instances and their lifecycle: provisioning → active ⇄ frozen → released, or failed.

Services take the session first and the product explicitly: an instance id is only
meaningful within its product.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenants.database import connection_of
from tenants.errors import InvalidTransitionError
from tenants.models import LIVE_STATUSES, Instance, InstanceEvent, InstanceStatus

_TRANSITIONS: dict[InstanceStatus, frozenset[InstanceStatus]] = {
    InstanceStatus.PROVISIONING: frozenset({InstanceStatus.ACTIVE, InstanceStatus.FAILED, InstanceStatus.RELEASED}),
    InstanceStatus.FAILED: frozenset({InstanceStatus.PROVISIONING, InstanceStatus.RELEASED}),
    InstanceStatus.ACTIVE: frozenset({InstanceStatus.FROZEN, InstanceStatus.RELEASED}),
    InstanceStatus.FROZEN: frozenset({InstanceStatus.ACTIVE, InstanceStatus.RELEASED}),
    InstanceStatus.RELEASED: frozenset(),
}


# The statements every provisioning runs, built once: SQLAlchemy Core, no ORM unit of work.
_INSTANCES = Instance.__table__  # type: ignore[attr-defined]
_SELECT_INSTANCE = select(_INSTANCES).where(
    _INSTANCES.c.product == bindparam("b_product"), _INSTANCES.c.instance_id == bindparam("b_instance")
)
# By (product, instance id) only, the unique key: with a status condition too, SQLite (which has
# no statistics) walks the (product, status) index, every live instance of the product per query.
_APP_INFO = select(_INSTANCES.c.instance_id, _INSTANCES.c.status, _INSTANCES.c.is_test, _INSTANCES.c.app_info).where(
    _INSTANCES.c.product == bindparam("b_product"),
    _INSTANCES.c.instance_id.in_(bindparam("b_instances", expanding=True)),
)
_INSERT_INSTANCE = {
    is_postgresql: insert(_INSTANCES).on_conflict_do_nothing().returning(_INSTANCES.c.id)
    for is_postgresql, insert in ((False, sqlite_insert), (True, postgresql_insert))
}
_UPDATE_INSTANCE_IN_STATUS = update(_INSTANCES).where(
    _INSTANCES.c.product == bindparam("b_product"),
    _INSTANCES.c.instance_id == bindparam("b_instance"),
    _INSTANCES.c.status == bindparam("b_expected"),
)
"""Sets the columns its parameters name besides the `b_` ones."""
_INSERT_EVENT = InstanceEvent.__table__.insert()  # type: ignore[attr-defined]


_DEBUG_TRANSITIONS = frozenset({(InstanceStatus.RELEASED, InstanceStatus.PROVISIONING)})
"""What a debug (test) instance may do besides: the marketplace replays its saved debug cases,
purchase to release, twice a day on the same mock orders, so a released debug instance is
provisioned again by the next debug newInstance for its order line."""


def can_transition(current: InstanceStatus, target: InstanceStatus, *, is_test: bool = False) -> bool:
    return target in _TRANSITIONS[current] or (is_test and (current, target) in _DEBUG_TRANSITIONS)


async def get_instance(session: AsyncSession, *, product: str, instance_id: str) -> Instance | None:
    """The instance as it is now, for reading: a copy the session does not track (to change an
    instance, lock it with `get_instance_for_update` or use `change_status_if`)."""
    connection = await connection_of(session)
    row = (await connection.execute(_SELECT_INSTANCE, {"b_product": product, "b_instance": instance_id})).first()
    return Instance(**row._mapping) if row is not None else None


async def get_instance_for_update(session: AsyncSession, *, product: str, instance_id: str) -> Instance | None:
    """The instance with its row locked until the transaction ends (PostgreSQL)."""
    query = select(Instance).where(Instance.product == product, Instance.instance_id == instance_id).with_for_update()
    return (await session.exec(query)).first()


async def list_live_app_info(
    session: AsyncSession, *, product: str, instance_ids: Sequence[str], is_test: bool
) -> list[tuple[str, dict[str, Any]]]:
    """(instance id, stored AppInfo) of the active or frozen instances among `instance_ids` that
    have one and are test instances or not as `is_test` says, in the order asked; others are
    left out. A few columns, no entities: queryInstance asks for up to 100 at a time."""
    connection = await connection_of(session)
    rows = await connection.execute(_APP_INFO, {"b_product": product, "b_instances": list(instance_ids)})
    found: dict[str, dict[str, Any]] = {
        instance_id: dict(app_info)
        for instance_id, status, row_is_test, app_info in rows
        if app_info and status in LIVE_STATUSES and row_is_test == is_test
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
    the insert does nothing on a conflict, and the row is then read back, locked. A created
    instance is a copy the session does not track: change it with `change_status_if`.
    """
    connection = await connection_of(session)
    insert = _INSERT_INSTANCE[connection.dialect.name == "postgresql"]
    values: dict[str, Any] = {
        "product": product,
        "instance_id": instance_id,
        "order_id": order_id,
        "order_line_id": order_line_id,
        "status": InstanceStatus.PROVISIONING,
        "is_test": is_test,
        "created_at": now,
        "updated_at": now,
    }
    row_id = (await connection.execute(insert, values)).scalar()
    if row_id is not None:
        return Instance(id=row_id, **values), True
    query = select(Instance).where(
        Instance.product == product, Instance.order_id == order_id, Instance.order_line_id == order_line_id
    )
    instance = (await session.exec(query.with_for_update())).first()
    if instance is None:
        # The instance id is taken by another order line: a new businessId will be sent.
        raise InvalidTransitionError("instance id already used by another order line")
    if instance.is_test != is_test:
        # Test calls never reach a real instance, nor real calls a test one.
        kind = "a test" if instance.is_test else "a real"
        raise InvalidTransitionError(f"the order line belongs to {kind} instance")
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
    """Move `instance` (locked in this session) to `status` and write the change to its history."""
    if not can_transition(instance.status, status, is_test=instance.is_test):
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


async def change_status_if(
    session: AsyncSession,
    *,
    product: str,
    instance_id: str,
    expected: InstanceStatus,
    status: InstanceStatus,
    activity: str,
    now: datetime,
    changes: Mapping[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Move the instance from `expected` to `status`, setting `changes` (column values) with it,
    and write the change to its history; False, changing nothing, if it is not `expected` now.

    One conditional UPDATE, which also holds the row's lock to the end of the transaction on
    PostgreSQL: no read before it, no ORM unit of work.
    """
    if not can_transition(expected, status):
        raise InvalidTransitionError(f"{expected} cannot become {status}")
    connection = await connection_of(session)
    parameters = {
        **(changes or {}),
        "status": status,
        "updated_at": now,
        "b_product": product,
        "b_instance": instance_id,
        "b_expected": expected,
    }
    if not (await connection.execute(_UPDATE_INSTANCE_IN_STATUS, parameters)).rowcount:
        return False
    await _insert_event(
        connection,
        product=product,
        instance_id=instance_id,
        activity=activity,
        from_status=expected,
        to_status=status,
        now=now,
        request_id=None,
        detail=detail,
    )
    return True


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
    await _insert_event(
        await connection_of(session),
        product=instance.product,
        instance_id=instance.instance_id,
        activity=activity,
        from_status=instance.status,
        to_status=to_status or instance.status,
        now=now,
        request_id=request_id,
        detail=detail,
    )


async def _insert_event(
    connection: AsyncConnection,
    *,
    product: str,
    instance_id: str,
    activity: str,
    from_status: InstanceStatus,
    to_status: InstanceStatus,
    now: datetime,
    request_id: str | None,
    detail: dict[str, Any] | None,
) -> None:
    await connection.execute(
        _INSERT_EVENT,
        {
            "product": product,
            "instance_id": instance_id,
            "activity": activity,
            "from_status": from_status,
            "to_status": to_status,
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
