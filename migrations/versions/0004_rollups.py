"""Rollup tables for the dashboard, maintained incrementally from a watermark.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

serving/adapters/postgres/rollups.py refreshes them: every pass folds the rows inserted since the
last watermark into these tables, and the dashboard reads only them. Rows are found by
their insert time, stamped by the database: events.received_at, and the new inserted_at
of recommendations and impressions (their created_at is when they were served, which a
queue held during a database outage can leave far behind the insert).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
-- now() as a default is evaluated once for the rows already there: no table rewrite.
ALTER TABLE recommendations ADD COLUMN inserted_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE impressions ADD COLUMN inserted_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX recommendations_inserted_at ON recommendations (inserted_at);
CREATE INDEX impressions_inserted_at ON impressions (inserted_at);

-- How far each source has been folded in (exclusive upper bound of the last pass).
CREATE TABLE rollup_watermarks (
    name      text PRIMARY KEY,
    watermark timestamptz NOT NULL
);

-- Engagement per minute and A/B variant ('' for events that carry none). Impressions and the
-- attributed counts are bucketed by the impression's minute, event counts by the event's
-- occurred_at minute.
CREATE TABLE rollup_minute (
    minute                  timestamptz NOT NULL,
    variant                 text NOT NULL,
    recommendations         bigint NOT NULL DEFAULT 0,
    degraded                bigint NOT NULL DEFAULT 0,
    impressions             bigint NOT NULL DEFAULT 0,
    attributed_clicks       bigint NOT NULL DEFAULT 0,
    attributed_add_to_carts bigint NOT NULL DEFAULT 0,
    attributed_purchases    bigint NOT NULL DEFAULT 0,
    clicks                  bigint NOT NULL DEFAULT 0,
    likes                   bigint NOT NULL DEFAULT 0,
    dislikes                bigint NOT NULL DEFAULT 0,
    skips                   bigint NOT NULL DEFAULT 0,
    add_to_carts            bigint NOT NULL DEFAULT 0,
    purchases               bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, variant)
);

-- Recommend latency as a histogram per minute (percentiles are not additive; bucket
-- counts are). le_ms is the bucket's upper bound.
CREATE TABLE rollup_latency (
    minute          timestamptz NOT NULL,
    le_ms           real NOT NULL,
    recommendations bigint NOT NULL,
    PRIMARY KEY (minute, le_ms)
);

-- Feedback ingestion: events per minute of arrival.
CREATE TABLE rollup_ingest (
    minute timestamptz PRIMARY KEY,
    events bigint NOT NULL
);

-- Per item and UTC day: exposure and attributed engagement for the catalogue page.
CREATE TABLE rollup_item_daily (
    day                  date NOT NULL,
    item_id              text NOT NULL,
    impressions          bigint NOT NULL DEFAULT 0,
    attributed_clicks    bigint NOT NULL DEFAULT 0,
    attributed_purchases bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, item_id)
);
-- One item's history (the catalogue page's item search).
CREATE INDEX rollup_item_daily_item ON rollup_item_daily (item_id, day);

-- Per item, its totals over the last 1, 7 and 30 UTC days (today included), recomputed
-- from rollup_item_daily every few minutes: summing 30 days of 50,000 items per page view
-- would take a second, reading this takes milliseconds. With the item's primary category,
-- ingestion time and whether it is in the top 20% by popularity (the head of the catalogue)
-- at the time, so the page never joins the wide items table.
CREATE TABLE rollup_item_window (
    days                 smallint NOT NULL,
    item_id              text NOT NULL,
    category             text NOT NULL,
    item_created_at      timestamptz NOT NULL,
    head                 boolean NOT NULL,
    impressions          bigint NOT NULL,
    attributed_clicks    bigint NOT NULL,
    attributed_purchases bigint NOT NULL,
    PRIMARY KEY (days, item_id)
);
CREATE INDEX rollup_item_window_top ON rollup_item_window (days, impressions DESC);

-- Impressions already credited with an attributed event of a type: an impression counts
-- as clicked once however often it was clicked. Pruned once no event can attach any more.
CREATE TABLE rollup_attributed (
    recommendation_id uuid NOT NULL,
    position          smallint NOT NULL,
    type              smallint NOT NULL,
    shown_at          timestamptz NOT NULL,
    PRIMARY KEY (recommendation_id, position, type)
);
CREATE INDEX rollup_attributed_shown_at ON rollup_attributed (shown_at);

-- Distinct active users and sessions over "the last N" windows are not additive over
-- minutes; the last time each one was seen is, and a range count on it is exact. Keys are
-- md5 digests: the dashboard counts people, it never needs to name them.
CREATE TABLE rollup_last_seen (
    kind         char(1) NOT NULL CHECK (kind IN ('u', 's')),
    key          uuid NOT NULL,
    last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX rollup_last_seen_at ON rollup_last_seen (kind, last_seen_at);

-- The catalogue page counts live (available, cold) items: an index-only scan of this,
-- instead of a scan of the wide items table (its rows carry the embeddings).
CREATE INDEX items_live ON items (created_at) INCLUDE (available_from, available_until)
    WHERE deleted_at IS NULL;

-- The refresh reads the events that arrived since its watermark.
CREATE INDEX events_received_at ON events (received_at);
"""

DOWNGRADE = """
DROP INDEX events_received_at;
DROP INDEX items_live;
DROP TABLE rollup_last_seen;
DROP TABLE rollup_attributed;
DROP TABLE rollup_item_window;
DROP TABLE rollup_item_daily;
DROP TABLE rollup_ingest;
DROP TABLE rollup_latency;
DROP TABLE rollup_minute;
DROP TABLE rollup_watermarks;
ALTER TABLE impressions DROP COLUMN inserted_at;
ALTER TABLE recommendations DROP COLUMN inserted_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
