"""The FAISS retriever against exact search on the same arrays: recall with the serving
filters on, items written after the build found at once, stale entries never served,
rebuilds on growth and on a new model space, exact search below the threshold; the same
for free-text queries through the content index."""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from benchmarks.synthetic import synthetic_catalogue, synthetic_index
from serving.adapters import vectorsearch
from serving.adapters.vectorsearch import BuiltIndex, FaissRetriever
from serving.app.signals_cache import SignalsCache
from serving.core.domain import Item
from serving.core.index import IndexArrays, ItemIndex, StoredItem
from serving.core.newitems import NewItems, unit_rows
from serving.core.ranking.retrieve import MatrixProduct

ITEMS, DIM, CONTENT = 20_000, 32, 8
K = 300


@pytest.fixture(scope="module")
def catalogue() -> tuple[ItemIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    synthetic = synthetic_catalogue(ITEMS, DIM, rng)
    return synthetic_index(synthetic, CONTENT, rng), synthetic.users(60, rng), synthetic.categories


def _retriever(**options: object) -> FaissRetriever:
    """Through the index at this test's sizes (exact over at most 200 allowed items)."""
    return FaissRetriever(exact_below=1000, exact_allowed=200, background=False, **options)  # type: ignore[arg-type]


def _past_cooldown(monkeypatch: pytest.MonkeyPatch, built: BuiltIndex) -> None:
    """The clock stopped where ``built``'s cool-down ends."""
    at = built.finished + vectorsearch.REBUILD_COOLDOWN * built.seconds
    monkeypatch.setattr(vectorsearch.time, "monotonic", lambda: at)


def _recall(found: np.ndarray, exact: np.ndarray, at: int = 100) -> float:
    return len(np.intersect1d(found[:at], exact[:at])) / min(at, len(exact))


@pytest.mark.parametrize(
    "rule", ["none", "available", "category rule", "half the categories out", "one tiny category"]
)
def test_recall_at_100_against_exact_search_with_the_filters_on(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray], rule: str
) -> None:
    index, users, categories = catalogue
    rng = np.random.default_rng(1)
    retriever = _retriever()
    recalls = []
    for q, user in enumerate(users):
        allowed = np.ones(ITEMS, bool)
        if rule != "none":
            allowed &= rng.random(ITEMS) >= 0.1
            allowed[rng.choice(ITEMS, 50, replace=False)] = False
        if rule == "category rule":
            allowed &= categories == q % 20
        if rule == "half the categories out":
            allowed &= (categories + q) % 20 < 10
        if rule == "one tiny category":
            allowed &= (categories == q % 20) & (np.arange(ITEMS) % 10 == 0)  # ~100 items
        exact = MatrixProduct().retrieve(index.arrays, user, allowed, K).candidates
        exact = exact[allowed[exact]]  # it pads a short pool with disallowed items
        found = retriever.retrieve(index.arrays, user, allowed, K).candidates
        assert allowed[found].all(), "a disallowed item was retrieved"
        recalls.append(_recall(found, exact))
    assert retriever.built is not None
    assert np.mean(recalls) >= 0.98, f"recall@100 {np.mean(recalls):.3f} ({rule})"


def _stored(item_id: str, content: np.ndarray) -> StoredItem:
    return StoredItem(Item(item_id, item_id), content.astype(np.float32), datetime.now(UTC), False)


def _every_item(arrays: IndexArrays) -> list[StoredItem]:
    """Every item of ``arrays`` with its content, to upsert into another index."""
    return [_stored(i, c) for i, c in zip(arrays.ids, arrays.content_float32, strict=True)]


def test_an_item_written_after_the_build_is_retrieved_at_once_and_stale_entries_never(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    base, users, _ = catalogue
    user = users[0]
    # A space that knows one more item, learned to sit right on the user's direction.
    space = base.space
    assert space is not None
    extra = (20 * user / np.linalg.norm(user)).astype(np.float32)
    wider = replace(
        space,
        vocabulary=(*space.vocabulary, "late"),
        item_embeddings=np.vstack([space.item_embeddings, extra]),
        projection_weight=np.eye(DIM, CONTENT, dtype=np.float32),
    )
    index = ItemIndex(CONTENT)
    index.set_space(wider)
    index.upsert(_every_item(base.arrays))
    retriever = _retriever(rebuild_after=0.5)
    everything = np.ones(len(index), bool)
    before = retriever.retrieve(index.arrays, user, everything, K).candidates
    built = retriever.built
    assert built is not None
    best = index.arrays.ids[before[0]]

    # The late item arrives; the best item's new text moves it far from the user.
    away = -50 * np.sign(user[0]) * np.eye(CONTENT)[0]
    index.upsert([_stored("late", np.zeros(CONTENT)), _stored(best, away)])
    allowed = np.ones(len(index), bool)
    after = retriever.retrieve(index.arrays, user, allowed, K)
    assert retriever.built is built, "two rows must not rebuild the index"
    assert index.arrays.ids[after.candidates[0]] == "late"
    exact = MatrixProduct().retrieve(index.arrays, user, allowed, K)
    assert best not in {index.arrays.ids[p] for p in exact.candidates}
    assert best not in {index.arrays.ids[p] for p in after.candidates}, "a stale entry served"
    moved = index.position(best)
    assert moved is not None
    assert after.scores is not None and exact.scores is not None
    np.testing.assert_allclose(
        after.scores(np.array([moved])), exact.scores(np.array([moved])), rtol=1e-5
    )


def test_a_rebuild_held_back_by_the_cool_down_happens_when_it_ends_without_a_request(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    """After a bulk load nothing asks again: the rebuild the cool-down held back starts on
    its own when the cool-down ends."""
    base, users, _ = catalogue
    index = ItemIndex(CONTENT)
    assert base.space is not None
    index.set_space(base.space)
    index.upsert(_every_item(base.arrays))
    cooldown = 20.0  # twenty times the first build's duration (a fraction of a second)
    retriever = FaissRetriever(exact_below=1000, rebuild_cooldown=cooldown)
    allowed = np.ones(len(index), bool)
    retriever.prepare(index.arrays)
    retriever.wait_until_built(60)
    first = retriever.built
    assert first is not None
    index.upsert(_stored(i, base.arrays.content_of([0])[0]) for i in base.arrays.ids[:2000])
    retriever.prepare(index.arrays)  # 10% written: due, but inside the cool-down
    assert retriever.built is first
    deadline = first.finished + cooldown * first.seconds + 30
    while retriever.built is first and vectorsearch.time.monotonic() < deadline:
        vectorsearch.time.sleep(0.05)
        retriever.wait_until_built(60)
    assert retriever.built is not first
    assert retriever.built is not None and retriever.built.index.ntotal == len(index)
    again = retriever.retrieve(index.arrays, users[0], allowed, K).candidates
    exact = MatrixProduct().retrieve(index.arrays, users[0], allowed, K).candidates
    assert _recall(again, exact) >= 0.95


def test_the_index_is_rebuilt_once_enough_rows_were_written_since(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, users, _ = catalogue
    index = ItemIndex(CONTENT)
    assert base.space is not None
    index.set_space(base.space)
    arrays = base.arrays
    index.upsert(_every_item(arrays))
    retriever = _retriever(rebuild_after=0.05)
    allowed = np.ones(len(index), bool)
    retriever.retrieve(index.arrays, users[0], allowed, K)
    first = retriever.built
    assert first is not None
    _past_cooldown(monkeypatch, first)
    index.upsert(_stored(i, arrays.content_of([0])[0]) for i in arrays.ids[:500])  # 2.5%
    retriever.retrieve(index.arrays, users[0], allowed, K)
    assert retriever.built is first
    index.upsert(_stored(i, arrays.content_of([0])[0]) for i in arrays.ids[500:1500])  # 7.5%
    retriever.retrieve(index.arrays, users[0], allowed, K)
    assert retriever.built is not first
    # The next waits until ten times the last build's duration has passed.
    second = retriever.built
    assert second is not None
    index.upsert(_stored(i, arrays.content_of([1])[0]) for i in arrays.ids[:1500])
    retriever.retrieve(index.arrays, users[0], allowed, K)
    assert retriever.built is second
    monkeypatch.setattr(
        vectorsearch.time, "monotonic", lambda: second.finished + 10 * second.seconds
    )
    retriever.retrieve(index.arrays, users[0], allowed, K)
    assert retriever.built is not second
    again = retriever.retrieve(index.arrays, users[1], allowed, K).candidates
    exact = MatrixProduct().retrieve(index.arrays, users[1], allowed, K).candidates
    assert _recall(again, exact) >= 0.95


def test_a_new_model_space_is_searched_exactly_until_its_index_is_built(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    base, users, _ = catalogue
    retriever = FaissRetriever(exact_below=1000, background=True)
    allowed = np.ones(ITEMS, bool)
    first = retriever.retrieve(base.arrays, users[0], allowed, K).candidates
    exact = MatrixProduct().retrieve(base.arrays, users[0], allowed, K).candidates
    np.testing.assert_array_equal(first, exact)  # nothing built yet: exact
    retriever.wait_until_built(60)
    assert retriever.built is not None and retriever.built.key is base.space
    assert _recall(retriever.retrieve(base.arrays, users[0], allowed, K).candidates, exact) >= 0.95


def test_prepare_builds_the_index_before_any_request(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    base, _, _ = catalogue
    retriever = FaissRetriever(exact_below=1000, background=True)
    retriever.prepare(base.arrays)
    retriever.wait_until_built(60)
    assert retriever.built is not None and retriever.built.key is base.space
    small = FaissRetriever(exact_below=ITEMS + 1, background=True)
    small.prepare(base.arrays)
    small.wait_until_built(60)
    assert small.built is None


def test_small_catalogues_and_no_model_are_searched_exactly(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    base, users, _ = catalogue
    retriever = FaissRetriever(exact_below=ITEMS + 1, background=False)
    allowed = np.ones(ITEMS, bool)
    found = retriever.retrieve(base.arrays, users[0], allowed, K, NewItems()).candidates
    np.testing.assert_array_equal(
        found, MatrixProduct().retrieve(base.arrays, users[0], allowed, K).candidates
    )
    assert retriever.built is None


def test_items_newer_than_the_model_are_scored_as_the_exact_search_scores_them() -> None:
    rng = np.random.default_rng(2)
    synthetic = synthetic_catalogue(5000, DIM, rng)
    index = synthetic_index(synthetic, CONTENT, rng, learned=4500)  # 500 unlearned
    user = synthetic.users(1, rng)[0]
    profile = index.arrays.content_of([4600])[0]
    new_items = NewItems(2.0, profile)
    allowed = np.ones(5000, bool)
    found = _retriever().retrieve(index.arrays, user, allowed, K, new_items)
    exact = MatrixProduct().retrieve(index.arrays, user, allowed, K, new_items)
    unlearned = np.arange(4500, 5000)
    assert found.scores is not None and exact.scores is not None
    np.testing.assert_allclose(found.scores(unlearned), exact.scores(unlearned), rtol=1e-5)
    new_in_exact = set(exact.candidates[exact.candidates >= 4500].tolist())
    assert new_in_exact, "the profile's item should reach the exact pool"
    assert new_in_exact <= set(found.candidates.tolist())


def test_a_catalogue_far_past_what_the_model_knows_scores_only_new_items_that_can_make_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5,500 of 6,000 items newer than the model (a bulk load): the new items scored are
    the best by each piece of evidence, not all of them, and the pool is the one scoring
    all of them gives."""
    rng = np.random.default_rng(5)
    synthetic = synthetic_catalogue(6000, DIM, rng)
    index = synthetic_index(synthetic, CONTENT, rng, learned=500)
    assert index.space is not None
    weight = rng.standard_normal(index.space.projection_weight.shape).astype(np.float32)
    index.set_space(replace(index.space, projection_weight=0.3 * weight))  # a content part
    scored: list[int] = []
    exact_scores = vectorsearch.user_scores

    def counted(arrays: IndexArrays, *args: object) -> np.ndarray:
        if len(args) > 2:
            scored.append(len(args[2]))  # type: ignore[arg-type]
        return exact_scores(arrays, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(vectorsearch, "user_scores", counted)
    retriever = _retriever()
    allowed = np.ones(6000, bool)
    for n, user in enumerate(synthetic.users(5, rng)):
        new_items = NewItems(1.0, index.arrays.content_of([600 + 1000 * n])[0])
        found = retriever.retrieve(index.arrays, user, allowed, K, new_items)
        exact = MatrixProduct().retrieve(index.arrays, user, allowed, K, new_items)
        assert _recall(found.candidates, exact.candidates, K) >= 0.98
        new_in_exact = exact.candidates[exact.candidates >= 500]
        assert len(new_in_exact) and np.isin(new_in_exact, found.candidates).all()
    # The candidates' scores (the index's, and at most K new items by each evidence),
    # not the 5,500 new items; the standardisation's spread sample is scored too.
    candidates = [c for c in scored if c != len(index.arrays.spread_sample)]
    assert candidates and max(candidates) <= 3 * K


def test_the_exact_content_scan_a_slice_at_a_time_finds_the_closest_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(6)
    synthetic = synthetic_catalogue(3000, DIM, rng)
    arrays = synthetic_index(synthetic, CONTENT, rng).arrays
    monkeypatch.setattr(vectorsearch, "SCAN_SLICE", 256)
    rows = np.flatnonzero(rng.random(3000) < 0.6)
    query = arrays.content_of([7])[0]
    closest = vectorsearch._most_similar(arrays, rows, query, 50)
    expected = rows[np.argsort(-(arrays.content_of(rows) @ query), kind="stable")[:50]]
    assert closest.tolist() == expected.tolist()


def test_relevance_is_standardised_as_exact_search_standardises_it() -> None:
    """Against every item's score, new items' calibrated ones included (an even sample of
    them beyond 2,048 items): the same blend as the exact path on a small catalogue."""
    rng = np.random.default_rng(3)
    synthetic = synthetic_catalogue(1500, DIM, rng)
    index = synthetic_index(synthetic, CONTENT, rng, learned=1300)
    user = synthetic.users(1, rng)[0]
    new_items = NewItems(1.0, index.arrays.content_of([1400])[0])
    allowed = np.ones(1500, bool)
    found = FaissRetriever(exact_below=0, exact_allowed=0, background=False).retrieve(
        index.arrays, user, allowed, K, new_items
    )
    exact = MatrixProduct().retrieve(index.arrays, user, allowed, K, new_items)
    shared = np.intersect1d(found.candidates, exact.candidates)
    assert len(shared) >= 0.95 * K
    np.testing.assert_allclose(found.relevance(shared), exact.relevance(shared), rtol=1e-5)


def test_many_items_newer_than_the_model_do_not_rebuild_the_index_again_and_again() -> None:
    """A new index would not hold them either: only rows written since count."""
    rng = np.random.default_rng(4)
    synthetic = synthetic_catalogue(4000, DIM, rng)
    index = synthetic_index(synthetic, CONTENT, rng, learned=3000)  # 25% newer than it
    retriever = _retriever(rebuild_after=0.05)
    allowed = np.ones(4000, bool)
    retriever.retrieve(index.arrays, synthetic.users(1, rng)[0], allowed, K)
    built = retriever.built
    for user in synthetic.users(3, rng):
        retriever.retrieve(index.arrays, user, allowed, K)
    assert retriever.built is built
    # Nor do more of them arriving after the build (a bulk load of new items: 10%).
    extra = rng.standard_normal((400, CONTENT))
    index.upsert(_stored(f"late-{n}", row) for n, row in enumerate(extra))
    found = retriever.retrieve(index.arrays, synthetic.users(1, rng)[0], np.ones(4400, bool), K)
    assert retriever.built is built
    assert len(found.candidates) == K


def test_rows_written_after_a_reset_count_as_written_since_any_earlier_build(
    catalogue: tuple[ItemIndex, np.ndarray, np.ndarray],
) -> None:
    """``ItemIndex.reset`` (another content encoder) starts the arrays again, not the write
    stamps: an index built before never passes for current."""
    base, users, _ = catalogue
    assert base.space is not None
    index = ItemIndex(CONTENT)
    index.set_space(base.space)
    index.upsert(_every_item(base.arrays))
    retriever = _retriever()
    retriever.retrieve(index.arrays, users[0], np.ones(len(index), bool), K)
    assert retriever.built is not None
    index.reset(CONTENT, "another encoder")
    index.set_space(base.space)
    index.upsert(_every_item(base.arrays))
    assert index.arrays.written is not None
    assert index.arrays.written.min() > retriever.built.write


def test_free_text_queries_through_the_content_index_keep_recall_and_follow_writes() -> None:
    """Clustered content (as a text encoder's): recall@100 against the exact scan with
    the filters on, the same relevance, a new model space keeping the content index, an
    item whose text is written after the build found at once."""
    rng = np.random.default_rng(2)
    texts = synthetic_catalogue(ITEMS, 48, rng)
    index = synthetic_index(
        synthetic_catalogue(ITEMS, DIM, rng), 48, rng, content=unit_rows(texts.vectors)
    )
    queries = unit_rows(texts.users(40, rng))
    retriever = _retriever()
    categories = texts.categories
    for rule in ("none", "available", "half the categories out"):
        recalls = []
        for q, query in enumerate(queries):
            allowed = np.ones(ITEMS, bool)
            if rule != "none":
                allowed &= rng.random(ITEMS) >= 0.1
            if rule == "half the categories out":
                allowed &= (categories + q) % 20 < 10
            exact = MatrixProduct().by_content(index.arrays, query, allowed, K)
            found = retriever.by_content(index.arrays, query, allowed, K)
            assert allowed[found.candidates].all(), "a disallowed item was retrieved"
            exact_pool = exact.candidates[allowed[exact.candidates]]
            recalls.append(_recall(found.candidates, exact_pool))
            sample = exact_pool[:20]
            np.testing.assert_allclose(found.relevance(sample), exact.relevance(sample), atol=0.02)
        assert np.mean(recalls) >= 0.98, f"content recall@100 {np.mean(recalls):.3f} ({rule})"
    built = retriever.content.built
    assert built is not None and built.key == 48

    assert index.space is not None
    index.set_space(replace(index.space, version=2))  # every vector rewritten, no content
    everything = np.ones(ITEMS, bool)
    retriever.by_content(index.arrays, queries[0], everything, K)
    assert retriever.content.built is built
    assert len(retriever.content.beside(index.arrays, built)) == 0

    index.upsert([_stored("item-7", queries[0])])
    found = retriever.by_content(index.arrays, queries[0], everything, K)
    assert index.arrays.ids[found.candidates[0]] == "item-7"
    assert retriever.content.built is built, "one row must not rebuild the index"


def test_a_replaced_model_space_is_not_kept_alive_by_the_retriever_or_the_signals() -> None:
    """After the index follows a new version, what the retriever and the signals cache
    keep of earlier requests (rows beside each index, signals of half-lives no request
    asks for any more) does not hold the old arrays, nor with them the old space: at a
    million items that kept two 256 MB arrays per version followed alive."""
    rng = np.random.default_rng(4)
    index = synthetic_index(synthetic_catalogue(3000, DIM, rng), CONTENT, rng)
    retriever, signals = _retriever(), SignalsCache()
    everything = np.ones(3000, bool)
    user = rng.standard_normal(DIM).astype(np.float32)
    retriever.retrieve(index.arrays, user, everything, K)
    retriever.by_content(
        index.arrays, unit_rows(rng.standard_normal((1, CONTENT)))[0], everything, K
    )
    signals.signals(index, (1.0, 1.0), 0.0)
    assert index.space is not None
    replaced = weakref.ref(index.space)
    index.set_space(replace(index.space, version=2))
    retriever.retrieve(index.arrays, user, everything, K)
    signals.signals(index, (2.0, 2.0), 0.0)
    signals.close()
    gc.collect()
    assert replaced() is None
