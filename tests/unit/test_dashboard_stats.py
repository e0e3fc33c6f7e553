"""The dashboard's pure logic: intervals and tests, histogram quantiles, logins, and the
parse of binary COPY embeddings."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dashboard import auth, labels, stats
from dashboard.queries.embeddings import ContentIndex, _parse
from dashboard.queries.system import quantile


def test_wilson_interval() -> None:
    low, high = stats.wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == pytest.approx(1.0)
    assert stats.wilson(0, 0) == (0.0, 0.0)


def test_two_proportion_test() -> None:
    z, p = stats.two_proportion_test(100, 1000, 130, 1000)
    assert z == pytest.approx(2.1027, abs=1e-3) and p == pytest.approx(0.0355, abs=1e-3)
    assert stats.two_proportion_test(5, 100, 5, 100) == (0.0, 1.0)
    assert stats.two_proportion_test(0, 0, 5, 100) == (0.0, 1.0)


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    bounds, counts = [10.0, 20.0, float("inf")], [50, 50, 0]
    assert quantile(bounds, counts, 0.5) == pytest.approx(10.0)
    assert quantile(bounds, counts, 0.75) == pytest.approx(15.0)
    assert quantile([10.0, float("inf")], [0, 5], 0.5) == 10.0  # past the last bound
    assert quantile([], [], 0.5) is None


def test_logins_are_checked() -> None:
    logins = {"alice": "a", "bob": "b"}
    assert auth.verify(logins, "alice", "a")
    assert not auth.verify(logins, "alice", "b")
    assert not auth.verify(logins, "carol", "a")
    assert not auth.verify(logins, "carol", "\0a")


def _copy_binary(rows: np.ndarray) -> bytes:
    out = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
    for row in rows:
        array = struct.pack("!iiiii", 1, 0, 700, len(row), 1)
        array += b"".join(struct.pack("!if", 4, float(v)) for v in row)
        out += struct.pack("!hi", 1, len(array)) + array
    return out + struct.pack("!h", -1)


def test_binary_copy_of_embeddings_parses_and_searches() -> None:
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [-1, 0, 0]], dtype=np.float32)
    parsed = _parse(_copy_binary(vectors), 4, 3)
    np.testing.assert_allclose(parsed, vectors)
    with pytest.raises(ValueError):
        _parse(_copy_binary(vectors), 4, 2)
    norms = np.linalg.norm(parsed, axis=1, keepdims=True)
    index = ContentIndex(("a", "b", "c", "d"), parsed / norms, ("Alpha", "Beta", "Gamma", "ALP"))
    assert [item for item, _ in index.nearest("a", 3)] == ["b", "c", "d"]
    assert index.nearest("missing") == []
    assert index.search("alp") == [("a", "Alpha"), ("d", "ALP")]


def test_ago_labels() -> None:
    assert [labels.ago(s) for s in (5, 75, 600, 5399, 5400, 7 * 3600, 2 * 86_400)] == [
        "just now",
        "1 min ago",
        "10 min ago",
        "90 min ago",
        "2 h ago",
        "7 h ago",
        "2 days ago",
    ]
    assert [labels.count(n, "event") for n in (0, 1, 1204)] == [
        "0 events",
        "1 event",
        "1,204 events",
    ]
