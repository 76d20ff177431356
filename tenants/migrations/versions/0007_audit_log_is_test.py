"""audit_log.is_test: actions on the marketplace's debug data, marked

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 09:10:00

Existing entries are marked from what they recorded: the role changes kept the test flag in
their detail; an instance reconciliation names its instance, a job retry its job (whose payload
carries the test flag or names its instance).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False))

    audit = sa.table(
        "audit_log",
        sa.column("action", sa.String),
        sa.column("product", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.JSON),
        sa.column("is_test", sa.Boolean),
    )
    instances = sa.table(
        "instances", sa.column("product", sa.String), sa.column("instance_id", sa.String), sa.column("is_test", sa.Boolean)
    )
    jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("product", sa.String), sa.column("payload", sa.JSON))

    def test_instance(*clauses: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        return sa.exists().where(instances.c.is_test.is_(True), *clauses)

    role_changes = sa.and_(
        audit.c.action.in_(["memberRolesGrant", "memberRolesRevoke"]),
        audit.c.detail["is_test"].as_boolean().is_(True),
    )
    reconciliations = sa.and_(
        audit.c.action == "instanceReconcile",
        test_instance(
            instances.c.product == audit.c.product, sa.literal("instance:") + instances.c.instance_id == audit.c.target
        ),
    )
    retries = sa.and_(
        audit.c.action == "jobRetry",
        sa.exists().where(
            jobs.c.product == audit.c.product,
            sa.literal("job:") + sa.cast(jobs.c.id, sa.String) == audit.c.target,
            sa.or_(
                jobs.c.payload["is_test"].as_boolean().is_(True),
                test_instance(
                    instances.c.product == jobs.c.product,
                    instances.c.instance_id == jobs.c.payload["instance_id"].as_string(),
                ),
            ),
        ),
    )
    op.execute(
        audit.update()
        .where(sa.or_(role_changes, reconciliations, retries))
        .values(is_test=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("is_test")
