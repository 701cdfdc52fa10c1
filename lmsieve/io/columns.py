"""Column mapping and id rules: any table becomes an ``id``/``text`` document table.

* ``text_column`` / ``id_column`` (CLI ``--text-column`` / ``--id-column``, job specs and the API):
  the source column is renamed to ``text`` / ``id``; every other column is kept as metadata. A file
  that also has a column already named ``text`` (or ``id``) is refused (which one is meant?).
* **Generated ids.** When the id column is absent (and none was named), each row gets
  ``<file name>:<row>``: the file's base name with its extensions (``shard-00001.jsonl.gz``) and the
  0-based row within that file (Parquet/Arrow row order; JSON Lines: non-blank lines; CSV: data rows
  after the header), counting rows later dropped as bad. The id depends only on the file's name and
  the row's place in it, never on which other files are read with it, their order, or how the work is
  split, so it is stable across runs and shardings. Two files read together with the same base name
  would repeat ids: that is an error asking for an id column. In-memory tables without ids get
  ``"0"``, ``"1"``, ... (their row numbers).
* **Non-string ids.** Integer ids become their decimal text (``7`` -> ``"7"``); floats that are all
  whole numbers (JSON and CSV often carry integer ids as floats) likewise (``7.0`` -> ``"7"``); other
  floats, booleans and nested values are refused, naming the column type. Binary ids are read as
  UTF-8 (a bad row is a per-document problem, like bad text).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import InputError


def _pick(table: pa.Table, name):
    """A column name, or the first of several candidates the table has (the target's mapping defaults
    to the pool's, then to the standard name)."""
    if isinstance(name, (list, tuple)):
        return next((n for n in name if n in table.column_names), name[0])
    return name


def _rename(table: pa.Table, src, dst: str, flag: str, source: str) -> pa.Table:
    src = _pick(table, src)
    if src == dst:
        return table
    if src not in table.column_names:
        raise InputError(f"no column {src!r} ({flag}); columns: {', '.join(table.column_names) or 'none'}", source)
    if dst in table.column_names:
        raise InputError(f"has both {src!r} ({flag}) and a {dst!r} column; rename one of them", source)
    return table.rename_columns([dst if c == src else c for c in table.column_names])


def _string_ids(col: pa.ChunkedArray, source: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
            pa.types.is_large_binary(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return col
    if pa.types.is_integer(t):
        return col.cast(pa.string())
    if pa.types.is_floating(t):
        vals = col.to_numpy(zero_copy_only=False)
        ok = np.isnan(vals) | (np.isfinite(vals) & (np.floor(vals) == vals) & (np.abs(vals) < 2**53))
        if ok.all():
            ints = pa.array(np.where(np.isnan(vals), 0, vals).astype(np.int64), mask=np.isnan(vals))
            return pa.chunked_array([ints.cast(pa.string())])
        bad = int(np.flatnonzero(~ok)[0])
        raise InputError(f"id {float(vals[bad])!r} is not a whole number; ids must be strings or integers", source, bad)
    raise InputError(f"column 'id' has type {t}; ids must be strings or integers (integers become their "
                     "decimal text)", source)


def map_columns(table: pa.Table, source: str, *, text_column=None, id_column=None,
                require_text: bool = True, id_prefix: str | None = None) -> pa.Table:
    """``table`` with ``text``/``id`` mapped, ids generated where absent and made strings.

    ``text_column`` / ``id_column``: a name, or a list of candidates (the first present is used).
    ``id_prefix``: the file name for generated ids (``None``: row numbers, for in-memory tables)."""
    if require_text or (text_column and _pick(table, text_column) in table.column_names):
        table = _rename(table, text_column or TEXT, TEXT, "--text-column", source)
    if id_column is not None:
        if isinstance(id_column, (list, tuple)) and ID in id_column and _pick(table, id_column) not in table.column_names:
            id_column = None  # the target's id defaults to the pool's id column, else "id", else generated
        else:
            table = _rename(table, id_column, ID, "--id-column", source)
    if ID not in table.column_names:
        if TEXT not in table.column_names and require_text:
            return table  # the validation names what is missing
        n = table.num_rows
        ids = [f"{id_prefix}:{i}" for i in range(n)] if id_prefix is not None else [str(i) for i in range(n)]
        return table.append_column(ID, pa.array(ids, pa.string()))
    i = table.column_names.index(ID)
    col = _string_ids(table.column(ID), source)
    if col is not table.column(ID):
        table = table.set_column(i, ID, col)
    return table


def generated_id_prefix(path: str) -> str:
    """The file-name part of generated ids: the base name with its extensions."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def check_generated_names(paths: list[str]) -> None:
    """Refuse to generate ids for files that share a base name (their ids would repeat)."""
    seen: dict[str, str] = {}
    for p in paths:
        b = generated_id_prefix(p)
        if b in seen:
            raise InputError(f"has no id column and shares its name with {seen[b]}, so generated ids "
                             f"('{b}:ROW') would repeat; name an id column (--id-column) or read them separately", p)
        seen[b] = p


__all__ = ["check_generated_names", "generated_id_prefix", "map_columns"]
