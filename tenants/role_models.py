"""SQLModel table of product role grants: which product roles a tenant admin gave to whom.

A grant names its subject by the marketplace's natural codes within the tenant's scope
(product, tenant_id, is_test): a member by userName, a department by orgCode. It is kept
whether or not the subject is authorized right now: effective roles are computed when read,
so a grant waits for a member the marketplace authorizes later, and a department's grant
reaches members who join it later.
"""

import enum
from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from tenants.models import UTCDateTime, _enum_text, utc_now


class GrantSubject(enum.StrEnum):
    """What a grant is given to."""

    MEMBER = "member"
    DEPARTMENT = "department"


class MemberRoleGrant(SQLModel, table=True):
    """One product role given to one member or one department of a tenant."""

    __tablename__ = "member_role_grants"
    __table_args__ = (
        UniqueConstraint(
            "product",
            "tenant_id",
            "is_test",
            "subject_kind",
            "subject_code",
            "role",
            name="uq_member_role_grants_subject",
        ),
        Index("ix_member_role_grants_role", "product", "tenant_id", "is_test", "role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    subject_kind: GrantSubject = Field(sa_type=_enum_text(GrantSubject, 16))
    subject_code: str = Field(max_length=64)
    """The member's userName or the department's orgCode."""
    role: str = Field(max_length=64)
    include_sub_departments: bool = False
    """For a department: the grant also reaches the members of every department below it."""
    granted_by: str = Field(max_length=128)
    """The audit log's name of who granted it (last changed it)."""
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
