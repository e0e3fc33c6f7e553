import numpy as np
import pytest

from serving.models.content_encoder import EMBEDDING_DIM, ContentEncoder


@pytest.fixture(scope="module")
def encoder() -> ContentEncoder:
    return ContentEncoder()


def test_embeddings_are_normalised_and_semantic(encoder):
    texts = [
        "Smooth late-night jazz saxophone record",
        "A jazz album with saxophone solos",
        "Waterproof hiking boots for mountain trails",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, EMBEDDING_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_order_is_kept_whatever_the_batching(encoder):
    texts = [
        "short",
        "a much longer text about cooking pasta with garlic and olive oil",
        "mid text",
    ]
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts])
    assert np.allclose(encoder.encode(texts, batch_size=2), one_by_one, atol=1e-5)
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)
