"""kit directories: tenants, app credentials, departments, members, authorizations and their history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:31:19.331881
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('directory_apps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('client_secret_sealed', sa.Text(), nullable=False),
    sa.Column('oaep_variant', sa.String(length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', 'app_id', name='uq_directory_apps_scope')
    )
    op.create_table('directory_authorization_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=False),
    sa.Column('action', sa.Enum('granted', 'changed', 'revoked', name='authorizationaction', native_enum=False, length=8), nullable=False),
    sa.Column('role', sa.Enum('admin', 'user', name='memberrole', native_enum=False, length=8), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('cause', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('directory_authorization_history', schema=None) as batch_op:
        batch_op.create_index('ix_directory_authorization_history_member', ['product', 'tenant_id', 'is_test', 'user_name', 'id'], unique=False)

    op.create_table('directory_authorizations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.Enum('admin', 'user', name='memberrole', native_enum=False, length=8), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', 'app_id', 'user_name', name='uq_directory_authorizations_scope')
    )
    with op.batch_alter_table('directory_authorizations', schema=None) as batch_op:
        batch_op.create_index('ix_directory_authorizations_member', ['product', 'tenant_id', 'is_test', 'user_name'], unique=False)

    op.create_table('directory_departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('org_code', sa.String(length=64), nullable=False),
    sa.Column('org_name', sa.String(length=128), nullable=False),
    sa.Column('parent_code', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', 'org_code', name='uq_directory_departments_scope')
    )
    with op.batch_alter_table('directory_departments', schema=None) as batch_op:
        batch_op.create_index('ix_directory_departments_parent', ['parent_code', 'product', 'tenant_id', 'is_test'], unique=False)

    op.create_table('directory_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('user_name', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('org_code', sa.String(length=64), nullable=False),
    sa.Column('position', sa.String(length=64), nullable=True),
    sa.Column('employee_code', sa.String(length=64), nullable=True),
    sa.Column('employee_type', sa.Integer(), nullable=True),
    sa.Column('mobile', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=128), nullable=True),
    sa.Column('work_place', sa.String(length=256), nullable=True),
    sa.Column('entry_date', sa.String(length=20), nullable=True),
    sa.Column('extension', sa.JSON(), nullable=True),
    sa.Column('removed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', 'user_name', name='uq_directory_members_scope')
    )
    with op.batch_alter_table('directory_members', schema=None) as batch_op:
        batch_op.create_index('ix_directory_members_org', ['org_code', 'product', 'tenant_id', 'is_test'], unique=False)

    op.create_table('directory_tenants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('tenant_code', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('domain_name', sa.String(length=255), nullable=True),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'tenant_id', 'is_test', name='uq_directory_tenants_scope')
    )


def downgrade() -> None:
    op.drop_table('directory_tenants')
    with op.batch_alter_table('directory_members', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_members_org')

    op.drop_table('directory_members')
    with op.batch_alter_table('directory_departments', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_departments_parent')

    op.drop_table('directory_departments')
    with op.batch_alter_table('directory_authorizations', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_authorizations_member')

    op.drop_table('directory_authorizations')
    with op.batch_alter_table('directory_authorization_history', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_authorization_history_member')

    op.drop_table('directory_authorization_history')
    op.drop_table('directory_apps')
