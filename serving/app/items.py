"""UpsertItems: items encoded by the content encoder, stored, and indexed at once;
DeleteItems: items taken down (soft-deleted), here at once and on other replicas at their
next index refresh."""

from __future__ import annotations

from datetime import UTC, datetime

from serving.app.ports import Catalogue, Encoders
from serving.core.domain import Item
from serving.core.index import ItemIndex, StoredItem
from serving.core.validation import validate_item_ids, validate_items


class ItemService:
    def __init__(self, catalogue: Catalogue, encoders: Encoders, index: ItemIndex) -> None:
        self._catalogue = catalogue
        self._encoders = encoders
        self._index = index

    async def upsert_items(self, items: list[Item]) -> int:
        """Insert or replace ``items``; this server's index has them when it answers (other
        replicas within their refresh interval)."""
        validate_items(items)
        embeddings = await self._encoders.encode_texts([item.text() for item in items])
        encoder = self._encoders.content_fingerprint
        await self._catalogue.upsert_items(items, embeddings, encoder)
        now = datetime.now(UTC)
        self._index.upsert(
            StoredItem(item, embedding, now, deleted=False, encoder=encoder)
            for item, embedding in zip(items, embeddings, strict=True)
        )
        return len(items)

    async def delete_items(self, item_ids: list[str]) -> int:
        """Take ``item_ids`` down: this server stops recommending them when it answers,
        other replicas at their next index refresh (the same path as upserts). Their
        events stay (training keeps them); an upsert brings an item back. Returns how many
        were live before; an unknown id is InvalidArgument and nothing is taken down."""
        validate_item_ids(item_ids)
        stored, deleted = await self._catalogue.delete_items(list(dict.fromkeys(item_ids)))
        self._index.upsert(stored)
        return deleted
