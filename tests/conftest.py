"""Shared fixtures: slices of the real shared pool and target sets.

The shared data lives beside the repository (``../shared/data``); set ``LMSIEVE_SHARED_DATA`` to
point elsewhere. Slices are deterministic: the first N rows of the pool shards in file order
(the pool is shuffled with a fixed seed, so every slice mixes all domains).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LMSIEVE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_available() -> bool:
    return (SHARED_DATA / "pool").is_dir()


@functools.lru_cache(maxsize=8)
def _pool_slice(n: int, columns: tuple[str, ...] | None) -> pa.Table:
    files = sorted((SHARED_DATA / "pool").glob("*.parquet"))
    parts, got = [], 0
    for f in files:
        t = pq.read_table(f, columns=list(columns) if columns else None)
        parts.append(t.slice(0, n - got))
        got += min(len(t), n - got)
        if got >= n:
            break
    return pa.concat_tables(parts).combine_chunks()


def pool_slice(n: int, columns: tuple[str, ...] | None = None) -> pa.Table:
    if not shared_available():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return _pool_slice(n, columns)


@functools.lru_cache(maxsize=16)
def _target(name: str) -> pa.Table:
    return pq.read_table(SHARED_DATA / "targets" / f"{name}.parquet")


def target_set(name: str) -> pa.Table:
    if not shared_available():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return _target(name)


@pytest.fixture
def pool_6k() -> pa.Table:
    return pool_slice(6000)
