"""A model version's item space through a real PostgreSQL: saved as training exports it,
read back a slice at a time, as an orchestrator keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from serving.adapters.postgres import artifacts
from serving.adapters.postgres.db import migrate, open_pool, start_embedded
from serving.core.itemspace import ItemSpace


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_embedded(tmp_path_factory.mktemp("artifacts"))
    try:
        url = str(server.get_uri())
        migrate(url)
        yield url
    finally:
        server.cleanup()


def _space(version: int, items: int, known: bool) -> ItemSpace:
    rng = np.random.default_rng(version)
    embeddings = rng.normal(size=(items, 8)).astype(np.float32)
    embeddings[::3] = 0  # rows training left at zero: no learned embedding
    return ItemSpace(
        version=version,
        max_len=5,
        vocabulary=tuple(f"i{n}" for n in range(items)),
        item_embeddings=embeddings,
        projection_weight=rng.normal(size=(8, 6)).astype(np.float32),
        projection_bias=rng.normal(size=8).astype(np.float32),
        known_vectors=rng.normal(size=(items, 8)).astype(np.float32) if known else None,
    )


def _round_trip(url: str, space: ItemSpace, slice_bytes: int) -> ItemSpace | None:
    async def run() -> ItemSpace | None:
        pool = await open_pool(url, 1)
        try:
            await artifacts.save_item_space(pool, space, {})
            return await artifacts.load_item_space(pool, space.version, slice_bytes)
        finally:
            await pool.close()

    return asyncio.run(run())


# Slices of a few bytes, of a few rows, of the whole matrix, and more than an int4 holds.
@pytest.mark.parametrize(
    ("version", "slice_bytes"), [(3, 7), (4, 1000), (5, artifacts.BLOB_SLICE), (6, 2**40)]
)
def test_a_version_with_its_items_vectors_reads_back_as_served(
    database: str, version: int, slice_bytes: int
) -> None:
    space = _space(version, 300, known=True)
    loaded = _round_trip(database, space, slice_bytes)
    assert loaded is not None
    expected = space.served()
    assert loaded.item_embeddings is None  # only the mask of which items are learned
    assert expected.learned_mask is not None and loaded.learned_mask is not None
    np.testing.assert_array_equal(loaded.learned_mask, expected.learned_mask)
    assert loaded.known_vectors is not None and space.known_vectors is not None
    np.testing.assert_array_equal(loaded.known_vectors, space.known_vectors)
    np.testing.assert_array_equal(loaded.projection_weight, space.projection_weight)
    np.testing.assert_array_equal(loaded.projection_bias, space.projection_bias)
    assert loaded.vocabulary == space.vocabulary and loaded.max_len == space.max_len


def test_a_version_from_before_known_vectors_keeps_its_embeddings(database: str) -> None:
    space = _space(2, 50, known=False)
    loaded = _round_trip(database, space, 64)
    assert loaded is not None and loaded.known_vectors is None
    assert loaded.item_embeddings is not None and space.item_embeddings is not None
    np.testing.assert_array_equal(loaded.item_embeddings, space.item_embeddings)


def test_a_version_never_saved_is_none(database: str) -> None:
    async def run() -> ItemSpace | None:
        pool = await open_pool(database, 1)
        try:
            return await artifacts.load_item_space(pool, 12345)
        finally:
            await pool.close()

    assert asyncio.run(run()) is None
