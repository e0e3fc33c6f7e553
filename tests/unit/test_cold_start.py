"""Imputing a new item's learned embedding from its content neighbours."""

import numpy as np
import pytest

from serving.models.cold_start import impute_item_vectors


def test_a_new_item_gets_the_vectors_of_its_nearest_content_neighbours():
    # Two content clusters (along axes 0 and 1); learned vectors differ by cluster.
    rng = np.random.default_rng(0)
    content_known = np.zeros((20, 8), np.float32)
    content_known[:10, 0] = 1.0
    content_known[10:, 1] = 1.0
    content_known += rng.normal(scale=0.05, size=content_known.shape)
    vectors_known = np.zeros((20, 4), np.float32)
    vectors_known[:10] = [1.0, 0.0, 0.0, 0.0]
    vectors_known[10:] = [0.0, 0.0, 2.0, 0.0]
    content_new = np.array([[0.9, 0.1, 0, 0, 0, 0, 0, 0], [0.05, 1.0, 0, 0, 0, 0, 0, 0]])
    imputed = impute_item_vectors(content_new, content_known, vectors_known, k=5)
    assert np.allclose(imputed, [[1.0, 0, 0, 0], [0, 0, 2.0, 0]], atol=1e-6)


def test_imputed_vectors_are_similarity_weighted_and_stay_within_the_known_norms():
    rng = np.random.default_rng(1)
    content_known = rng.normal(size=(50, 16)).astype(np.float32)
    vectors_known = rng.normal(size=(50, 6)).astype(np.float32)
    vectors_known /= np.linalg.norm(vectors_known, axis=1, keepdims=True)  # norms all 1
    content_new = rng.normal(size=(7, 16)).astype(np.float32)
    imputed = impute_item_vectors(content_new, content_known, vectors_known, k=3)
    assert imputed.shape == (7, 6)
    assert (np.linalg.norm(imputed, axis=1) <= 1 + 1e-5).all()
    # k=1: exactly the most similar known item's vector.
    one = impute_item_vectors(content_new, content_known, vectors_known, k=1)
    unit = content_known / np.linalg.norm(content_known, axis=1, keepdims=True)
    nearest = (content_new @ unit.T).argmax(axis=1)
    assert np.allclose(one, vectors_known[nearest])


def test_no_neighbours_or_no_positive_similarity_leaves_the_item_without_a_vector():
    known = np.array([[1.0, 0.0]], np.float32)
    vectors = np.array([[3.0, 4.0]], np.float32)
    assert not impute_item_vectors(np.array([[-1.0, 0.0]]), known, vectors, k=1).any()
    empty = impute_item_vectors(np.ones((2, 2)), np.zeros((0, 2)), np.zeros((0, 3)), k=4)
    assert empty.shape == (2, 3) and not empty.any()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        impute_item_vectors(np.ones((1, 2)), np.ones((1, 2)), np.ones((1, 3)), k=0)
    with pytest.raises(ValueError, match="one row per known item"):
        impute_item_vectors(np.ones((1, 2)), np.ones((2, 2)), np.ones((1, 3)), k=1)
