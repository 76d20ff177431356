"""instances, history, call log and jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-26 05:14:48.244033
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('activity', sa.String(length=32), nullable=True),
    sa.Column('result_code', sa.String(length=6), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('body', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('call_log', schema=None) as batch_op:
        batch_op.create_index('ix_call_log_product_time', ['product', 'created_at'], unique=False)
        batch_op.create_index('ix_call_log_request', ['request_id'], unique=False)

    op.create_table('instance_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('activity', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.create_index('ix_instance_events_instance', ['product', 'instance_id', 'id'], unique=False)

    op.create_table('instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('order_line_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('provisioning', 'active', 'frozen', 'released', 'failed', name='instancestatus', native_enum=False, length=16), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('expire_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sku_code', sa.String(length=64), nullable=True),
    sa.Column('product_id', sa.String(length=64), nullable=True),
    sa.Column('linear_value', sa.Integer(), nullable=True),
    sa.Column('charging_mode', sa.String(length=25), nullable=True),
    sa.Column('order_details', sa.JSON(), nullable=True),
    sa.Column('app_info', sa.JSON(), nullable=True),
    sa.Column('failure_code', sa.String(length=6), nullable=True),
    sa.Column('failure_reason', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'instance_id', name='uq_instances_product_instance'),
    sa.UniqueConstraint('product', 'order_id', 'order_line_id', name='uq_instances_product_order_line')
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_product_status', ['product', 'status'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('sequence_key', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'done', 'dead', name='jobstate', native_enum=False, length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=1024), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('product', 'dedupe_key', name='uq_jobs_product_dedupe')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_due', ['state', 'run_at'], unique=False)
        batch_op.create_index('ix_jobs_sequence', ['sequence_key', 'state', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_sequence')
        batch_op.drop_index('ix_jobs_due')

    op.drop_table('jobs')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index('ix_instances_product_status')

    op.drop_table('instances')
    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.drop_index('ix_instance_events_instance')

    op.drop_table('instance_events')
    with op.batch_alter_table('call_log', schema=None) as batch_op:
        batch_op.drop_index('ix_call_log_request')
        batch_op.drop_index('ix_call_log_product_time')

    op.drop_table('call_log')
