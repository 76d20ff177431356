"""SQLModel tables of the gateway's own records: instances, their history, calls and jobs.

Every row carries the product slug: tenancy is explicit, never implied by a global.
"""

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Enum, Index, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _enum_text(enum_class: type[enum.StrEnum], length: int) -> Enum:
    """An enum column stored as its values in plain text, read back as the enum."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, **kwargs)


class InstanceStatus(enum.StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FROZEN = "frozen"
    RELEASED = "released"
    FAILED = "failed"


LIVE_STATUSES = frozenset({InstanceStatus.ACTIVE, InstanceStatus.FROZEN})
"""The statuses of an instance that exists for its buyer: queryInstance answers it, an operator
may reconcile it, the adapter is told its state."""


class Instance(SQLModel, table=True):
    """A purchased instance of a product, keyed by the marketplace's order line."""

    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("product", "instance_id", name="uq_instances_product_instance"),
        UniqueConstraint("product", "order_id", "order_line_id", name="uq_instances_product_order_line"),
        Index("ix_instances_product_status", "product", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    instance_id: str = Field(max_length=64)
    order_id: str = Field(max_length=64)
    order_line_id: str = Field(max_length=64)
    status: InstanceStatus = Field(sa_type=_enum_text(InstanceStatus, 16))
    is_test: bool = False
    expire_time: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sku_code: str | None = Field(default=None, max_length=64)
    product_id: str | None = Field(default=None, max_length=64)
    linear_value: int | None = None
    charging_mode: str | None = Field(default=None, max_length=25)
    order_details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    app_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    failure_code: str | None = Field(default=None, max_length=6)
    failure_reason: str | None = Field(default=None, max_length=512)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class InstanceEvent(SQLModel, table=True):
    """One change of an instance: the history the vendor's operators read."""

    __tablename__ = "instance_events"
    __table_args__ = (Index("ix_instance_events_instance", "product", "instance_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    instance_id: str = Field(max_length=64)
    activity: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    order_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()


class CallLogEntry(SQLModel, table=True):
    """Every inbound production call, accepted or not (the "production interface messages")."""

    __tablename__ = "call_log"
    __table_args__ = (
        Index("ix_call_log_product_time", "product", "created_at"),
        Index("ix_call_log_request", "request_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    kind: str = Field(max_length=8)
    activity: str | None = Field(default=None, max_length=32)
    result_code: str = Field(max_length=6)
    reason: str | None = Field(default=None, max_length=512)
    http_status: int = 200
    latency_ms: float = 0.0
    request_id: str = Field(max_length=64)
    instance_id: str | None = Field(default=None, max_length=64)
    is_test: bool = False
    body: str | None = None
    created_at: datetime = _timestamp()


class JobState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class Job(SQLModel, table=True):
    """Durable background work (the outbox): written with the change it belongs to."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "state", "run_at"),
        Index("ix_jobs_sequence", "sequence_key", "state", "id"),
        UniqueConstraint("product", "dedupe_key", name="uq_jobs_product_dedupe"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    kind: str = Field(max_length=32)
    dedupe_key: str | None = Field(default=None, max_length=200)
    sequence_key: str | None = Field(default=None, max_length=200)
    """Jobs with the same sequence key run one at a time, in the order they were created."""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: JobState = Field(default=JobState.PENDING, sa_type=_enum_text(JobState, 8))
    attempts: int = 0
    run_at: datetime = _timestamp()
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1024)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
