"""The catalogue signals cache: requests keep the last signals while a worker refreshes
them, and compute them themselves only when none fit the catalogue."""

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from serving.app.signals_cache import SignalsCache
from serving.core.domain import Item
from serving.core.index import ItemIndex, ItemStatsRow, StoredItem

NOW = datetime(2026, 12, 2, tzinfo=UTC)
T = NOW.timestamp()
HALF_LIVES = (72.0, 336.0)


def stored(item_id: str) -> StoredItem:
    return StoredItem(Item(item_id, item_id), np.ones(384, np.float32), NOW, False)


def stats(item_id: str, popularity: float) -> ItemStatsRow:
    return ItemStatsRow(item_id, popularity, NOW, NOW)


@pytest.fixture
def cache() -> Iterator[SignalsCache]:
    kept = SignalsCache(stale_limit_s=5)
    yield kept
    kept.close()


@pytest.fixture
def index() -> ItemIndex:
    built = ItemIndex()
    built.upsert([stored("a"), stored("b")])
    built.update_stats([stats("a", 1.0), stats("b", 2.0)])
    return built


def test_the_first_request_computes_them(cache: SignalsCache, index: ItemIndex) -> None:
    signals = cache.signals(index, HALF_LIVES, T)
    assert signals.fresh(index, HALF_LIVES, T)
    assert signals.popularity[1] == 1.0 > signals.popularity[0]


def test_new_statistics_are_computed_in_the_worker_while_requests_keep_the_last(
    cache: SignalsCache, index: ItemIndex
) -> None:
    before = cache.signals(index, HALF_LIVES, T)
    index.update_stats([stats("a", 10.0)])
    assert cache.signals(index, HALF_LIVES, T) is before  # kept: not computed here
    cache.wait()
    after = cache.signals(index, HALF_LIVES, T)
    assert after is not before and after.fresh(index, HALF_LIVES, T)
    assert after.popularity[0] == 1.0 > after.popularity[1]


def test_the_next_second_is_computed_in_the_worker(cache: SignalsCache, index: ItemIndex) -> None:
    before = cache.signals(index, HALF_LIVES, T)
    assert cache.signals(index, HALF_LIVES, T + 1) is before
    cache.wait()
    assert cache.signals(index, HALF_LIVES, T + 1).second == int(T + 1)


def test_signals_older_than_the_limit_are_computed_by_the_request(
    cache: SignalsCache, index: ItemIndex
) -> None:
    cache.signals(index, HALF_LIVES, T)
    later = cache.signals(index, HALF_LIVES, T + 5)
    assert later.fresh(index, HALF_LIVES, T + 5)


def test_a_changed_catalogue_is_computed_by_the_request(
    cache: SignalsCache, index: ItemIndex
) -> None:
    cache.signals(index, HALF_LIVES, T)
    index.upsert([stored("c")])
    signals = cache.signals(index, HALF_LIVES, T)
    assert signals.fresh(index, HALF_LIVES, T)
    assert signals.available.tolist() == [True, True, True]  # the new item is there at once


def test_each_pair_of_half_lives_has_its_own(cache: SignalsCache, index: ItemIndex) -> None:
    short = cache.signals(index, (1.0, 1.0), T)
    long = cache.signals(index, HALF_LIVES, T)
    assert short.half_lives == (1.0, 1.0) and long.half_lives == HALF_LIVES
    assert cache.signals(index, (1.0, 1.0), T) is short
