"""A/B experiments: named variants with traffic shares and parameter overrides.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE experiments (
    name       text PRIMARY KEY,
    status     text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped')),
    changed_by text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
-- One experiment runs at a time; every user is in exactly one of its variants.
CREATE UNIQUE INDEX experiments_one_running ON experiments ((true)) WHERE status = 'running';

CREATE TABLE variants (
    experiment text NOT NULL REFERENCES experiments ON DELETE CASCADE,
    name       text NOT NULL,
    position   smallint NOT NULL,
    share      double precision NOT NULL CHECK (share >= 0 AND share <= 1),
    -- Parameter overrides on top of the current parameter version.
    parameters jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (experiment, name)
);
"""

DOWNGRADE = """
DROP TABLE variants;
DROP TABLE experiments;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
