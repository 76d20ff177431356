"""directory_member_counts: each tenant's count of members still in the enterprise

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 09:00:00

The admin API gives a member list's total count; for a whole tenant it now reads this one row,
kept by the Kit syncs that add, remove and restore members, instead of counting every member
(100,000 index entries for a big enterprise, ten milliseconds and more on every page). The
existing tenants are counted once here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_member_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("present", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product", "tenant_id", "is_test", name="uq_directory_member_counts_scope"),
    )
    members = sa.table(
        "directory_members",
        sa.column("product", sa.String),
        sa.column("tenant_id", sa.String),
        sa.column("is_test", sa.Boolean),
        sa.column("removed", sa.Boolean),
    )
    counts = sa.table(
        "directory_member_counts",
        sa.column("product", sa.String),
        sa.column("tenant_id", sa.String),
        sa.column("is_test", sa.Boolean),
        sa.column("present", sa.Integer),
    )
    present = (
        sa.select(members.c.product, members.c.tenant_id, members.c.is_test, sa.func.count())
        .where(members.c.removed.is_(False))
        .group_by(members.c.product, members.c.tenant_id, members.c.is_test)
    )
    op.execute(counts.insert().from_select(["product", "tenant_id", "is_test", "present"], present))


def downgrade() -> None:
    op.drop_table("directory_member_counts")
