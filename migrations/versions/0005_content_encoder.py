"""Every item embedding records the content encoder that produced it; re-embedding stages
a new embedding set before the catalogue switches to it in one transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``items.content_encoder`` is the encoder's fingerprint (serving/core/encoders.py); rows
written before this revision keep '' ("not recorded": the bundled MiniLM was the only
encoder then). The embedding column stays ``real[]`` without a fixed width, so an encoder
of another width needs no schema change. ``item_embedding_staging`` holds the vectors
`recsys reembed` has computed so far for one encoder, committed batch by batch (an
interrupted run resumes); the catalogue only ever switches as a whole
(serving/adapters/postgres/embedding_sets.py).
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE items ADD COLUMN content_encoder text NOT NULL DEFAULT '';

CREATE TABLE item_embedding_staging (
    encoder           text NOT NULL,
    item_id           text NOT NULL,
    embedding         real[] NOT NULL,
    -- the item's updated_at when its text was read: a row written since is not switched
    source_updated_at timestamptz NOT NULL,
    PRIMARY KEY (encoder, item_id)
);
"""

DOWNGRADE = """
DROP TABLE item_embedding_staging;
ALTER TABLE items DROP COLUMN content_encoder;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
