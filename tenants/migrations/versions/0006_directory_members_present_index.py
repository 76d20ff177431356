"""directory_members: a partial index of the members still in the enterprise

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00

The admin API counts a tenant's members (or a department's) that are not removed; this narrow
index answers that from the index alone (an index-only scan on PostgreSQL once vacuum has
marked the pages all-visible), instead of reading every row of the tenant.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_REMOVED = sa.column("removed", sa.Boolean).is_(False)


def upgrade() -> None:
    with op.batch_alter_table("directory_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_members_present",
            ["product", "tenant_id", "is_test", "org_code"],
            unique=False,
            postgresql_where=_NOT_REMOVED,
            sqlite_where=_NOT_REMOVED,
        )


def downgrade() -> None:
    with op.batch_alter_table("directory_members", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_members_present")
