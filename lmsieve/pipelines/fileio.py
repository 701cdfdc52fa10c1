"""Parquet on any Beam filesystem: shard discovery and names, row-group plans, atomic writers.

Everything here goes through ``apache_beam.io.filesystems.FileSystems``, so the same code reads and
writes local paths on FnApiRunner and ``gs://`` on Dataflow workers (with ``apache-beam[gcp]``).

*Shards.* Input files are sorted and named by their path relative to the inputs' common directory
(``a/b.parquet`` -> ``a__b``), so a shard's side files have the same names whichever machine or run
computes them.

*Units.* A shard's row groups are coalesced into *units* (consecutive row groups until ~128 MB of
uncompressed data or 100,000 rows, the limits ``lmsieve.io.write_table`` uses). A unit is the unit of
work inside a shard, and every side file of a shard has exactly one row group per unit, so row group
``i`` of any feature file holds the same rows, in the same order, as unit ``i`` of the input shard.
That alignment is what lets the selection job zip feature files together and join selected rows
back to the documents by position, without a shuffle of ids.

*Atomic files.* Writers write ``NAME.tmp-XXXXXXXX`` and rename it to ``NAME`` when complete, so a file
under its final name is always whole; a retried bundle simply writes it again (same bytes).
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from lmsieve.io.parquet import ROW_GROUP_BYTES, ROW_GROUP_MAX_ROWS
from lmsieve.schemas.errors import InputError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
TMP_MARK = ".tmp-"


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def is_url(path: str) -> bool:
    return bool(_URL.match(path)) and not path.startswith("file://")


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/")] + [n.strip("/") for n in names])


# -- discovery ------------------------------------------------------------------------------------
def expand_inputs(spec, what: str = "input") -> list[str]:
    """Sorted Parquet files named by a path, directory, glob, or a list of those (local or URL).

    Local paths follow :func:`lmsieve.io.expand_paths` (the in-process API's rules); URLs are
    matched with Beam's filesystems (``gs://bucket/dir`` means ``gs://bucket/dir/**.parquet``).
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for s in specs:
        s = os.fspath(s)
        if not is_url(s):
            from lmsieve.io.paths import expand_paths

            out.extend(os.path.abspath(p) for p in expand_paths(s.removeprefix("file://"), parquet_only=True))
            continue
        pattern = s if any(c in s for c in "*?[") or s.endswith(".parquet") else join(s, "**.parquet")
        found = sorted(m.path for m in _fs().match([pattern])[0].metadata_list)
        if not found:
            raise InputError("matches no Parquet files", s)
        out.extend(found)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    if not uniq:
        raise InputError(f"no {what} files", str(spec))
    return uniq


def shard_names(paths: list[str]) -> list[str]:
    """Deterministic, unique names of input shards: path relative to the common directory."""
    dirs = [p.rsplit("/", 1)[0] if "/" in p else "" for p in paths]
    root = dirs[0]
    for d in dirs[1:]:
        while root and not (d == root or d.startswith(root + "/")):
            root = root.rsplit("/", 1)[0] if "/" in root else ""
    names = []
    for p in paths:
        rel = p[len(root):].lstrip("/") if root else p.split("://", 1)[-1].lstrip("/")
        rel = rel[: -len(".parquet")] if rel.endswith(".parquet") else rel
        names.append(re.sub(r"[^A-Za-z0-9._=-]+", "_", rel.replace("/", "__")))
    if len(set(names)) != len(names):  # pragma: no cover - paths are unique, so names are
        raise InputError("input shards map to the same side-file name", ", ".join(paths))
    return names


def file_size(path: str) -> int:
    if not is_url(path):
        return os.path.getsize(path)
    return int(_fs().match([path])[0].metadata_list[0].size_in_bytes)


def content_fingerprint(path: str, f=None) -> str:
    """What identifies an input file's content for resumption: size, modification time (mtime
    locally, last-updated time on object stores) and a hash of the Parquet footer (schema, row
    groups, their byte offsets and statistics). A rewritten file with the same size and row
    count gets a different fingerprint, so its side files are recomputed."""
    import hashlib

    if is_url(path):
        m = _fs().match([path])[0].metadata_list[0]
        size, stamp = int(m.size_in_bytes), repr(getattr(m, "last_updated_in_seconds", None))
    else:
        st = os.stat(path)
        size, stamp = st.st_size, str(st.st_mtime_ns)
    h = hashlib.sha256(f"{size}:{stamp}:".encode())
    own = f is None
    f = open_read(path) if own else f
    try:
        if size >= 12:
            f.seek(size - 8)
            tail = f.read(8)
            n = int.from_bytes(tail[:4], "little")
            if tail[4:] == b"PAR1" and 0 < n <= size - 12:
                f.seek(size - 8 - n)
                h.update(f.read(n))
    finally:
        if own:
            f.close()
    return h.hexdigest()[:32]


def exists(path: str) -> bool:
    return os.path.exists(path) if not is_url(path) else _fs().exists(path)


def open_read(path: str):
    if not is_url(path):
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes

    return _fs().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path: str):
    if not is_url(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    from apache_beam.io.filesystem import CompressionTypes

    return _fs().create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def rename(src: str, dst: str) -> None:
    if not is_url(src):
        os.replace(src, dst)
    else:
        if _fs().exists(dst):
            _fs().delete([dst])
        _fs().rename([src], [dst])


def delete(paths: list[str]) -> None:
    paths = [p for p in paths if exists(p)]
    if not paths:
        return
    local = [p for p in paths if not is_url(p)]
    for p in local:
        os.remove(p)
    remote = [p for p in paths if is_url(p)]
    if remote:
        _fs().delete(remote)


def list_files(directory: str, pattern: str = "*") -> list[str]:
    """Files in ``directory`` (not recursive) matching a glob pattern."""
    if not is_url(directory):
        import glob

        return sorted(glob.glob(os.path.join(directory, pattern)))
    res = _fs().match([join(directory, pattern)])[0]
    return sorted(m.path for m in res.metadata_list)


def makedirs(directory: str) -> None:
    if not is_url(directory):
        os.makedirs(directory, exist_ok=True)


def write_text(path: str, text: str) -> None:
    """Write a small text file atomically (temp name, then rename)."""
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    with open_write(tmp) as f:
        f.write(text.encode("utf-8"))
    rename(tmp, path)


def read_text(path: str) -> str:
    with open_read(path) as f:
        return f.read().decode("utf-8")


# -- Parquet --------------------------------------------------------------------------------------
def read_metadata(path: str) -> pq.FileMetaData:
    """The footer of a Parquet file; InputError naming the file if it is not readable Parquet."""
    try:
        with open_read(path) as f:
            return pq.ParquetFile(f).metadata
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", path) from None


def read_table(path: str, columns: list[str] | None = None) -> pa.Table:
    try:
        with open_read(path) as f:
            pf = pq.ParquetFile(f)
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            return pf.read(columns=cols)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", path) from None


@dataclass(frozen=True)
class Unit:
    """Consecutive input row groups ``[rg_start, rg_stop)`` holding rows ``[row_start, row_stop)``."""

    index: int
    rg_start: int
    rg_stop: int
    row_start: int
    row_stop: int

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start

    def to_list(self) -> list[int]:
        return [self.rg_start, self.rg_stop, self.row_start, self.row_stop]


#: Unit size limits (uncompressed bytes of the input row groups, rows); tests make them small.
UNIT_BYTES = ROW_GROUP_BYTES
UNIT_MAX_ROWS = ROW_GROUP_MAX_ROWS


def plan_units(md: pq.FileMetaData, target_bytes: int | None = None, max_rows: int | None = None) -> list[Unit]:
    """Coalesce a file's row groups into units (see the module doc). A file with no rows has none."""
    target_bytes = UNIT_BYTES if target_bytes is None else target_bytes
    max_rows = UNIT_MAX_ROWS if max_rows is None else max_rows
    units: list[Unit] = []
    start_rg, start_row, row, nbytes = 0, 0, 0, 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        if i > start_rg and (nbytes + rg.total_byte_size > target_bytes or row - start_row + rg.num_rows > max_rows):
            units.append(Unit(len(units), start_rg, i, start_row, row))
            start_rg, start_row, nbytes = i, row, 0
        row += rg.num_rows
        nbytes += rg.total_byte_size
    if row > start_row:
        units.append(Unit(len(units), start_rg, md.num_row_groups, start_row, row))
    return units


class UnreadableUnit(InputError):
    """A unit's row groups cannot be decoded (a corrupt data page behind an intact footer, a
    truncated file): names the file and the row-group/row range. ``reason`` is the short,
    stable text a quarantine record holds."""

    reason = "unreadable row group"


def describe_unit(unit: Unit) -> str:
    return (f"row groups {unit.rg_start}..{unit.rg_stop - 1} (rows {unit.row_start}..{unit.row_stop - 1})")


def read_unit(pf: pq.ParquetFile, unit: Unit, columns: list[str] | None = None, path: str | None = None) -> pa.Table:
    """The rows of one unit of an input shard (only ``columns`` that exist in the file). A decoding
    error becomes an :class:`UnreadableUnit` naming ``path`` and the unit's row groups and rows."""
    path = path or getattr(pf, "_lmsieve_path", None)
    cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
    try:
        t = pf.read_row_groups(list(range(unit.rg_start, unit.rg_stop)), columns=cols)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableUnit(f"{describe_unit(unit)} unreadable ({str(exc).splitlines()[0][:200]})", path) from None
    if t.num_rows != unit.rows:
        raise UnreadableUnit(f"{describe_unit(unit)} changed while reading (got {t.num_rows} rows)", path)
    return t


class AtomicParquetWriter:
    """zstd Parquet under a temporary name, renamed into place by :meth:`commit`.

    ``write_row_group(table)`` writes exactly one row group (the unit layout). ``write_rows`` buffers
    and writes coalesced row groups of ~``target_bytes`` (for outputs with no unit layout, like the
    selected shards). ``metadata`` is stored as JSON under ``meta_key`` at commit.
    """

    def __init__(self, path: str, schema: pa.Schema, target_bytes: int = ROW_GROUP_BYTES,
                 max_rows: int = ROW_GROUP_MAX_ROWS):
        self.path = path
        self.tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        self.schema = schema
        self._f = open_write(self.tmp)
        self._w = pq.ParquetWriter(self._f, schema, compression="zstd")
        self._buf: list[pa.Table] = []
        self._buf_bytes = 0
        self._buf_rows = 0
        self.target_bytes, self.max_rows = target_bytes, max_rows
        self.rows = 0

    def write_row_group(self, table: pa.Table) -> None:
        table = table.cast(self.schema) if table.schema != self.schema else table
        self._w.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def write_rows(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._buf.append(table)
        self._buf_bytes += table.nbytes
        self._buf_rows += table.num_rows
        if self._buf_bytes >= self.target_bytes or self._buf_rows >= self.max_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            t = pa.concat_tables(self._buf).combine_chunks()
            self._buf, self._buf_bytes, self._buf_rows = [], 0, 0
            for s in range(0, t.num_rows, self.max_rows):
                self.write_row_group(t.slice(s, self.max_rows))

    def commit(self, metadata: dict | None = None, meta_key: str = "lmsieve.beam") -> str:
        self._flush()
        if metadata is not None:
            self._w.add_key_value_metadata({meta_key: json.dumps(metadata, sort_keys=True)})
        self._w.close()
        self._f.close()
        rename(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._w.close()
            self._f.close()
        finally:
            delete([self.tmp])


# -- task lists (keep the job graph independent of the pool's size) ------------------------------
def _task_coder():
    """Beam's own element coder: tasks are encoded exactly as ``beam.Create(tasks)`` would have put
    them into the job graph (launcher-made objects, never user data)."""
    from apache_beam.coders import PickleCoder

    return PickleCoder()


def write_tasks(path: str, tasks, dry: bool = False) -> str:
    """Write tasks, one base64-encoded element per line, to ``path`` (a temp location); the
    pipeline reads them back with :class:`ReadTasks`, so the graph holds one path, not the pool.
    ``dry``: only return the path (rendering a job without submitting it)."""
    import base64

    if dry:
        return path
    coder = _task_coder()
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    with open_write(tmp) as f:  # streamed: the launcher never holds the whole list as text
        for t in tasks:
            f.write(base64.b64encode(coder.encode(t)) + b"\n")
    rename(tmp, path)
    return path


def decode_task(line: str):
    import base64

    return _task_coder().decode(base64.b64decode(line))


def read_tasks(path: str) -> list:
    return [decode_task(x) for x in read_text(path).splitlines() if x]


def read_json_metadata(md: pq.FileMetaData, meta_key: str = "lmsieve.beam") -> dict | None:
    raw = (md.metadata or {}).get(meta_key.encode())
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


__all__ = ["AtomicParquetWriter", "Unit", "UnreadableUnit", "content_fingerprint", "expand_inputs", "plan_units",
           "read_metadata", "read_tasks", "read_unit", "shard_names", "write_tasks"]
