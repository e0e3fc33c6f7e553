"""Initial schema: catalogue, users and their state, events, impressions, parameters, models.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE items (
    item_id      text PRIMARY KEY,
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    categories   text[] NOT NULL DEFAULT '{}',
    tags         text[] NOT NULL DEFAULT '{}',
    attributes   jsonb NOT NULL DEFAULT '{}',
    published_at timestamptz,
    embedding    real[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
-- Replicas pick up items changed since their last refresh.
CREATE INDEX items_updated_at ON items (updated_at);

CREATE TABLE users (
    user_id      text PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

-- The hot read of Recommend: one row per user (or anonymous session, keyed 'session:<id>').
CREATE TABLE user_state (
    subject     text PRIMARY KEY,
    item_ids    text[] NOT NULL DEFAULT '{}',
    event_types smallint[] NOT NULL DEFAULT '{}',
    disliked    text[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotency of LogFeedback: a unique key on the partitioned events table would have to
-- include occurred_at, so event ids are claimed here first.
CREATE TABLE event_ids (
    event_id    text PRIMARY KEY,
    occurred_at timestamptz NOT NULL
);

CREATE TABLE events (
    event_id          text NOT NULL,
    user_id           text NOT NULL DEFAULT '',
    session_id        text NOT NULL DEFAULT '',
    item_id           text NOT NULL,
    type              smallint NOT NULL,
    value             real NOT NULL DEFAULT 0,
    recommendation_id text,
    variant           text,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_user ON events (user_id, occurred_at);
CREATE INDEX events_session ON events (session_id, occurred_at);
CREATE INDEX events_occurred_at ON events (occurred_at);
CREATE INDEX events_recommendation ON events (recommendation_id)
    WHERE recommendation_id IS NOT NULL;

CREATE TABLE recommendations (
    recommendation_id uuid PRIMARY KEY,
    user_id           text NOT NULL DEFAULT '',
    session_id        text NOT NULL DEFAULT '',
    variant           text NOT NULL,
    parameter_version bigint NOT NULL,
    model_version     text NOT NULL,
    latency_ms        real NOT NULL,
    degraded          boolean NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendations_created_at ON recommendations (created_at);
CREATE INDEX recommendations_user ON recommendations (user_id);

CREATE TABLE impressions (
    recommendation_id uuid NOT NULL REFERENCES recommendations ON DELETE CASCADE,
    position          smallint NOT NULL,
    item_id           text NOT NULL,
    score             real NOT NULL,
    propensity        real NOT NULL DEFAULT 1,
    components        jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recommendation_id, position)
);
CREATE INDEX impressions_created_at ON impressions (created_at);
CREATE INDEX impressions_item ON impressions (item_id);

-- Engagement counters maintained by LogFeedback; popularity decays exponentially
-- (value at popularity_at; readers decay it to now with the current half-life).
CREATE TABLE item_stats (
    item_id       text PRIMARY KEY REFERENCES items ON DELETE CASCADE,
    impressions   bigint NOT NULL DEFAULT 0,
    clicks        bigint NOT NULL DEFAULT 0,
    likes         bigint NOT NULL DEFAULT 0,
    dislikes      bigint NOT NULL DEFAULT 0,
    skips         bigint NOT NULL DEFAULT 0,
    add_to_carts  bigint NOT NULL DEFAULT 0,
    purchases     bigint NOT NULL DEFAULT 0,
    popularity    double precision NOT NULL DEFAULT 0,
    popularity_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX item_stats_updated_at ON item_stats (updated_at);

CREATE TABLE parameter_versions (
    version    bigserial PRIMARY KEY,
    parameters jsonb NOT NULL,
    changed_by text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- What the orchestrator needs to place items in a user-encoder version's space.
CREATE TABLE model_artifacts (
    model_name         text NOT NULL,
    version            integer NOT NULL,
    vocabulary         text[] NOT NULL,
    item_embeddings    bytea NOT NULL,
    content_projection bytea NOT NULL,
    config             jsonb NOT NULL,
    metrics            jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);
"""

DOWNGRADE = """
DROP TABLE model_artifacts;
DROP TABLE parameter_versions;
DROP TABLE item_stats;
DROP TABLE impressions;
DROP TABLE recommendations;
DROP TABLE events;
DROP TABLE event_ids;
DROP TABLE user_state;
DROP TABLE users;
DROP TABLE items;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
