"""A user encoder is never paired with another content encoder's item vectors: the rule
(serving/core/encoders.py), the index that keeps foreign vectors out, and the index sync
that switches encoder with the catalogue and serves the fallback while the model's
encoder differs (in-memory fakes of the ports)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from serving.app.recommender import RecommenderService
from serving.app.sync import IndexSync
from serving.core.domain import Item, RecommendQuery
from serving.core.encoders import ContentEncoderId, pairing_problem
from serving.core.index import ItemIndex, StoredItem
from tests.unit import fakes

MINI = ContentEncoderId("pkg/minilm", 384, "a" * 16)
OTHER = ContentEncoderId("pkg/other", 8, "b" * 16)


def test_pairing_rule() -> None:
    assert pairing_problem(MINI, MINI.fingerprint, 384) is None
    problem = pairing_problem(MINI, OTHER.fingerprint, 8)
    assert problem is not None and str(MINI) in problem and OTHER.fingerprint in problem
    # Not recorded (rows and versions from before): only the width is checked.
    assert pairing_problem(None, "", 384) is None
    assert pairing_problem(MINI, "", 384) is None
    assert pairing_problem(None, OTHER.fingerprint, 8) is None
    assert "384-d" in (pairing_problem(MINI, "", 8) or "")
    assert ContentEncoderId.from_dict(MINI.to_dict()) == MINI
    assert ContentEncoderId.from_dict(None) is None


def test_index_keeps_vectors_of_another_encoder_out_of_ranking() -> None:
    index = ItemIndex(content_dim=384, encoder=MINI.fingerprint)
    index.upsert(
        [
            StoredItem(Item("a", "a"), fakes.content("a"), fakes.T0, False, MINI.fingerprint),
            StoredItem(Item("b", "b"), fakes.content("b"), fakes.T0, False, OTHER.fingerprint),
            StoredItem(Item("c", "c"), np.ones(8, np.float32), fakes.T0, False, ""),
            StoredItem(Item("d", "d"), fakes.content("d"), fakes.T0, False, ""),
        ]
    )
    assert index.arrays.live.tolist() == [True, False, False, True]
    assert not index.arrays.content_of([1, 2]).any()
    index.reset(8, OTHER.fingerprint)
    assert len(index) == 0 and index.content_dim == 8 and index.encoder == OTHER.fingerprint


def _stored(encoder: ContentEncoderId, at: object = fakes.T0) -> dict[str, StoredItem]:
    rng = np.random.default_rng(0)
    rows = {}
    for item in fakes.catalogue_items():
        vector = rng.standard_normal(encoder.dim).astype(np.float32)
        rows[item.item_id] = StoredItem(item, vector, at, False, encoder.fingerprint)  # type: ignore[arg-type]
    return rows


def _space(version: int, encoder: ContentEncoderId) -> object:
    space = fakes.item_space(version)
    weight = np.zeros((fakes.DIM, encoder.dim), np.float32)
    return replace(space, projection_weight=weight, content_encoder=encoder)


async def test_sync_switches_encoder_with_the_catalogue_and_never_mispairs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalogue, spaces = fakes.FakeCatalogue(), fakes.FakeItemSpaces()
    models, index = fakes.FakeServedModels(version=1, encoder=MINI), ItemIndex()
    spaces.spaces[1] = _space(1, MINI)  # type: ignore[assignment]
    spaces.spaces[2] = _space(2, OTHER)  # type: ignore[assignment]
    catalogue.items = _stored(MINI)
    sync = IndexSync(catalogue, spaces, models, index, interval_s=60)
    await sync.refresh()
    assert index.encoder == MINI.fingerprint and index.space is spaces.spaces[1]
    encoders, feedback = fakes.FakeEncoders(), fakes.FakeFeedback()
    feedback.events["e1"] = fakes.event("e1", "a")  # history, so the model is asked
    service = RecommenderService(
        index, encoders, fakes.FakeParameterSource(), feedback, fakes.FakeImpressions()
    )
    query = RecommendQuery(user_id="u1", session_id="", k=3)
    assert not (await service.recommend(query)).degraded

    # `recsys reembed` switched the whole catalogue to another (narrower) encoder.
    catalogue.tick()
    catalogue.items = _stored(OTHER, catalogue.now)
    models.encoder = OTHER
    with caplog.at_level(logging.ERROR, logger="serving.app.sync"):
        await sync.refresh()
        await sync.refresh()  # said once, not on every refresh
    assert index.encoder == OTHER.fingerprint and index.arrays.content.shape == (6, 8)
    assert index.space is None and index.arrays.live.all()
    refusals = [r.getMessage() for r in caplog.records if "not pairing" in r.getMessage()]
    assert len(refusals) == 1
    assert "user_encoder v1" in refusals[0] and str(MINI) in refusals[0]
    assert "fallback" in refusals[0]
    answer = await service.recommend(query)
    assert answer.degraded and answer.model_version == "" and len(answer.items) == 3

    # A version trained with the catalogue's encoder is served again.
    models.version = 2
    await sync.refresh()
    assert index.space is spaces.spaces[2]
    encoders.version = 2
    assert not (await service.recommend(query)).degraded


async def test_a_new_version_of_another_encoder_is_not_paired() -> None:
    catalogue, spaces = fakes.FakeCatalogue(), fakes.FakeItemSpaces()
    models, index = fakes.FakeServedModels(version=1), ItemIndex()
    spaces.spaces[1] = _space(1, MINI)  # type: ignore[assignment]
    spaces.spaces[2] = _space(2, OTHER)  # type: ignore[assignment]
    catalogue.items = _stored(MINI)
    sync = IndexSync(catalogue, spaces, models, index, interval_s=60)
    await sync.refresh()
    assert index.space is spaces.spaces[1]
    models.version = 2  # exported without the export check (or by hand)
    await sync.refresh()
    assert index.space is None and index.arrays.vectors.shape == (6, 0)


async def test_empty_catalogue_takes_the_served_encoder() -> None:
    catalogue, spaces = fakes.FakeCatalogue(), fakes.FakeItemSpaces()
    index = ItemIndex()
    sync = IndexSync(catalogue, spaces, fakes.FakeServedModels(None, OTHER), index, 60)
    await sync.refresh()
    assert index.content_dim == 8 and index.encoder == OTHER.fingerprint
