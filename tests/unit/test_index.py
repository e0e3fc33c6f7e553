import dataclasses
import gc
import weakref
from datetime import UTC, datetime

import numpy as np

from serving.core.domain import EventType, Item
from serving.core.index import ItemIndex, ItemStatsRow, StoredItem
from serving.core.itemspace import ItemSpace

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def stored(item_id: str, value: float, deleted: bool = False) -> StoredItem:
    return StoredItem(Item(item_id, item_id), np.full(384, value, np.float32), NOW, deleted)


def space() -> ItemSpace:
    return ItemSpace(
        version=1,
        max_len=5,
        vocabulary=("a",),
        item_embeddings=np.array([[10.0, 0.0]], np.float32),
        projection_weight=np.ones((2, 384), np.float32),
        projection_bias=np.zeros(2, np.float32),
    )


HELD = 2**-8
"""Relative tolerance of content as the index holds it (bfloat16)."""


def flat_content(rows: np.ndarray) -> np.ndarray:
    return np.full((len(rows), 384), 0.01, np.float32)


def test_item_vectors_add_the_learned_embedding_to_projected_content():
    vectors, learned = space().vectors(["a", "new"], flat_content)
    assert np.allclose(vectors, [[13.84, 3.84], [3.84, 3.84]])
    assert learned.tolist() == [True, False]


def test_a_version_holding_its_items_vectors_places_them_and_takes_their_tokens():
    """Known items sit where the version holds them (their content as trained), even after
    a text edit; unknown items by their current text. Their history positions send tokens
    alone, the unknown ones content, in order."""
    known = dataclasses.replace(space(), known_vectors=np.array([[1.0, 2.0]], np.float32))
    vectors, learned = known.vectors(["a", "new"], flat_content)
    assert np.allclose(vectors, [[1.0, 2.0], [3.84, 3.84]])
    assert learned.tolist() == [True, False]
    index = ItemIndex()
    index.upsert([stored("a", 0.01), stored("new", 0.02), stored("newer", 0.03)])
    click = EventType.CLICK
    history = [("new", click), ("a", click), ("newer", click), ("gone", click)]
    tokens, types, content, pad = index.encoder_inputs(known, history)
    assert (tokens.tolist(), types.tolist(), pad) == ([0, 0, 1, 0, 0], [0, 1, 1, 1, 1], 1)
    assert np.allclose(content[:, 0], [0.02, 0.03, 0.0], rtol=HELD) and content.shape == (3, 384)
    tokens, types, content, pad = index.encoder_inputs(space(), history)
    assert tokens.tolist() == [0, 0, 1, 0, 0] and content.shape == (5, 384)
    assert np.allclose(content[:, 0], [0.0, 0.02, 0.01, 0.03, 0.0], rtol=HELD)


def test_a_served_space_keeps_which_items_are_learned_not_their_embeddings():
    """What an orchestrator keeps of a version holding its items' vectors: the same
    vectors and tokens without the learned embeddings."""
    vocabulary = ("a", "b", "untrained")
    full = ItemSpace(
        version=2,
        max_len=5,
        vocabulary=vocabulary,
        item_embeddings=np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32),
        projection_weight=np.ones((2, 384), np.float32),
        projection_bias=np.zeros(2, np.float32),
        known_vectors=np.array([[5.0, 1.0], [1.0, 5.0], [0.0, 0.0]], np.float32),
    )
    served = full.served()
    assert served.item_embeddings is None
    assert served.learned_mask is not None and served.learned_mask.tolist() == [True, True, False]
    ids = ["b", "new", "untrained", "a"]
    pairs = zip(served.vectors(ids, flat_content), full.vectors(ids, flat_content), strict=True)
    assert all(np.array_equal(got, expected) for got, expected in pairs)
    assert served.input_tokens(ids).tolist() == full.input_tokens(ids).tolist() == [2, 0, 0, 1]
    older = space()  # a version without its items' vectors keeps its embeddings
    assert older.served() is older


def test_the_index_keeps_only_the_vectors_of_known_items_it_does_not_hold():
    """Once placed, a learned item's vector is the index's (a million items' vectors are not
    held twice): its space keeps those of the vocabulary items the catalogue lacks, and
    the index places each item as the full space would, after a text edit or when the
    catalogue gains a known item later."""
    full = ItemSpace(
        version=2,
        max_len=5,
        vocabulary=("a", "b", "later", "untrained"),
        item_embeddings=np.array([[1, 0], [0, 2], [3, 0], [0, 0]], np.float32),
        projection_weight=np.ones((2, 384), np.float32),
        projection_bias=np.zeros(2, np.float32),
        known_vectors=np.array([[5, 1], [1, 5], [7, 7], [0, 0]], np.float32),
    ).served()
    index = ItemIndex()
    index.upsert([stored("a", 0.01), stored("b", 0.02), stored("new", 0.03)])
    index.set_space(full)
    kept = index.space
    assert kept is index.arrays.space and kept is not None and kept.version == 2
    assert kept.known_vectors is not None and kept.known_vectors.tolist() == [[7.0, 7.0]]
    assert kept.vocabulary == ("later",) and kept.input_tokens(["later", "b"]).tolist() == [3, 0]
    click = EventType.CLICK
    history = [("b", click), ("later", click), ("new", click), ("a", click)]
    assert index.encoder_inputs(kept, history)[0].tolist() == [0, 2, 3, 0, 1]
    index.upsert([stored("a", 0.5), stored("later", 0.04), stored("newest", 0.05)])
    ids = list(index.arrays.ids)
    assert ids == ["a", "b", "new", "later", "newest"]
    expected, learned = full.vectors(ids, index.arrays.content_of)
    np.testing.assert_array_equal(index.arrays.vectors, expected)
    assert index.arrays.learned.tolist() == learned.tolist() == [True, True, False, True, False]
    assert index.arrays.tokens is not None
    assert index.arrays.tokens.tolist() == full.input_tokens(ids).tolist() == [1, 2, 0, 3, 0]
    assert index.encoder_inputs(kept, history)[0].tolist() == [0, 2, 3, 0, 1]


def test_upsert_adds_replaces_and_keeps_vectors_current():
    index = ItemIndex()
    index.upsert([stored("a", 0.01), stored("b", 0.02)])
    assert index.arrays.vectors.shape == (2, 0)
    index.set_space(space())
    assert np.allclose(index.arrays.vectors[:, 0], [13.84, 7.68], rtol=HELD)
    index.upsert([stored("b", 0.0), stored("c", 0.01, deleted=True)])
    assert index.arrays.ids == ("a", "b", "c")
    assert np.allclose(index.arrays.vectors[:, 1], [3.84, 0.0, 3.84], rtol=HELD)
    assert index.arrays.live.tolist() == [True, True, False]
    assert len(index.popularity) == 3


def test_a_space_placed_in_advance_is_used_unless_the_index_changed_since():
    """``placed_in`` runs in a worker thread while requests are served; an upsert in the
    meantime makes ``set_space`` place the items again rather than lose the new one."""
    index = ItemIndex()
    index.upsert([stored("a", 0.01)])
    placement = index.placed_in(space())
    assert index.space is None and index.arrays.vectors.shape == (1, 0)  # nothing changed
    index.set_space(space(), placement)
    assert index.arrays is placement.arrays
    stale = index.placed_in(space())
    index.upsert([stored("b", 0.02)])
    index.set_space(space(), stale)
    assert index.arrays is not stale.arrays and index.arrays.ids == ("a", "b")
    assert np.allclose(index.arrays.vectors[:, 0], [13.84, 7.68], rtol=HELD)


def test_stats_update_popularity_by_item():
    index = ItemIndex()
    index.upsert([stored("a", 0.0), stored("b", 0.0)])
    index.update_stats([ItemStatsRow("b", 4.0, NOW, NOW), ItemStatsRow("zz", 1.0, NOW, NOW)])
    assert index.popularity.tolist() == [0.0, 4.0]
    assert index.popularity_at[1] == NOW.timestamp()


def test_impressions_are_counted_as_items_are_shown():
    index = ItemIndex()
    index.upsert([stored("a", 0.0), stored("b", 0.0)])
    index.count_impressions(np.array([1, 1, 0]))
    assert index.impressions.tolist() == [1.0, 2.0]


def test_items_are_found_by_category():
    index = ItemIndex()
    index.upsert(
        [
            StoredItem(Item("a", "a", categories=("jazz", "live")), np.zeros(384), NOW, False),
            StoredItem(Item("b", "b", categories=("rock",)), np.zeros(384), NOW, False),
        ]
    )
    assert index.in_categories(["live"]).tolist() == [True, False]
    assert index.in_categories(["rock", "jazz"]).tolist() == [True, True]
    assert index.in_categories(["none"]).tolist() == [False, False]
    index.upsert([StoredItem(Item("c", "c", categories=("rock",)), np.zeros(384), NOW, False)])
    assert index.in_categories(["rock"]).tolist() == [False, True, True]


def test_a_replaced_model_space_is_not_kept_alive():
    """After the index follows a new version, nothing it keeps holds the old space (at a
    million items, its vectors are 256 MB): the category lists once held the arrays they
    were built from, and with them the space, until a request next used a category rule."""
    index = ItemIndex()
    index.upsert([StoredItem(Item("a", "a", categories=("jazz",)), np.zeros(384), NOW, False)])
    old = space()
    index.set_space(old)
    assert index.in_categories(["jazz"]).tolist() == [True]
    replaced = weakref.ref(old)
    del old
    index.set_space(dataclasses.replace(space(), version=2))
    gc.collect()
    assert replaced() is None
    assert index.in_categories(["jazz"]).tolist() == [True]


def test_availability_windows_hide_items_outside_them():
    index = ItemIndex()
    t = NOW.timestamp()
    index.upsert(
        [
            StoredItem(Item("open", "o"), np.zeros(384), NOW, False),
            StoredItem(Item("later", "l", available_from=NOW), np.zeros(384), NOW, False),
            StoredItem(Item("over", "v", available_until=NOW), np.zeros(384), NOW, False),
            StoredItem(Item("gone", "g"), np.zeros(384), NOW, True),
        ]
    )
    assert index.arrays.available(t - 1).tolist() == [True, False, True, False]
    assert index.arrays.available(t).tolist() == [True, True, False, False]


def test_adding_items_leaves_a_snapshot_a_request_holds_as_it_was():
    """New items are written into spare rows in place (no copy of a million items per
    write); a snapshot taken before keeps its rows, and an edit still copies."""
    index = ItemIndex()
    index.reserve(10)
    index.upsert([stored("a", 0.01)])
    index.set_space(space())
    index.upsert([stored("b", 0.02)])
    before = index.arrays
    index.upsert([stored("c", 0.03)])
    after = index.arrays
    assert after.content.base is before.content.base  # added in place
    assert after.vectors.base is before.vectors.base
    assert before.ids == ("a", "b") and len(before.content) == len(before.vectors) == 2
    assert after.ids == ("a", "b", "c")
    assert np.allclose(after.content_of([2])[0, 0], 0.03, rtol=HELD)
    index.upsert([stored("b", 0.0, deleted=True)])
    assert index.arrays.content.base is not after.content.base  # an edit copies
    assert after.live.tolist() == [True, True, True]
    assert index.arrays.live.tolist() == [True, False, True]
    assert np.allclose(after.content_of([1])[0, 0], 0.02, rtol=HELD)
    assert np.allclose(index.arrays.vectors[:, 1], [3.84, 0.0, 11.52], rtol=HELD)
