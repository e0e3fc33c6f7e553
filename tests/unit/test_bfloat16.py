"""bfloat16 codes for the item index's content embeddings."""

from __future__ import annotations

import numpy as np

from serving.core import bfloat16


def test_codes_round_to_nearest_within_half_a_unit_in_the_last_place() -> None:
    values = np.random.default_rng(0).standard_normal((200, 384)).astype(np.float32)
    codes = bfloat16.encode(values)
    assert codes.dtype == np.uint16 and codes.shape == values.shape
    back = bfloat16.decode(codes)
    assert back.dtype == np.float32
    relative = np.abs(back - values) / np.abs(values)
    assert relative.max() <= 2**-8
    # Rounding, not truncation: errors fall on both sides.
    assert (back > values).mean() > 0.4 and (back < values).mean() > 0.4


def test_values_bfloat16_holds_come_back_exactly() -> None:
    exact = np.array([0.0, -0.0, 1.0, -2.5, 0.15625, np.inf, -np.inf, 2.0**100], np.float32)
    assert np.array_equal(bfloat16.decode(bfloat16.encode(exact)), exact)
    assert np.array_equal(bfloat16.rounded(exact), exact)
    halfway = np.array([1.0 + 2**-8], np.float32)  # ties go to the even code (1.0)
    assert bfloat16.rounded(halfway)[0] == 1.0


def test_cosine_similarities_of_unit_vectors_move_by_thousandths() -> None:
    rows = np.random.default_rng(1).standard_normal((300, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    held = bfloat16.rounded(rows)
    assert np.abs(held @ held.T - rows @ rows.T).max() < 5e-3
