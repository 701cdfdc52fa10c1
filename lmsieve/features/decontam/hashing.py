"""Stable 64-bit hashes of word n-grams, computed for a whole batch at once.

A word's hash is ``BLAKE2b(utf8(word), digest 8 bytes, key "lmsieve-decontam")`` read
little-endian (:func:`word_hash`), computed once per *distinct* word of a batch. The hash of the
k words starting at position i is a chain over them::

    h_1(i) = word_hash(w_i)
    h_k(i) = fmix64(h_{k-1}(i) * K + word_hash(w_{i+k-1}))   (mod 2**64)

with ``fmix64`` MurmurHash3's 64-bit finaliser and ``K`` an odd constant. Every level k costs a
few numpy operations over all word positions of the batch (no Python loop per n-gram), and one
pass yields the hashes of every length up to n: the 13-grams of documents and the whole-item
hashes of short items (k < 13 words) come from the same chain. Nothing depends on the batch, so
hashes (and flags) are the same on any sharding. :func:`chain_hash_py` is the pure-Python
definition the tests check the numpy path against.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HASH_VERSION = "blake2b8-fmix64-chain-v1"
_KEY = b"lmsieve-decontam"
_K = 0x9E3779B97F4A7C15
_C1, _C2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53
_M64 = (1 << 64) - 1


def word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8, key=_KEY).digest(), "little")


def _fmix64_py(h: int) -> int:
    h ^= h >> 33
    h = (h * _C1) & _M64
    h ^= h >> 33
    h = (h * _C2) & _M64
    return h ^ (h >> 33)


def chain_hash_py(words: list[str]) -> int:
    """The hash of a word sequence (reference definition; ``len(words) >= 1``)."""
    h = word_hash(words[0])
    for w in words[1:]:
        h = _fmix64_py((h * _K + word_hash(w)) & _M64)
    return h


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser over a uint64 array (in place; wrapping arithmetic)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(_C1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_C2)
    h ^= h >> np.uint64(33)
    return h


def word_hashes(words: pa.Array) -> np.ndarray:
    """uint64 hash of every word (BLAKE2b once per distinct word)."""
    if len(words) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = pc.dictionary_encode(words)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    blake, key = hashlib.blake2b, _KEY
    uniq = np.fromiter((int.from_bytes(blake(w, digest_size=8, key=key).digest(), "little")
                        for w in enc.dictionary.cast(pa.binary()).to_pylist()),
                       dtype=np.uint64, count=len(enc.dictionary))
    return uniq[codes]


def chain_levels(row: np.ndarray, wh: np.ndarray, levels, *, max_level: int | None = None):
    """Yield ``(k, start, hash)`` for every k in ``levels`` (ascending): the word position where
    each k-gram starts and its hash, for every k-gram lying inside one row.

    ``row``: the row of every word (non-decreasing); ``wh``: the word hashes."""
    levels = sorted(set(int(k) for k in levels))
    top = max_level or (levels[-1] if levels else 0)
    want = set(levels)
    n = len(wh)
    h = wh.copy()
    for k in range(1, top + 1):
        m = n - k + 1
        if m <= 0:
            break
        if k > 1:
            h = h[:m]
            h *= np.uint64(_K)
            h += wh[k - 1:]
            fmix64(h)
        if k in want:
            start = np.flatnonzero(row[:m] == row[k - 1:]) if k > 1 else np.arange(m)
            yield k, start, h[start]


__all__ = ["HASH_VERSION", "chain_hash_py", "chain_levels", "fmix64", "word_hash", "word_hashes"]
