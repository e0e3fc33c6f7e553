"""The events logged by the platform (PostgreSQL) as a training Dataset.

The catalogue comes with its stored MiniLM embeddings, so training needs no encoder
and sees exactly the vectors the orchestrator's index holds. Deleted items stay in the
vocabulary when users interacted with them (their history still informs the state).
Anonymous sessions are left out: they are merged into users when they sign in.
"""

from __future__ import annotations

from collections import defaultdict

from psycopg_pool import AsyncConnectionPool

from serving.adapters.postgres import items as item_store
from serving.training.datasets import Dataset, build_dataset

EVENTS = (
    "SELECT user_id, item_id, type, extract(epoch FROM occurred_at) FROM events"
    " WHERE user_id <> '' ORDER BY user_id, occurred_at, received_at"
)


async def load_logged_events(
    pool: AsyncConnectionPool, name: str = "logged-events", encoder: str | None = None
) -> Dataset:
    """Every user's events, oldest first, over the stored catalogue. The stored embeddings
    come along when every one of them is of the content encoder of fingerprint ``encoder``
    (any when None); otherwise none do, and training embeds the texts itself."""
    stored = await item_store.items_changed_since(pool, None)
    texts = {s.item.item_id: s.item.text() for s in stored}
    # "" is a row from before encoders were recorded (the bundled MiniLM's).
    usable = encoder is None or all(s.encoder in (encoder, "") for s in stored)
    content = {s.item.item_id: s.embedding for s in stored} if usable else None
    interactions: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(EVENTS)
        async for user, item, kind, when in cur:
            if item in texts:
                interactions[user].append((float(when), item, int(kind)))
    return build_dataset(name, interactions, texts, content=content)
