"""The document schema and its single validation entry point.

A document is a row with a unique, non-null string ``id`` and a non-null string ``text``. The
optional ``domain`` and ``source`` columns are strings; every other column is free metadata and is
carried through untouched. Empty text is valid (it gets a defined score, not a crash).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.schemas.errors import InputError

ID = "id"
TEXT = "text"
DOMAIN = "domain"
SOURCE = "source"
REQUIRED_COLUMNS = (ID, TEXT)
OPTIONAL_STRING_COLUMNS = (DOMAIN, SOURCE)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(DOMAIN, pa.string()),
        pa.field(SOURCE, pa.string()),
    ]
)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    idx = pc.index(mask, True).as_py()
    return None if idx is None or idx < 0 else idx


def validate_documents(
    table: pa.Table,
    source: str = "<input>",
    require_text: bool = True,
    row_offset: int = 0,
    check_unique: bool = True,
) -> pa.Table:
    """Check a document table and return it with ``id``/``text`` as plain strings.

    Raises :class:`InputError` naming ``source`` and the (0-based) row of the first problem:
    missing column, wrong type, null id or text, invalid UTF-8, duplicate ids.
    """
    required = (ID, TEXT) if require_text else (ID,)
    for col in required:
        if col not in table.column_names:
            raise InputError(
                f"missing required column {col!r} (columns: {', '.join(table.column_names)})", source
            )
    for col in required + tuple(c for c in OPTIONAL_STRING_COLUMNS if c in table.column_names):
        t = table.schema.field(col).type
        if not _is_string(t):
            raise InputError(f"column {col!r} must be string, got {t}", source)
    cols = {}
    for col in required:
        arr = table.column(col)
        if arr.type != pa.string():
            arr = arr.cast(pa.string())
        if arr.null_count:
            row = _first_true(pc.is_null(arr))
            raise InputError(f"null {col!r}", source, row_offset + row)
        for chunk_start, chunk in _chunks_with_offsets(arr):
            try:
                chunk.validate(full=True)
            except pa.ArrowInvalid as exc:
                row = _first_invalid_utf8(chunk)
                raise InputError(f"invalid UTF-8 in {col!r} ({exc})", source, row_offset + chunk_start + (row or 0)) from None
        cols[col] = arr
    if check_unique and table.num_rows:
        ids = cols[ID]
        if pc.count_distinct(ids).as_py() != table.num_rows:
            row, first = first_duplicate(ids)
            raise InputError(f"duplicate id {ids[row].as_py()!r} (first seen at row {row_offset + first})", source, row_offset + row)
    for col, arr in cols.items():
        table = table.set_column(table.schema.get_field_index(col), col, arr)
    return table


def first_duplicate(ids: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    """(row of the first repeated id, row where that id was first seen)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(ids.to_pylist()):
        if v in seen:
            return i, seen[v]
        seen[v] = i
    raise ValueError("no duplicate")


def _chunks_with_offsets(arr: pa.ChunkedArray | pa.Array):
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    start = 0
    for c in chunks:
        yield start, c
        start += len(c)


def _first_invalid_utf8(chunk: pa.Array) -> int | None:
    binary = chunk.cast(pa.binary())
    for i, b in enumerate(binary.to_pylist()):
        if b is None:
            continue
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return i
    return None


def text_array(batch) -> pa.Array:
    """The ``text`` column of a batch as one contiguous string array.

    Accepts a pyarrow Table or RecordBatch (with a ``text`` column), a pandas DataFrame, a
    sequence of str, or a string array. This is how selectors and features read text.
    """
    if isinstance(batch, (pa.Array, pa.ChunkedArray)):
        arr = batch
    elif isinstance(batch, (pa.Table, pa.RecordBatch)):
        if TEXT not in batch.schema.names:
            raise InputError(f"missing required column {TEXT!r}")
        arr = batch.column(TEXT)
    elif hasattr(batch, "columns") and hasattr(batch, "__getitem__"):  # pandas DataFrame
        arr = pa.array(batch[TEXT], type=pa.string())
    elif isinstance(batch, str):
        raise TypeError("expected a batch of documents, got one str")
    else:
        arr = pa.array(list(batch), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not _is_string(arr.type) or arr.type != pa.string():
        arr = arr.cast(pa.string())
    if arr.null_count:
        raise InputError("null 'text'", None, _first_true(pc.is_null(arr)))
    return arr
