"""product role grants to members and departments

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 06:18:20.679299
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('member_role_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('subject_kind', sa.Enum('member', 'department', name='grantsubject', native_enum=False, length=16), nullable=False),
    sa.Column('subject_code', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('include_sub_departments', sa.Boolean(), nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', 'subject_kind', 'subject_code', 'role', name='uq_member_role_grants_subject')
    )
    with op.batch_alter_table('member_role_grants', schema=None) as batch_op:
        batch_op.create_index('ix_member_role_grants_role', ['product', 'tenant_id', 'is_test', 'role'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member_role_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_member_role_grants_role')

    op.drop_table('member_role_grants')
