"""Dashboard queries at scale: every page's reads against 10 million events.

    python -m benchmarks.dashboard [--events 10000000] [--items 50000]
                                   [--recommendations 1000000] [--days 30] [--state-dir DIR]

It starts an embedded PostgreSQL under ``--state-dir`` (kept, so a second run skips the
load), migrates it, bulk-loads with COPY ``--recommendations`` recommendations of 10
impressions each and ``--events`` feedback events spread over ``--days`` days (items drawn
from a Zipf law; a third of the events are clicks, add-to-carts and purchases on logged
impressions), folds them into the rollups with the same refresh the servers run, then
times each page's queries (the functions the pages call) after one warm-up read. Target:
every page under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from dashboard.queries import catalogue, embeddings, engagement, experiments, parameters, system
from dashboard.queries import users as user_queries
from serving.adapters.postgres import rollups
from serving.adapters.postgres.db import migrate, open_pool, start_embedded
from serving.adapters.postgres.partitions import ensure_event_partitions, month_start
from serving.core.domain import EventType

TARGET_MS = 300.0
IMPRESSIONS_PER_LIST = 10
USERS = 200_000
CATEGORIES = 24
CHUNK = 1_000_000
REPEATS = 5
RNG = np.random.default_rng(7)
WRITE_DELAY = pd.Timedelta(milliseconds=200)  # impressions are written in batches

# Event mix: engagement on logged impressions (attributable) and the rest.
ATTRIBUTABLE = {EventType.CLICK: 0.25, EventType.ADD_TO_CART: 0.05, EventType.PURCHASE: 0.03}
OTHER = {EventType.LIKE: 0.2, EventType.DISLIKE: 0.12, EventType.SKIP: 0.35}

ITEMS_SQL = (
    """
INSERT INTO items (item_id, title, categories, embedding, created_at)
SELECT format('i%%s', lpad(g::text, 6, '0')), 'Item ' || g,
       ARRAY['category-' || (g %% %(categories)s)],
       -- correlated on g, so every item gets its own random vector
       (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 384) WHERE g >= 0),
       now() - random() * interval '120 days'
FROM generate_series(0, %(items)s - 1) AS g
""",
    """
INSERT INTO item_stats (item_id, popularity)
SELECT item_id, 1000.0 / (row_number() OVER (ORDER BY item_id) + 1) FROM items
""",
    """
INSERT INTO parameter_versions (parameters, changed_by, reason, created_at)
SELECT jsonb_build_object('popularity_weight', 0.1 + g / 100.0), 'bench', 'tuning',
       now() - make_interval(hours => 24 * 30 - g * 7)
FROM generate_series(0, 100) AS g
""",
    """
INSERT INTO experiments (name, status, changed_by, reason, created_at)
VALUES ('bench', 'running', 'bench', 'benchmark', now() - interval '7 days')
""",
    """
INSERT INTO variants (experiment, name, position, share)
VALUES ('bench', 'control', 0, 0.5), ('bench', 'treatment', 1, 0.5)
""",
)


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: list[str], data: pd.DataFrame
) -> None:
    buffer = io.StringIO()
    data.to_csv(buffer, header=False, index=False)
    with conn.cursor().copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"  # fixed names only
    ) as copy:
        copy.write(buffer.getvalue())


def _zipf_items(items: int, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, items + 1) ** 0.9
    return RNG.choice(items, size=size, p=weights / weights.sum())


def _item_ids(indices: np.ndarray) -> pd.Series:
    return pd.Series(indices).map(lambda i: f"i{i:06d}")


def _uuid(indices: np.ndarray) -> pd.Series:
    return pd.Series(indices).map(lambda i: f"00000000-0000-4000-8000-{i:012x}")


def load(url: str, args: argparse.Namespace) -> None:
    """Items, recommendations, impressions and events, spread over ``args.days`` days."""
    now = datetime.now(UTC)
    start = now - timedelta(days=args.days)
    span_s = args.days * 86400.0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit TO off")
        started = time.perf_counter()
        for statement in ITEMS_SQL:
            conn.execute(statement, {"items": args.items, "categories": CATEGORIES})
        print(f"  items: {args.items:,} in {time.perf_counter() - started:.0f}s", flush=True)

        lists = args.recommendations
        offsets = np.sort(RNG.uniform(0, span_s, lists))
        shown_at = pd.to_datetime(start) + pd.to_timedelta(offsets, unit="s")
        users = RNG.integers(0, USERS, lists)
        shown_items = _zipf_items(args.items, lists * IMPRESSIONS_PER_LIST)
        seven_days_ago = now - timedelta(days=7)
        started = time.perf_counter()
        for lo in range(0, lists, CHUNK // IMPRESSIONS_PER_LIST):
            hi = min(lists, lo + CHUNK // IMPRESSIONS_PER_LIST)
            idx = np.arange(lo, hi)
            ids = _uuid(idx)
            recent = shown_at[lo:hi] >= seven_days_ago
            variant = np.where(recent, np.where(idx % 2 == 0, "control", "treatment"), "control")
            recs = pd.DataFrame(
                {
                    "recommendation_id": ids,
                    "user_id": pd.Series(users[lo:hi]).map(lambda u: f"u{u}"),
                    "session_id": pd.Series(users[lo:hi] // 3 + idx % 7).map(lambda s: f"s{s}"),
                    "variant": variant,
                    "parameter_version": 1,
                    "model_version": "1",
                    "latency_ms": RNG.lognormal(2.3, 0.5, hi - lo).round(2),
                    "degraded": RNG.random(hi - lo) < 0.01,
                    "created_at": shown_at[lo:hi],
                    "inserted_at": shown_at[lo:hi] + WRITE_DELAY,
                }
            )
            _copy(conn, "recommendations", list(recs.columns), recs)
            impressions = pd.DataFrame(
                {
                    "recommendation_id": np.repeat(ids.to_numpy(), IMPRESSIONS_PER_LIST),
                    "position": np.tile(np.arange(IMPRESSIONS_PER_LIST), hi - lo),
                    "item_id": _item_ids(
                        shown_items[lo * IMPRESSIONS_PER_LIST : hi * IMPRESSIONS_PER_LIST]
                    ),
                    "score": 0.5,
                    "created_at": np.repeat(shown_at[lo:hi], IMPRESSIONS_PER_LIST),
                    "inserted_at": np.repeat(shown_at[lo:hi] + WRITE_DELAY, IMPRESSIONS_PER_LIST),
                }
            )
            _copy(conn, "impressions", list(impressions.columns), impressions)
        print(
            f"  recommendations: {lists:,}, impressions: {lists * IMPRESSIONS_PER_LIST:,}"
            f" in {time.perf_counter() - started:.0f}s",
            flush=True,
        )

        started = time.perf_counter()
        kinds = list(ATTRIBUTABLE) + list(OTHER)
        weights = np.array(list(ATTRIBUTABLE.values()) + list(OTHER.values()))
        for lo in range(0, args.events, CHUNK):
            size = min(CHUNK, args.events - lo)
            types = np.array(kinds)[RNG.choice(len(kinds), size, p=weights / weights.sum())]
            on_list = np.isin(types, list(ATTRIBUTABLE))
            rec = RNG.integers(0, lists, size)
            position = RNG.integers(0, IMPRESSIONS_PER_LIST, size)
            item = np.where(
                on_list,
                shown_items[rec * IMPRESSIONS_PER_LIST + position],
                _zipf_items(args.items, size),
            )
            occurred = shown_at[rec] + pd.to_timedelta(RNG.uniform(1, 1200, size), unit="s")
            events = pd.DataFrame(
                {
                    "event_id": [f"e{n}" for n in range(lo, lo + size)],
                    "user_id": pd.Series(users[rec]).map(lambda u: f"u{u}"),
                    "item_id": _item_ids(item),
                    "type": types.astype(int),
                    "recommendation_id": _uuid(rec).where(on_list, None),
                    "occurred_at": occurred,
                    "received_at": occurred + pd.Timedelta(milliseconds=50),
                }
            )
            _copy(conn, "events", list(events.columns), events)
            print(f"  events: {lo + size:,}", flush=True)
        print(f"  events loaded in {time.perf_counter() - started:.0f}s", flush=True)
        conn.execute("VACUUM ANALYZE")


async def fold(url: str) -> float:
    """Fold everything into the rollups (the backfill a first refresh does); seconds."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        started = time.perf_counter()
        passes = await rollups.catch_up(conn, lag=timedelta(0), max_span=timedelta(hours=6))
        print(f"  {len(passes)} passes", flush=True)
        elapsed = time.perf_counter() - started
        windows = time.perf_counter()
        await rollups.refresh_item_windows(conn, timedelta(0))
        print(
            f"per-item 1/7/30-day windows recomputed in {time.perf_counter() - windows:.1f}s"
            f" (the servers wait {rollups.ITEM_WINDOWS_DUTY} times as long, at most"
            f" {rollups.ITEM_WINDOWS_EVERY.total_seconds() / 60:.0f} min, before the next)",
            flush=True,
        )
        return elapsed
    finally:
        await conn.close()


async def steady_pass(url: str) -> float:
    """One ordinary refresh pass after a minute of traffic (about 6,000 events); ms."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO events (event_id, user_id, item_id, type, occurred_at)
            SELECT 'steady-' || g || '-' || now(), 'u' || (g % 5000),
                   format('i%s', lpad((g % 1000)::text, 6, '0')), 1 + g % 6, now()
            FROM generate_series(1, 6000) AS g
            """
        )
    conn_async = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        started = time.perf_counter()
        await rollups.catch_up(conn_async, lag=timedelta(0))
        return (time.perf_counter() - started) * 1000
    finally:
        await conn_async.close()


def pages(conn: psycopg.Connection[Any]) -> dict[str, Callable[[], object]]:
    """Each page's reads for one view (the same calls the pages make)."""
    running = experiments.experiments(conn)[0]
    names = [v["name"] for v in running["variants"]]
    item_id = catalogue.top_items(conn, 7, 1)["item_id"][0]
    index = embeddings.load(conn)

    def overview(window_s: int) -> Callable[[], object]:
        def read() -> object:
            data = engagement.series(conn, window_s)
            return (
                engagement.totals(conn, window_s, data),
                engagement.parameter_changes(conn, window_s),
                engagement.freshness(conn),
            )

        return read

    def catalogue_page(days: int) -> Callable[[], object]:
        def read() -> object:
            return (
                catalogue.summary(conn, days),
                catalogue.top_items(conn, days),
                catalogue.category_mix(conn, days),
            )

        return read

    def item_page() -> object:
        return (
            catalogue.search(conn, index, "Item 123"),
            catalogue.item(conn, item_id),
            catalogue.item_days(conn, item_id, 30),
            index.nearest(item_id, 10),
        )

    views: dict[str, Callable[[], object]] = {
        f"Overview, {label}": overview(seconds) for label, seconds in engagement.WINDOWS.items()
    }
    views["Experiments"] = lambda: (
        experiments.experiments(conn),
        experiments.variant_traffic(conn, names, running["created_at"], running["stopped_at"]),
    )
    views |= {
        f"Catalogue, {label}": catalogue_page(days) for label, days in catalogue.WINDOWS.items()
    }
    views["Catalogue, item search + nearest"] = item_page
    views["Users"] = lambda: (
        user_queries.recent_events(conn, "u42"),
        user_queries.state(conn, "u42"),
    )
    views["System, last 24 h"] = lambda: (
        system.latency(conn, 24 * 3600),
        system.ingestion(conn, 24 * 3600),
        system.database_size(conn),
    )
    views["Parameters"] = lambda: parameters.history(conn)
    return views


def measure(read: Callable[[], object]) -> tuple[float, float]:
    """Median and max of ``REPEATS`` timed reads after one warm-up, in ms."""
    read()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--recommendations", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--state-dir", type=Path, default=Path(".state/bench-dashboard"))
    args = parser.parse_args()

    server = start_embedded(args.state_dir)
    try:
        url = str(server.get_uri())
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM items").fetchone()
            loaded = row is not None and row[0] > 0
        if loaded:
            print("data already loaded (delete --state-dir to reload)")
        else:
            print("loading:", flush=True)

            async def partitions() -> None:
                pool = await open_pool(url, 2)
                first = month_start(datetime.now(UTC) - timedelta(days=args.days))
                await ensure_event_partitions(pool, first, months=args.days // 28 + 3)
                await pool.close()

            asyncio.run(partitions())
            load(url, args)
            print(f"rollup backfill: {asyncio.run(fold(url)):.0f}s", flush=True)
        print(
            f"steady-state refresh pass (6,000 new events): {asyncio.run(steady_pass(url)):.0f} ms"
        )

        with psycopg.connect(url, autocommit=True) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM impressions),"
                " (SELECT count(*) FROM items)"
            ).fetchone()
            assert counts is not None
            print(f"events {counts[0]:,}, impressions {counts[1]:,}, items {counts[2]:,}")
            started = time.perf_counter()
            index = embeddings.load(conn)
            load_s = time.perf_counter() - started
            print(
                f"content index: {len(index.item_ids):,} embeddings loaded in {load_s:.2f}s"
                " (once per 10 minutes per dashboard process)"
            )
            print(f"\n| page | median ms | max ms | under {TARGET_MS:.0f} ms |")
            print("|---|---:|---:|:---:|")
            worst = 0.0
            for name, read in pages(conn).items():
                median, slowest = measure(read)
                worst = max(worst, slowest)
                verdict = "yes" if slowest < TARGET_MS else "NO"
                print(f"| {name} | {median:.1f} | {slowest:.1f} | {verdict} |")
        print(f"\nslowest page view: {worst:.1f} ms")
        print("reproduce: python -m benchmarks.dashboard " + " ".join(sys.argv[1:]))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
