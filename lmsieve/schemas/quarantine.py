"""Per-document problems, found once and handled by one policy (issue #9, "bad input, accounted for").

A *per-document* problem spoils one row, not its file: a null or non-UTF-8 ``id`` or ``text``
(a ``binary`` Parquet column is read as UTF-8 text, row by row), a text over ``max_doc_bytes``
(10 MiB by default), a non-finite value in a numeric feature column the method reads, a repeated
id (every occurrence after the first; the first stays), and a non-finite score. The policy
``on_invalid`` decides what happens:

* ``"error"`` (default): stop with an :class:`InputError` naming the file and the row of the first
  problem (one line on the CLI, exit code 2);
* ``"quarantine"``: drop the row from the run and record it, with its reason, in the quarantine
  table (``id``, ``source`` file, ``row`` in that file, ``index`` in the whole input, ``reason``),
  written as ``quarantine.parquet`` beside the outputs and counted per reason in the manifest, so
  ``input = selected + rejected + quarantined``.

Problems of a whole file (unreadable or truncated Parquet, a missing ``id``/``text`` column, a
column of the wrong type, an empty pool or target) are always errors naming the file.

One implementation for the API, the CLI and the Beam jobs: :func:`row_problems` finds the
problems of a table with Arrow kernels (binary search for invalid UTF-8, ``index_in`` for repeated
ids), :class:`Quarantine` applies the policy and keeps the record.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.schemas.errors import ConfigError, InputError

POLICIES = ("error", "quarantine")
DEFAULT_MAX_DOC_BYTES = 10 * 1024 * 1024
QUARANTINE_FILE = "quarantine.parquet"
QUARANTINE_SCHEMA = pa.schema([
    pa.field("id", pa.string()), pa.field("source", pa.string()), pa.field("row", pa.int64()),
    pa.field("index", pa.int64()), pa.field("reason", pa.string()),
])

# Reasons: stable strings (they are manifest keys).
NULL_ID, NULL_TEXT = "null id", "null text"
BAD_UTF8_ID, BAD_UTF8_TEXT = "invalid UTF-8 in id", "invalid UTF-8 in text"
TOO_LARGE = "text too large"
NONFINITE_FEATURE = "non-finite feature"
DUPLICATE_ID = "duplicate id"
NONFINITE_SCORE = "non-finite score"


def check_policy(on_invalid: str) -> str:
    if on_invalid not in POLICIES:
        raise ConfigError(f"on_invalid: must be one of {', '.join(POLICIES)}, got {on_invalid!r}")
    return on_invalid


def as_utf8_column(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous ``string`` array; ``binary`` is reinterpreted (not validated: see
    :func:`invalid_utf8_rows`)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        arr = arr.cast(pa.large_binary()).view(pa.large_string()) if not pa.types.is_binary(t) else arr.view(pa.string())
    if arr.type != pa.string():
        arr = arr.cast(pa.string(), safe=False)
    return arr


def invalid_utf8_rows(arr: pa.Array) -> np.ndarray:
    """Rows of a string array that are not valid UTF-8 (bisection over Arrow's validator)."""
    n = len(arr)
    bad = np.zeros(n, dtype=bool)
    stack = [(0, n)]
    while stack:
        a, b = stack.pop()
        if b <= a:
            continue
        try:
            arr.slice(a, b - a).validate(full=True)
        except pa.ArrowInvalid:
            if b - a == 1:
                bad[a] = True
            else:
                m = (a + b) // 2
                stack += [(m, b), (a, m)]
    return bad


def duplicate_rows(ids: pa.Array, candidates: np.ndarray | None = None) -> np.ndarray:
    """Rows whose id already appeared on an earlier row (among ``candidates`` rows, if given)."""
    n = len(ids)
    rows = np.arange(n) if candidates is None else np.flatnonzero(candidates)
    sub = ids if candidates is None else ids.filter(pa.array(candidates))
    first = pc.index_in(sub, value_set=sub).to_numpy(zero_copy_only=False)
    dup = np.zeros(n, dtype=bool)
    dup[rows[first != np.arange(len(sub))]] = True
    return dup


def _is_float(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_decimal(t)


def row_problems(table: pa.Table, *, max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES,
                 feature_columns=(), check_unique: bool = True, require_text: bool = True) -> np.ndarray:
    """The first problem of every row (a reason string), or ``None`` where the row is valid.

    ``id`` and ``text`` must be present (string or binary): :func:`check_columns` first."""
    n = table.num_rows
    why = np.full(n, None, dtype=object)

    def flag(mask, reason):
        mask = np.asarray(mask, dtype=bool) & (why == None)  # noqa: E711 - elementwise
        why[mask] = reason

    cols = ("id", "text") if require_text else ("id",)
    arrays = {c: as_utf8_column(table.column(c)) for c in cols}
    for c, (null_r, utf8_r) in zip(cols, ((NULL_ID, BAD_UTF8_ID), (NULL_TEXT, BAD_UTF8_TEXT))):
        arr = arrays[c]
        if arr.null_count:
            flag(pc.is_null(arr).to_numpy(zero_copy_only=False), null_r)
        flag(invalid_utf8_rows(arr), utf8_r)
    if require_text and max_doc_bytes is not None and n:
        flag(pc.fill_null(pc.greater(pc.binary_length(arrays["text"]), max_doc_bytes), False)
             .to_numpy(zero_copy_only=False), TOO_LARGE)
    for c in feature_columns:
        if c in table.column_names and _is_float(table.schema.field(c).type):
            v = table.column(c).to_numpy().astype(np.float64) if n else np.zeros(0)
            flag(~np.isfinite(v), NONFINITE_FEATURE)
    if check_unique and n:
        ok = why == None  # noqa: E711
        if ok.any():
            flag(duplicate_rows(arrays["id"], ok), DUPLICATE_ID)
    return why


def describe(reason: str, table: pa.Table, row: int, first_seen: str | None = None,
             max_doc_bytes: int | None = None) -> str:
    """The error message for one problem row (the one-line CLI message, after file and row)."""
    if reason in (NULL_ID, NULL_TEXT):
        return f"null {reason.split()[1]!r}"
    if reason in (BAD_UTF8_ID, BAD_UTF8_TEXT):
        return f"invalid UTF-8 in {reason.rsplit(' ', 1)[1]!r}"
    if reason == TOO_LARGE:
        size = pc.binary_length(as_utf8_column(table.column("text").slice(row, 1)))[0].as_py()
        return f"text too large ({size:,} bytes > max_doc_bytes {max_doc_bytes:,}; or use on_invalid=quarantine)"
    if reason == DUPLICATE_ID:
        return f"duplicate id {table.column('id')[row].as_py()!r} ({first_seen})"
    return reason


class Quarantine:
    """Applies the ``on_invalid`` policy and keeps the quarantined rows of one run.

    ``screen`` one table per input file (in input order), then ``screen_scores`` once scored;
    ``table()`` and ``counts()`` are what the outputs and the manifest hold. ``kept_index_`` maps
    the rows kept so far to their index in the whole input (for outputs aligned with it).
    """

    def __init__(self, on_invalid: str = "error", max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES):
        self.on_invalid = check_policy(on_invalid)
        if max_doc_bytes is not None and (not isinstance(max_doc_bytes, (int, np.integer)) or max_doc_bytes < 0):
            raise ConfigError(f"max_doc_bytes: must be a non-negative integer, got {max_doc_bytes!r}")
        self.max_doc_bytes = max_doc_bytes
        self._parts: list[pa.Table] = []
        self._sources: list[tuple[str, int]] = []  # (source, first input index)
        self.n_read = 0
        self.kept_index_ = np.zeros(0, dtype=np.int64)

    # -- screening ----------------------------------------------------------------------------
    def check(self, table: pa.Table, source: str, *, feature_columns=(), check_unique: bool = True,
              require_text: bool = True, row_offset: int = 0) -> np.ndarray:
        """Valid-row mask of ``table`` (rows ``row_offset``... of ``source``); counts it as read,
        records its problem rows, or raises an InputError for the first (by policy)."""
        why = row_problems(table, max_doc_bytes=self.max_doc_bytes if require_text else None,
                           feature_columns=feature_columns, check_unique=check_unique, require_text=require_text)
        bad = why != None  # noqa: E711
        start = self.n_read
        self._sources.append((source, start - row_offset))
        self.n_read += table.num_rows
        if bad.any():
            rows = np.flatnonzero(bad)
            if self.on_invalid == "error":
                r = int(rows[0])
                first = None
                if why[r] == DUPLICATE_ID:
                    ids = as_utf8_column(table.column("id"))
                    first = f"first seen at row {row_offset + int(pc.index(ids, ids[r]).as_py())}"
                raise InputError(describe(why[r], table, r, first, self.max_doc_bytes), source, row_offset + r)
            self._record(table.column("id"), source, rows, why[rows], row_offset, start)
        self.kept_index_ = np.concatenate([self.kept_index_, start + np.flatnonzero(~bad)])
        return ~bad

    def screen(self, table: pa.Table, source: str, *, feature_columns=(), check_unique: bool = True,
               require_text: bool = True, row_offset: int = 0) -> pa.Table:
        """``table`` without its problem rows (see :meth:`check`), ``id``/``text`` as plain strings."""
        valid = self.check(table, source, feature_columns=feature_columns, check_unique=check_unique,
                           require_text=require_text, row_offset=row_offset)
        for c in ("id", "text") if require_text else ("id",):
            table = table.set_column(table.schema.get_field_index(c), c, as_utf8_column(table.column(c)))
        return table if valid.all() else table.filter(pa.array(valid))

    def drop(self, positions: np.ndarray, reason: str, message: str | None = None, ids=None) -> np.ndarray:
        """Quarantine kept rows by their position among the kept rows (e.g. repeated ids across
        files, non-finite scores); returns the keep mask over the kept rows."""
        positions = np.asarray(positions, dtype=np.int64)
        keep = np.ones(len(self.kept_index_), dtype=bool)
        if not len(positions):
            return keep
        gidx = self.kept_index_[positions]
        if self.on_invalid == "error":
            src, row = self.locate(int(gidx[0]))
            raise InputError(message or reason, src, row)
        starts = np.array([st for _, st in self._sources], dtype=np.int64)
        k = np.searchsorted(starts, gidx, side="right") - 1
        self._parts.append(pa.table({
            "id": pa.array([None] * len(gidx) if ids is None else list(ids), pa.string()),
            "source": pa.array([self._sources[j][0] for j in k.tolist()], pa.string()),
            "row": pa.array(gidx - starts[k], pa.int64()), "index": pa.array(gidx, pa.int64()),
            "reason": pa.array([reason] * len(gidx), pa.string())}, schema=QUARANTINE_SCHEMA))
        keep[positions] = False
        self.kept_index_ = self.kept_index_[keep]
        return keep

    def screen_scores(self, scores: np.ndarray, ids) -> np.ndarray:
        """Keep mask over the kept rows: non-finite scores are a per-document problem."""
        s = np.asarray(scores, dtype=np.float64)
        bad = ~np.isfinite(s) if s.ndim == 1 else ~np.isfinite(s).all(axis=1)
        pos = np.flatnonzero(bad)
        if not len(pos):
            return np.ones(len(s), dtype=bool)
        first = s[pos[0]] if s.ndim == 1 else s[pos[0]][~np.isfinite(s[pos[0]])][0]
        bad_ids = [ids[int(p)].as_py() if hasattr(ids[int(p)], "as_py") else ids[int(p)] for p in pos]
        return self.drop(pos, NONFINITE_SCORE, f"non-finite score {first} (id {bad_ids[0]!r})", bad_ids)

    def locate(self, index: int) -> tuple[str, int]:
        """(source, row in that source) of an index into the whole input."""
        starts = [s for _, s in self._sources]
        k = int(np.searchsorted(starts, index, side="right")) - 1
        return self._sources[k][0], index - self._sources[k][1]

    def _record(self, ids, source: str, rows: np.ndarray, reasons, row_offset: int, start: int) -> None:
        ids = as_utf8_column(ids).take(pa.array(rows))
        bad = invalid_utf8_rows(ids)
        if bad.any():  # an id that is not UTF-8 is recorded as null (its row still names it)
            ids = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), ids)
        self._parts.append(pa.table({
            "id": ids, "source": pa.array([source] * len(rows), pa.string()),
            "row": pa.array(rows + row_offset, pa.int64()), "index": pa.array(rows + start, pa.int64()),
            "reason": pa.array(list(reasons), pa.string())}, schema=QUARANTINE_SCHEMA))

    # -- results ------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return sum(p.num_rows for p in self._parts)

    def table(self) -> pa.Table:
        """The quarantined rows, sorted by input index."""
        if not self._parts:
            return QUARANTINE_SCHEMA.empty_table()
        t = pa.concat_tables(self._parts)
        return t.take(pc.sort_indices(t, [("index", "ascending")]))

    def counts(self) -> dict[str, int]:
        """Quarantined documents per reason (sorted by reason)."""
        c = Counter(self.table().column("reason").to_pylist())
        return dict(sorted(c.items()))


def manifest_counts(n_input: int, n_selected: int, quarantined: dict[str, int]) -> dict:
    """The manifest's accounting: ``input = selected + rejected + quarantined``.

    ``invalid`` is the same number as ``quarantined`` (the name manifest_version 1 readers know)."""
    n_q = int(sum(quarantined.values()))
    return {"input": int(n_input), "selected": int(n_selected), "rejected": int(n_input - n_q - n_selected),
            "quarantined": n_q, "invalid": n_q, "quarantined_by_reason": dict(sorted(quarantined.items()))}


__all__ = ["DEFAULT_MAX_DOC_BYTES", "POLICIES", "QUARANTINE_FILE", "QUARANTINE_SCHEMA", "Quarantine", "as_utf8_column",
           "check_policy", "duplicate_rows", "invalid_utf8_rows", "manifest_counts", "row_problems"]
