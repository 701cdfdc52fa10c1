"""Exact inner-product top-k (faiss, in blocks) equals brute-force numpy top-k."""
import numpy as np
import pytest

from lmsieve.features.knn import ExactIPIndex, blocked_topk
from lmsieve.schemas.errors import ConfigError


def brute(q, pool, k):
    """float64 products; order by score descending, then by pool index."""
    sims = q.astype(np.float64) @ pool.astype(np.float64).T
    out_i = np.empty((len(q), k), np.int64)
    for r in range(len(q)):
        out_i[r] = sorted(range(pool.shape[0]), key=lambda j: (-sims[r, j], j))[:k]
    return np.take_along_axis(sims, out_i, 1), out_i


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((1500, 24)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    return rng.standard_normal((40, 24)).astype(np.float32), pool


def test_index_search_equals_brute_force(data):
    q, pool = data
    want_s, want_i = brute(q, pool, 10)
    index = ExactIPIndex(24, use_gpu=False, block_size=256)
    index.add(pool)
    assert index.ntotal == len(pool)
    s, i = index.search(q, 10, query_block=7)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_allclose(s, want_s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block", [13, 500, 5000])
def test_blocked_stream_equals_brute_force(data, block):
    q, pool = data
    want_s, want_i = brute(q, pool, 10)
    s, i = blocked_topk(q, (pool[a:a + block] for a in range(0, len(pool), block)), 10, use_gpu=False)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_allclose(s, want_s, rtol=1e-5, atol=1e-6)


def test_ties_go_to_the_smaller_index_whatever_the_blocks():
    base = np.eye(4, dtype=np.float32)
    pool = np.concatenate([base, base, base])  # each direction at rows j, j+4, j+8
    q = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], np.float32)
    for block in (1, 3, 5, 12):
        s, i = blocked_topk(q, (pool[a:a + block] for a in range(0, 12, block)), 3, use_gpu=False)
        assert i.tolist() == [[0, 4, 8], [2, 6, 10]]
    index = ExactIPIndex(4, use_gpu=False)
    index.add(pool)
    assert index.search(q, 3)[1].tolist() == [[0, 4, 8], [2, 6, 10]]


def test_k_larger_than_pool_pads(data):
    q, pool = data
    s, i = blocked_topk(q[:3], [pool[:4]], 6, use_gpu=False)
    assert (i[:, 4:] == -1).all() and np.isneginf(s[:, 4:]).all()
    assert sorted(i[0, :4].tolist()) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        ExactIPIndex(24, use_gpu=False).search(q, 0)
