"""SQLModel tables of the buyer directories the Kit syncs deliver, one copy per product.

Every row is scoped by (product, tenant_id, is_test): the same enterprise bound to two
products has two independent copies, and the marketplace's debug data (testFlag 1) never
mixes with the real data of the same tenant. Rows reference each other by their natural
codes within that scope (orgCode, userName, appId), as the marketplace does, so a sync may
arrive before what it refers to (a department before its parent, a member before their
department) and is linked as soon as the other side arrives.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Enum, Index, Text, UniqueConstraint, column
from sqlmodel import Field, SQLModel

from tenants.models import UTCDateTime, utc_now


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, **kwargs)


class MemberRole(enum.StrEnum):
    """The marketplace's two account roles; each product maps them onto its own permissions."""

    ADMIN = "admin"
    USER = "user"


class AuthorizationAction(enum.StrEnum):
    GRANTED = "granted"
    CHANGED = "changed"
    REVOKED = "revoked"


_ROLE_TYPE = Enum(
    MemberRole,
    native_enum=False,
    create_constraint=False,
    length=8,
    values_callable=lambda members: [member.value for member in members],
)
_NOT_REMOVED = column("removed", Boolean).is_(False)
"""A member row still in the enterprise: the predicate of the partial index, as queries say it."""
_ACTION_TYPE = Enum(
    AuthorizationAction,
    native_enum=False,
    create_constraint=False,
    length=8,
    values_callable=lambda members: [member.value for member in members],
)


class DirectoryTenant(SQLModel, table=True):
    """A buyer enterprise as one product knows it.

    The row exists from the first sync of any kind for the tenant; its identity fields are
    null until tenantSync brings them. `deleted` marks an unbound tenant: its departments,
    members, authorizations and credentials are gone, the row (and the history) stays.
    """

    __tablename__ = "directory_tenants"
    __table_args__ = (UniqueConstraint("product", "tenant_id", "is_test", name="uq_directory_tenants_scope"),)

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    tenant_code: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=255)
    domain_name: str | None = Field(default=None, max_length=255)
    """The tenant's identity domain, `https://host[/path]`, checked before it was stored."""
    instance_id: str = Field(default="", max_length=64)
    order_id: str = Field(default="", max_length=64)
    deleted: bool = False
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class DirectoryApp(SQLModel, table=True):
    """The OAuth client of one app for one tenant (applicationSync); the secret only sealed."""

    __tablename__ = "directory_apps"
    __table_args__ = (UniqueConstraint("product", "tenant_id", "is_test", "app_id", name="uq_directory_apps_scope"),)

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    app_id: str = Field(max_length=64)
    client_id: str = Field(max_length=64)
    client_secret_sealed: str = Field(sa_column=Column(Text, nullable=False), repr=False)
    """`SecretBox` seal of the plaintext, bound to this row's scope and app."""
    oaep_variant: str = Field(max_length=24)
    """Which OAEP parameters decrypted the marketplace's ciphertext (see the contract §5)."""
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class DirectoryDepartment(SQLModel, table=True):
    """A department; `parent_code` is empty at the top and may name a department not (yet) present."""

    __tablename__ = "directory_departments"
    __table_args__ = (
        UniqueConstraint("product", "tenant_id", "is_test", "org_code", name="uq_directory_departments_scope"),
        # parent_code first: a probe by orgCode must never look cheaper through this index than
        # through the unique key, even before the planner has statistics for the table.
        Index("ix_directory_departments_parent", "parent_code", "product", "tenant_id", "is_test"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    org_code: str = Field(max_length=64)
    org_name: str = Field(max_length=128)
    parent_code: str = Field(default="", max_length=64)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class DirectoryMember(SQLModel, table=True):
    """A member of the enterprise, unique by userName within (product, tenant).

    `org_code` may name a department that does not exist (any more): allOrgSync removed it,
    or it has not arrived yet. `removed` is set by authSync flag 0 (the member was deleted
    from the enterprise); a later grant brings the member back.
    """

    __tablename__ = "directory_members"
    __table_args__ = (
        UniqueConstraint("product", "tenant_id", "is_test", "user_name", name="uq_directory_members_scope"),
        # org_code first: a probe by userName must never look cheaper through this index than
        # through the unique key, even before the planner has statistics for the table.
        Index("ix_directory_members_org", "org_code", "product", "tenant_id", "is_test"),
        # The members still in the enterprise, in few bytes (equal keys share one entry): the admin
        # API counts a tenant's members, or a department's, from it alone. The predicate is written
        # as the queries write it (`removed IS false`) so that both databases match them to it.
        Index(
            "ix_directory_members_present",
            "product",
            "tenant_id",
            "is_test",
            "org_code",
            postgresql_where=_NOT_REMOVED,
            sqlite_where=_NOT_REMOVED,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    user_name: str = Field(max_length=64)
    name: str = Field(max_length=64)
    org_code: str = Field(default="", max_length=64)
    position: str | None = Field(default=None, max_length=64)
    employee_code: str | None = Field(default=None, max_length=64)
    employee_type: int | None = None
    mobile: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=128)
    work_place: str | None = Field(default=None, max_length=256)
    entry_date: str | None = Field(default=None, max_length=20)
    extension: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    removed: bool = False
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class DirectoryMemberCount(SQLModel, table=True):
    """How many members of a tenant are still in the enterprise (not removed): the admin API's
    total count of a tenant's members, read as one row instead of counted over the members.

    The writers of `directory_members` (`tenants.directory`) keep it in the same transaction,
    under the tenant's lock; no row means no such member. Unbinding the tenant deletes it.
    """

    __tablename__ = "directory_member_counts"
    __table_args__ = (UniqueConstraint("product", "tenant_id", "is_test", name="uq_directory_member_counts_scope"),)

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    present: int = 0
    """Member rows of the tenant with `removed` false."""


class DirectoryAuthorization(SQLModel, table=True):
    """The marketplace's authorization of one member for one app: live while `revoked_at` is null."""

    __tablename__ = "directory_authorizations"
    __table_args__ = (
        UniqueConstraint(
            "product", "tenant_id", "is_test", "app_id", "user_name", name="uq_directory_authorizations_scope"
        ),
        Index("ix_directory_authorizations_member", "product", "tenant_id", "is_test", "user_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    app_id: str = Field(max_length=64)
    user_name: str = Field(max_length=64)
    role: MemberRole = Field(sa_type=_ROLE_TYPE)
    enabled: bool = True
    granted_at: datetime = _timestamp()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = _timestamp()


class DirectoryAuthorizationChange(SQLModel, table=True):
    """One change of an authorization, kept after the tenant is unbound (the audit trail)."""

    __tablename__ = "directory_authorization_history"
    __table_args__ = (
        Index("ix_directory_authorization_history_member", "product", "tenant_id", "is_test", "user_name", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product: str = Field(max_length=48)
    tenant_id: str = Field(max_length=64)
    is_test: bool = False
    app_id: str = Field(max_length=64)
    user_name: str = Field(max_length=64)
    action: AuthorizationAction = Field(sa_type=_ACTION_TYPE)
    role: MemberRole = Field(sa_type=_ROLE_TYPE)
    enabled: bool
    cause: str = Field(max_length=32)
    """What made the change: the sync (authSync flag 1/2/0/3, tenantSync unbinding)."""
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()
