"""merge the Kit directories (0002) and the admin API tables (0003)

Revision ID: 0004
Revises: 0002, 0003
Create Date: 2026-11-26 06:00:00
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0002", "0003")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
