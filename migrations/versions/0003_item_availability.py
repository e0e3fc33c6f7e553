"""Items can have an availability window (shown only between available_from and _until).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE items ADD COLUMN available_from timestamptz,"
        " ADD COLUMN available_until timestamptz"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE items DROP COLUMN available_from, DROP COLUMN available_until")
