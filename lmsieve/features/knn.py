"""Exact inner-product top-k over a large pool, in blocks (faiss; GPU faiss when present).

Two shapes of the same search, both exact (``IndexFlatIP``, no quantisation):

* :class:`ExactIPIndex` keeps the pool in one faiss index (added in blocks) and answers queries
  in blocks: for pools that fit in memory, searched many times (BETR, RDS+ queries).
* :func:`blocked_topk` streams the pool block by block and keeps a running top-k per query: for
  pools that do not fit in memory (an iterable of embedding blocks read from feature files).

Results are ``(scores float32 (q, k), indices int64 (q, k))``, best first; ties are broken by the
smaller pool index, so the output does not depend on the block size. When the pool holds fewer
than ``k`` vectors the tail is ``(-inf, -1)``. For cosine similarity pass unit-norm vectors (the
embeddings and pooled states of this package are). The GPU path (``faiss.StandardGpuResources``,
used when the installed faiss has it and a GPU is visible) was not measured here.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from lmsieve.schemas.errors import ConfigError


def _faiss():
    import faiss

    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _use_gpu(use_gpu) -> bool:
    if use_gpu == "auto":
        return gpu_available()
    if use_gpu and not gpu_available():
        raise ConfigError("use_gpu: faiss GPU support (faiss-gpu and a visible GPU) is not available")
    return bool(use_gpu)


def _f32(x) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"expected a 2-d array of vectors, got shape {x.shape}")
    return x


class ExactIPIndex:
    """A flat inner-product faiss index: ``add`` pool vectors in blocks, ``search`` queries in blocks."""

    def __init__(self, dim: int, *, use_gpu="auto", block_size: int = 65536):
        faiss = _faiss()
        self.dim, self.block_size = int(dim), int(block_size)
        self.on_gpu = _use_gpu(use_gpu)
        index = faiss.IndexFlatIP(self.dim)
        if self.on_gpu:  # pragma: no cover - no GPU here
            self._res = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._res, 0, index)
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors) -> None:
        v = _f32(vectors)
        if v.shape[1] != self.dim:
            raise ConfigError(f"vectors have dimension {v.shape[1]}, index has {self.dim}")
        for s in range(0, len(v), self.block_size):
            self.index.add(v[s:s + self.block_size])

    def search(self, queries, k: int, query_block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        q = _f32(queries)
        if k < 1:
            raise ConfigError("k must be >= 1")
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        kk = min(k, self.ntotal)
        if kk == 0:
            return scores, ids
        for s in range(0, len(q), query_block):
            d, i = self.index.search(q[s:s + query_block], kk)
            scores[s:s + len(d), :kk], ids[s:s + len(d), :kk] = _canonical(d, i)
        return scores, ids


def blocked_topk(queries, pool_blocks: Iterable, k: int, *, use_gpu="auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of ``queries`` against a pool given as an iterable of blocks.

    Block ``b``'s rows get pool indices offset by the sizes of the blocks before it. Memory is one
    block plus ``q * 2k`` candidates, whatever the pool size.
    """
    q = _f32(queries)
    if k < 1:
        raise ConfigError("k must be >= 1")
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    offset = 0
    for block in pool_blocks:
        b = _f32(block)
        if len(b) == 0:
            continue
        index = ExactIPIndex(q.shape[1], use_gpu=use_gpu, block_size=len(b))
        index.add(b)
        s, i = index.search(q, min(k, len(b)))
        i = np.where(i >= 0, i + offset, -1)
        best_s, best_i = merge_topk(best_s, best_i, s, i, k)
        offset += len(b)
    return best_s, best_i


def merge_topk(s1, i1, s2, i2, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of two candidate lists per row: score descending, then index ascending (-1 last)."""
    s = np.concatenate([s1, s2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    d, j = _canonical(s, i)
    return d[:, :k], j[:, :k]


def _canonical(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows reordered by (score desc, index asc), missing entries (-1) as (-inf, -1) at the end."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.where(ids < 0, -np.inf, np.asarray(scores, dtype=np.float32)).astype(np.float32)
    key_i = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    by_id = np.argsort(key_i, axis=1, kind="stable")
    scores, ids = np.take_along_axis(scores, by_id, 1), np.take_along_axis(ids, by_id, 1)
    by_score = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, by_score, 1), np.take_along_axis(ids, by_score, 1)

