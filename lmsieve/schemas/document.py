"""The document schema and its single validation entry point.

A document is a row with a unique, non-null string ``id`` and a non-null string ``text``. The
optional ``domain`` and ``source`` columns are strings; every other column is free metadata and is
carried through untouched. Empty text is valid (it gets a defined score, not a crash).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.schemas.errors import InputError
from lmsieve.schemas.quarantine import Quarantine

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


def _is_text_column(t: pa.DataType) -> bool:
    """``string`` or ``binary`` (read as UTF-8 row by row: a bad row is a per-document problem)."""
    return _is_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)


def check_columns(schema: pa.Schema, source: str = "<input>", require_text: bool = True) -> None:
    """File-level checks (always errors naming ``source``): required columns present, right types."""
    required = (ID, TEXT) if require_text else (ID,)
    for col in required:
        if col not in schema.names:
            flag = "--text-column" if col == TEXT else "--id-column"
            raise InputError(f"missing required column {col!r} (columns: {', '.join(schema.names)}; "
                             f"name yours with {flag})", source)
    for col in required + tuple(c for c in OPTIONAL_STRING_COLUMNS if c in schema.names):
        t = schema.field(col).type
        if not (_is_text_column(t) if col in required else _is_string(t)):
            raise InputError(f"column {col!r} must be string, got {t}", source)


def validate_documents(
    table: pa.Table,
    source: str = "<input>",
    require_text: bool = True,
    row_offset: int = 0,
    check_unique: bool = True,
    quarantine=None,
    feature_columns=(),
) -> pa.Table:
    """Check a document table and return it with ``id``/``text`` as plain strings.

    File-level problems (missing column, wrong type) raise :class:`InputError` naming ``source``.
    Per-document problems (null id or text, invalid UTF-8, text over ``max_doc_bytes``, non-finite
    ``feature_columns`` values, repeated ids) go through ``quarantine``
    (:class:`lmsieve.schemas.quarantine.Quarantine`; default: the "error" policy, which raises
    naming ``source`` and the (0-based) row of the first problem); quarantined rows are dropped.
    """
    check_columns(table.schema, source, require_text)
    q = quarantine if quarantine is not None else Quarantine("error")
    return q.screen(table, source, feature_columns=feature_columns, check_unique=check_unique,
                    require_text=require_text, row_offset=row_offset)


def first_duplicate(ids: pa.ChunkedArray | pa.Array) -> tuple[int, int]:
    """(row of the first repeated id, row where that id was first seen)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(ids.to_pylist()):
        if v in seen:
            return i, seen[v]
        seen[v] = i
    raise ValueError("no duplicate")


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
