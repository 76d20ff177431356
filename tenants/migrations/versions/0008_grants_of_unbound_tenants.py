"""member_role_grants: forget the grants of tenants already unbound

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:20:00

Unbinding a tenant (tenantSync flag 0) now deletes its grants with the rest of its directory;
before, they stayed behind and would have applied again had the tenant been bound anew.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    grants = sa.table(
        "member_role_grants", sa.column("product"), sa.column("tenant_id"), sa.column("is_test", sa.Boolean)
    )
    tenants = sa.table(
        "directory_tenants",
        sa.column("product"),
        sa.column("tenant_id"),
        sa.column("is_test", sa.Boolean),
        sa.column("deleted", sa.Boolean),
    )
    unbound = sa.exists().where(
        tenants.c.product == grants.c.product,
        tenants.c.tenant_id == grants.c.tenant_id,
        tenants.c.is_test == grants.c.is_test,
        tenants.c.deleted.is_(True),
    )
    op.execute(grants.delete().where(unbound))


def downgrade() -> None:
    pass  # the grants are gone for good, as they would be had the fix been there at the unbinding
