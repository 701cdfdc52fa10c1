"""Compressed lengths equal the libraries' own one-shot calls, byte for byte; bad levels are refused."""
import gzip
import zlib

import lz4.frame
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import zstandard
from conftest import pool_slice

from lmsieve.features.compression import check_codec, compressed_lengths
from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError

SAMPLES = [
    "",
    "a",
    "theorem add_comm (a b : nat) : a + b = b + a := by simp",
    "Ünïcödé ℕ → ℕ, 数学の定理 🙂 " * 40,
    "a" * 1000,
    # high-entropy, mostly non-ASCII text (deterministic bytes read as Latin-1)
    stable_hash64(7, [str(i) for i in range(400)]).tobytes().decode("latin-1"),
]


def _reference(codec: str, level: int, b: bytes) -> int:
    if codec == "gzip":
        return len(gzip.compress(b, compresslevel=level))
    if codec == "zlib":
        return len(zlib.compress(b, level))
    if codec == "lz4":
        return len(lz4.frame.compress(b, compression_level=level))
    return len(zstandard.ZstdCompressor(level=level).compress(b))


@pytest.mark.parametrize(
    "codec,level",
    [("gzip", 1), ("gzip", 6), ("gzip", 9), ("zlib", 1), ("zlib", 6), ("lz4", 0), ("lz4", 9), ("zstd", 1), ("zstd", 3)],
)
def test_equals_library_one_shot(codec, level):
    texts = SAMPLES + pool_slice(150).column("text").to_pylist()
    got = compressed_lengths(texts, codec=codec, level=level)
    want = [_reference(codec, level, s.encode("utf-8")) for s in texts]
    assert got.dtype == np.int64
    assert got.tolist() == want


def test_gzip_empty_and_header_size():
    # 10-byte header + 8-byte trailer + the 2-byte empty final deflate block (03 00).
    assert compressed_lengths([""]).tolist() == [20]
    assert compressed_lengths([""], codec="zlib").tolist() == [8]


def test_accepts_every_batch_type():
    texts = ["alpha beta", "", "gamma " * 50]
    want = compressed_lengths(texts).tolist()
    assert compressed_lengths(pa.table({"id": ["1", "2", "3"], "text": texts})).tolist() == want
    assert compressed_lengths(pd.DataFrame({"text": texts})).tolist() == want
    assert compressed_lengths(pa.chunked_array([texts[:1], texts[1:]])).tolist() == want
    assert compressed_lengths([]).tolist() == []


def test_degenerate_compressor_guard():
    # A working compressor shrinks a run: 1000 identical bytes take a few dozen bytes, not ~1000.
    for codec, level in [("gzip", 1), ("zlib", 1), ("lz4", 0), ("zstd", 3)]:
        assert compressed_lengths(["a" * 1000], codec=codec, level=level)[0] < 50, codec


@pytest.mark.parametrize("codec", ["gzip", "zlib"])
def test_deflate_level_zero_is_refused(codec):
    with pytest.raises(ConfigError, match="level 0 is stored mode.*no compression.*length only"):
        compressed_lengths(["x"], codec=codec, level=0)
    # Why: stored mode is len + constant, so a score built on it sees only length.
    assert len(gzip.compress(b"a" * 1000, compresslevel=0)) == 1000 + 23


def test_lz4_level_zero_is_fine():
    assert compressed_lengths(["a" * 1000], codec="lz4", level=0)[0] < 50


@pytest.mark.parametrize(
    "codec,level", [("brotli", 1), ("gzip", 10), ("gzip", -1), ("gzip", 1.0), ("gzip", True), ("lz4", 17), ("zstd", 23)]
)
def test_bad_settings(codec, level):
    with pytest.raises(ConfigError):
        check_codec(codec, level)
