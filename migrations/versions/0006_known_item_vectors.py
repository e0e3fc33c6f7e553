"""A user-encoder version's items' vectors as it holds them (learned embedding + content as
trained, projected), so that the orchestrator places its items where the model does and
sends the model their tokens alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``model_artifacts.known_vectors`` is a float32 .npy array, one row per vocabulary item;
NULL for versions exported before this revision, which take every history position's
content (serving/core/itemspace.py, ``ItemSpace.known_vectors``).
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE model_artifacts ADD COLUMN known_vectors bytea")


def downgrade() -> None:
    op.execute("ALTER TABLE model_artifacts DROP COLUMN known_vectors")
