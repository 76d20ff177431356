"""SQLModel tables of the admin API: operator tokens and the audit log of admin actions."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from tenants.models import UTCDateTime, _enum_text, utc_now


class TokenScope(enum.StrEnum):
    """What an operator token may do: `read` sees, `write` also acts (retry, reconcile)."""

    READ = "read"
    WRITE = "write"


class ApiToken(SQLModel, table=True):
    """An operator's bearer token; only the SHA-256 of the token is kept, never the token."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    products: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scope: TokenScope = Field(sa_type=_enum_text(TokenScope, 8))
    token_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """One admin action: who did what to which target, when, and from where."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_product", "product", "id"),
        Index("ix_audit_log_tenant", "product", "tenant_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    actor_kind: str = Field(max_length=16)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    product: str | None = Field(default=None, max_length=48)
    tenant_id: str | None = Field(default=None, max_length=64)
    """Set by tenant-scoped actions (the tenant-admin half of the API); None for operator actions."""
    target: str | None = Field(default=None, max_length=200)
    is_test: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    """The action was on the marketplace's debug data (testFlag 1): a test tenant, instance or its job."""
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    client_address: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
