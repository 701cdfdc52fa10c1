"""Reading and writing document shards.

Reads project only the columns a step needs and validate each file on its own, so an error names
the file and the row. Writes are zstd Parquet in bounded row groups, under a temporary name that
is renamed into place; a run's ``manifest.json`` is written last (see ``lmsieve.io.output``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmsieve.io.paths import expand_paths, file_size, open_file
from lmsieve.schemas.document import ID, TEXT, first_duplicate, validate_documents
from lmsieve.schemas.errors import InputError
from lmsieve.schemas.quarantine import DUPLICATE_ID, Quarantine

ROW_GROUP_BYTES = 128 << 20
ROW_GROUP_MAX_ROWS = 100_000


@dataclass
class InputFile:
    path: str
    rows: int
    size: int
    sha256: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.size, "sha256": self.sha256}


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open_file(path) as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def read_parquet_file(path: str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, with a clear error naming it when it is truncated, corrupt or not Parquet."""
    try:
        with open_file(path) as f:
            pf = pq.ParquetFile(f)
            present = pf.schema_arrow.names
            cols = None if columns is None else [c for c in columns if c in present]
            return pf.read(columns=cols)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise InputError("no such file", path) from None
        raise InputError(f"not a readable Parquet file ({exc})", path) from None


def read_documents(
    spec,
    columns: list[str] | None = None,
    require_text: bool = True,
    checksums: bool = False,
    quarantine=None,
    feature_columns=(),
    text_column: str | None = None,
    id_column: str | None = None,
) -> tuple[pa.Table, list[InputFile]]:
    """Read and validate documents from files in any input format (:mod:`lmsieve.io.formats`);
    returns the table and what was read.

    ``columns``: the columns to read (``id`` and, with ``require_text``, ``text`` are always
    read); ``None`` reads all. ``text_column`` / ``id_column``: the source columns holding the text
    and the id (:mod:`lmsieve.io.columns`: mapping, generated ids, non-string ids). Ids must be
    unique across all files (a repeat after the first is a per-document problem). ``quarantine``:
    the ``on_invalid`` policy and record (:class:`lmsieve.schemas.quarantine.Quarantine`; default: errors).
    """
    from lmsieve.io.columns import generated_id_prefix, map_columns
    from lmsieve.io.formats import read_any

    q = quarantine if quarantine is not None else Quarantine("error")
    paths = expand_paths(spec)
    def names(c, default):
        return [default] if c is None else ([c] if isinstance(c, str) else list(c))

    src_id, src_text = names(id_column, ID), names(text_column, TEXT)
    need = src_id + src_text if require_text else src_id
    cols = None if columns is None else list(dict.fromkeys(
        need + [c for c in columns if c not in (ID, TEXT)] + list(feature_columns)))
    tables, files = [], []
    seen_in: dict[str, int] = {}  # id -> position among the kept rows
    generated: dict[str, str] = {}  # id prefix -> file, for files whose ids are generated
    kept = 0
    for p in paths:
        t = read_any(p, cols, string_columns=tuple(src_id + src_text))
        n_file = t.num_rows
        prefix = generated_id_prefix(p)
        if not set(src_id) & set(t.column_names) and (id_column is None or ID in src_id):
            if prefix in generated:
                from lmsieve.io.columns import check_generated_names

                check_generated_names([generated[prefix], p])
            generated[prefix] = p
        t = map_columns(t, p, text_column=text_column, id_column=id_column, require_text=require_text,
                        id_prefix=prefix)
        t = validate_documents(t, source=p, require_text=require_text, quarantine=q, feature_columns=feature_columns)
        if len(paths) > 1:
            ids = t.column(ID).to_pylist()
            dup, first = [], []
            for row, i in enumerate(ids):
                prev = seen_in.get(i)
                if prev is None:
                    seen_in[i] = kept + row
                else:
                    dup.append(row)
                    first.append(prev)
            if dup:
                src, r = q.locate(int(q.kept_index_[first[0]]))
                keep = q.drop(kept + np.asarray(dup), DUPLICATE_ID,
                              f"duplicate id {ids[dup[0]]!r} (also in {src}, row {r})", [ids[d] for d in dup])
                t = t.filter(pa.array(keep[kept:]))
        kept += t.num_rows
        tables.append(t)
        files.append(InputFile(p, n_file, file_size(p), sha256_file(p) if checksums else None))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return table, files


def write_table(table: pa.Table, path: str) -> None:
    """Write zstd Parquet to ``path`` with bounded row groups (caller handles atomicity)."""
    rows = max(1, table.num_rows)
    bytes_per_row = max(1, table.nbytes // rows)
    rg = int(min(ROW_GROUP_MAX_ROWS, max(1, ROW_GROUP_BYTES // bytes_per_row)))
    with open_file(path, "wb") as f:
        pq.write_table(table, f, compression="zstd", row_group_size=rg)


__all__ = ["InputFile", "first_duplicate", "read_documents", "read_parquet_file", "sha256_file", "write_table"]
