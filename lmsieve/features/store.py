"""Feature declarations, fingerprints, and keyed Parquet side files that are reused when valid.

An extractor (:class:`Extractor`) is a plain batch callable: ``extractor(batch) -> {column:
pa.Array}`` aligned with the batch's rows. It declares the columns it writes
(:class:`FeatureColumn`: name, Arrow type, per-document shape) and a :meth:`~Extractor.fingerprint`
that changes whenever its output could: sha256 over ``FEATURE_VERSION``, the feature kind, the
model (content hash of its files) and every parameter that shapes the numbers. A Beam
``ModelHandler`` wraps the same object later; nothing here imports Beam.

:func:`compute_features` writes ``DIR/<name>.parquet``: ``id`` plus the declared columns, zstd,
with the fingerprint in the file's key-value metadata. A later run with the same fingerprint
reuses every row whose ``id`` is already there and computes only the missing ones (ids identify
documents: the schema requires unique ids, and a changed text needs a new id); a different
fingerprint recomputes everything and replaces the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lmsieve.schemas.document import ID, text_array
from lmsieve.schemas.errors import InputError

#: Bump when any extractor's numbers change for the same model and parameters.
FEATURE_VERSION = 1
META_FEATURE = b"lmsieve.feature"
META_FINGERPRINT = b"lmsieve.fingerprint"
META_COLUMNS = b"lmsieve.columns"
META_PARAMS = b"lmsieve.params"


@dataclass(frozen=True)
class FeatureColumn:
    """One output column: ``shape`` is per document: ``()`` scalar, ``(d,)`` fixed, ``(None,)`` ragged."""

    name: str
    type: pa.DataType
    shape: tuple = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "type": str(self.type), "shape": list(self.shape)}


class Extractor:
    """Base of the feature extractors: subclasses set ``kind`` and implement the three methods."""

    kind: ClassVar[str] = ""
    #: Documents per call that :func:`compute_features` hands over (extractors batch inside).
    doc_batch: ClassVar[int] = 256

    name: str

    def columns(self) -> list[FeatureColumn]:
        raise NotImplementedError

    def params(self) -> dict:
        """Every parameter that shapes the output (JSON-serialisable)."""
        raise NotImplementedError

    def model_hash(self) -> str:
        raise NotImplementedError

    def __call__(self, batch) -> dict[str, pa.Array]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        return make_fingerprint(self.kind, self.model_hash(), self.params())

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(ID, pa.string(), nullable=False)] + [pa.field(c.name, c.type) for c in self.columns()])


def make_fingerprint(kind: str, model_hash: str, params: dict) -> str:
    blob = json.dumps({"version": FEATURE_VERSION, "kind": kind, "model": model_hash, "params": params},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_HASH_CACHE: dict[tuple, str] = {}


def _file_sha256(path: str) -> str:
    """sha256 of a file, cached by (path, inode, size, mtime, ctime) -- but, as git does against
    "racy" timestamps, only once the file is older than the filesystem's timestamp granularity."""
    st = os.stat(path)
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > 2_000_000_000:
        _HASH_CACHE[key] = h.hexdigest()
    return h.hexdigest()


def hash_files(root: str | os.PathLike, names: list[str] | None = None, skip=("optimizer",)) -> str:
    """sha256 over (relative name, content sha256) of model files under ``root`` (a file or dir).

    ``names``: only these files; otherwise every regular file below ``root`` except hidden ones and
    those whose name starts with one of ``skip`` (optimizer state does not change a forward pass).
    """
    root = Path(root)
    if root.is_file():
        files = [root]
        root = root.parent
    elif names is not None:
        files = [root / n for n in names if (root / n).is_file()]
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(root).parts) and not p.name.startswith(skip))
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0" + _file_sha256(str(p)).encode())
    return h.hexdigest()


def feature_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / f"{name}.parquet"


def read_fingerprint(path: str | os.PathLike) -> str | None:
    """The fingerprint stored in a feature file, or None when absent/unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    fp = meta.get(META_FINGERPRINT)
    return fp.decode() if fp else None


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def compute_features(extractor: Extractor, docs: pa.Table, out_dir: str | os.PathLike | None = None, *,
                     reuse: bool = True, progress: bool = False) -> tuple[pa.Table, dict]:
    """Features for every row of ``docs`` (a table with ``id`` and ``text``), in row order.

    With ``out_dir``, reads/writes ``out_dir/<name>.parquet`` as described in the module doc.
    Returns the aligned table (``id`` + feature columns) and ``{"computed", "reused", "path"}``.
    """
    if ID not in docs.column_names:
        raise InputError(f"missing required column {ID!r}")
    schema = extractor.schema()
    fp = extractor.fingerprint()
    ids = docs.column(ID).combine_chunks() if docs.num_rows else pa.array([], pa.string())
    path = feature_path(out_dir, extractor.name) if out_dir is not None else None
    old = None
    if path is not None and reuse and path.exists() and read_fingerprint(path) == fp:
        old = pq.read_table(path)
        if old.schema.remove_metadata() != schema:
            old = None
    have = pc.is_in(ids, value_set=old.column(ID)) if old is not None and old.num_rows else None
    need = np.flatnonzero(~np.asarray(have)) if have is not None else np.arange(len(ids))
    todo = docs.take(pa.array(need, pa.int64())) if len(need) < docs.num_rows else docs
    parts = []
    bar = _progress(progress, len(need), extractor.name)
    for s, e in _batches(todo.num_rows, max(1, extractor.doc_batch)):
        piece = todo.slice(s, e - s)
        cols = extractor(text_array(piece))
        arrays = [piece.column(ID).combine_chunks()] + [_as_array(cols[c.name], c.type, e - s) for c in extractor.columns()]
        parts.append(pa.Table.from_arrays(arrays, schema=schema))
        if bar is not None:
            bar.update(e - s)
    if bar is not None:
        bar.close()
    new = pa.concat_tables(parts) if parts else schema.empty_table()
    merged = pa.concat_tables([old.select(schema.names).cast(schema), new]) if old is not None else new
    if path is not None and (len(need) or old is None):
        _write(merged, path, extractor, fp)
    aligned = merged.take(pc.index_in(ids, value_set=merged.column(ID)))
    return aligned, {"computed": int(len(need)), "reused": int(docs.num_rows - len(need)),
                     "path": str(path) if path else None, "fingerprint": fp}


def _as_array(values, typ: pa.DataType, n: int) -> pa.Array:
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=typ)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != typ:
        arr = arr.cast(typ)
    if len(arr) != n:
        raise RuntimeError(f"extractor returned {len(arr)} rows for a batch of {n}")
    return arr


def _write(table: pa.Table, path: Path, extractor: Extractor, fp: str) -> None:
    meta = {META_FEATURE: extractor.name.encode(), META_FINGERPRINT: fp.encode(),
            META_COLUMNS: json.dumps([c.to_dict() for c in extractor.columns()]).encode(),
            META_PARAMS: json.dumps({"kind": extractor.kind, **extractor.params()}, default=str).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
    os.replace(tmp, path)


def _progress(enabled: bool, total: int, desc: str):
    """A bar with ETA (``lmsieve.progress``); ``enabled=False`` defers to the process default."""
    from lmsieve import progress

    return progress.bar(total=total, desc=desc, unit="doc", enabled=enabled or None)
