"""Stable per-document randomness: a 64-bit keyed BLAKE2b hash of (seed, doc id).

Every random choice in lmsieve is a function of (seed, id) alone, so a selection does not depend
on input order, sharding, process or machine. Python's ``hash()`` is salted per process and is
never used; neither is global RNG state.
"""
from __future__ import annotations

import hashlib
import struct

import numpy as np

_MASK63 = (1 << 63) - 1


def _seed_key(seed: int) -> bytes:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return b"lmsieve" + struct.pack("<Q", int(seed) & ((1 << 64) - 1))


def stable_hash64(seed: int, ids) -> np.ndarray:
    """uint64 hash of every id under ``seed`` (BLAKE2b, 8-byte digest, keyed by the seed)."""
    key = _seed_key(seed)
    if hasattr(ids, "to_pylist"):
        ids = ids.to_pylist()
    blake = hashlib.blake2b
    out = np.fromiter(
        (int.from_bytes(blake(s.encode("utf-8"), digest_size=8, key=key).digest(), "little") for s in ids),
        dtype=np.uint64,
        count=len(ids),
    )
    return out


def stable_uniform(seed: int, ids) -> np.ndarray:
    """U(0, 1) per id, from the top 53 bits of :func:`stable_hash64`; never exactly 0 or 1."""
    h = stable_hash64(seed, ids)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def stable_gumbel(seed: int, ids) -> np.ndarray:
    """Standard Gumbel(0, 1) noise per id: -log(-log u)."""
    return -np.log(-np.log(stable_uniform(seed, ids)))
