"""Cutting the released documents into Parquet shards of consistent size and one schema.

Shards are cut in document order. The number of shards is the smallest that keeps every shard
under both ``max_rows`` rows and (about) ``target_bytes`` bytes of Arrow data; boundaries then
split the cumulative bytes evenly, so shards have near-equal sizes instead of a full run and a
small tail. Row sizes are computed per column without a Python loop: offsets for string/binary
columns, the type's width for fixed-width columns, the column average for nested ones.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.io.parquet import sha256_file, write_table

DATA_DIR = "data"
SPLIT = "train"
#: Shard formats: zstd Parquet (default) or JSON Lines, plain or gzip (for trainers that read JSONL).
FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz"}


def _bit_width(t: pa.DataType) -> int:
    try:
        return t.bit_width
    except ValueError:  # not fixed-width
        return 0


def row_nbytes(table: pa.Table) -> np.ndarray:
    """Approximate in-memory bytes of each row (int64, aligned with the table)."""
    n = table.num_rows
    out = np.zeros(n, dtype=np.int64)
    for col in table.columns:
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            out += pc.fill_null(pc.binary_length(col), 0).to_numpy().astype(np.int64) + 4
        elif _bit_width(t) >= 8:
            out += _bit_width(t) // 8
        elif n:
            out += col.nbytes // n
    return out


def _even(cum: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Boundaries (absolute row positions, with both ends) cutting ``cum`` into ``k`` equal parts."""
    n = len(cum)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, k) / k, side="left") + 1
    return start + np.unique(np.concatenate([[0], np.clip(cuts, 1, n), [n]]))


def plan_shards(nbytes: np.ndarray, max_rows: int, target_bytes: int) -> list[tuple[int, int]]:
    """[(start, stop)] row ranges; at least one (possibly empty) shard.

    Every shard has at most ``max_rows`` rows and at most ``target_bytes`` plus one row's bytes.
    Tries the fewest shards the limits allow (and a few more) split evenly by bytes, then evenly
    by rows; if neither fits, splits evenly by rows and then each too-large part evenly by bytes.
    """
    n = len(nbytes)
    if n == 0:
        return [(0, 0)]
    nbytes = np.asarray(nbytes, dtype=np.int64)
    cum_b, cum_r = np.cumsum(nbytes), np.arange(1, n + 1)
    limit = target_bytes + int(nbytes.max())

    cum0 = np.concatenate([[0], cum_b])

    def fits(b: np.ndarray) -> bool:
        sizes = np.diff(cum0[b])
        return int(np.diff(b).max()) <= max_rows and int(sizes.max()) <= limit

    lower = min(n, max(1, math.ceil(n / max_rows), math.ceil(int(cum_b[-1]) / max(1, target_bytes))))
    for k in range(lower, min(n, lower + 8) + 1):
        for cum in (cum_b, cum_r):
            b = _even(cum, k)
            if fits(b):
                return [(int(x), int(y)) for x, y in zip(b[:-1], b[1:])]
    out = []
    rows = _even(cum_r, math.ceil(n / max_rows))
    for a, z in zip(rows[:-1], rows[1:]):
        part = nbytes[a:z]
        k = max(1, math.ceil(int(part.sum()) / max(1, target_bytes)))
        b = _even(np.cumsum(part), k, start=int(a))
        out += [(int(x), int(y)) for x, y in zip(b[:-1], b[1:])]
    return out


def shard_name(i: int, n: int, fmt: str = "parquet") -> str:
    return f"{DATA_DIR}/{SPLIT}-{i:05d}-of-{n:05d}{FORMATS[fmt]}"


def shard_format(path: str) -> str:
    """The format of a shard from its name."""
    return next((f for f, ext in FORMATS.items() if path.endswith(ext) and f != "jsonl"), None) or \
        ("jsonl" if path.endswith(".jsonl") else "parquet")


def write_jsonl(table: pa.Table, path: str, gz: bool = False) -> None:
    """One JSON object per row, keys in column order, UTF-8 (not ASCII-escaped); values JSON can't
    hold (timestamps, bytes) as text. gzip output has no timestamp, so reruns give the same bytes."""
    import gzip
    import json

    raw = open(path, "wb")
    f = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if gz else raw
    try:
        for batch in table.to_batches(max_chunksize=10_000):
            f.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                            for r in batch.to_pylist()).encode("utf-8"))
    finally:
        if gz:
            f.close()
        raw.close()


def write_shards(table: pa.Table, root: str, max_rows: int, target_bytes: int, stats, fmt: str = "parquet") -> list[dict]:
    """Write the shards under ``root/data/`` as ``fmt`` (:data:`FORMATS`); returns their manifest
    entries (``stats(part)`` adds each shard's counts)."""
    os.makedirs(os.path.join(root, DATA_DIR), exist_ok=True)
    ranges = plan_shards(row_nbytes(table), max_rows, target_bytes)
    out = []
    for i, (a, b) in enumerate(ranges):
        name = shard_name(i, len(ranges), fmt)
        part = table.slice(a, b - a)
        path = os.path.join(root, name)
        if fmt == "parquet":
            write_table(part, path)
        else:
            write_jsonl(part, path, gz=fmt == "jsonl.gz")
        c = stats(part)
        out.append({"path": name, "rows": part.num_rows, "bytes": os.path.getsize(path), "sha256": sha256_file(path),
                    "characters": c["characters"], "tokens": c["tokens"]})
    return out


def schema_fields(schema: pa.Schema) -> list[dict]:
    """The schema as JSON: what every shard must have, in order."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


__all__ = ["DATA_DIR", "FORMATS", "SPLIT", "plan_shards", "shard_format", "write_jsonl", "row_nbytes", "schema_fields", "shard_name", "write_shards"]
