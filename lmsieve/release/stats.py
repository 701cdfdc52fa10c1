"""Counts a release records and ``lmsieve verify`` recomputes: documents, characters, UTF-8 bytes,
tokens, and documents per domain and per licence.

**Tokens** are whitespace-delimited words: maximal runs of characters other than the ASCII
whitespace ``\\t \\n \\v \\f \\r`` and space (the regex :data:`TOKEN_PATTERN`, counted by Arrow's
RE2 ``count_substring_regex``, vectorised). This is tokenizer-independent and cheap; it is not a
BPE token count (a GPT-2-style BPE gives roughly 1.3-1.5 tokens per English word and more on
code). Characters are Unicode code points (``utf8_length``), as in the selection's manifest.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.schemas.document import DOMAIN, TEXT

TOKEN_PATTERN = r"[^\t\n\v\f\r ]+"
TOKENS_DEFINITION = ("whitespace-delimited words: maximal runs of characters other than ASCII whitespace "
                     f"(regex {TOKEN_PATTERN})")
#: Per-document licence columns carried into the counts and the card (first one present wins).
LICENSE_COLUMNS = ("license", "licence")
NONE = "<none>"


def license_column(schema: pa.Schema) -> str | None:
    return next((c for c in LICENSE_COLUMNS if c in schema.names), None)


def value_counts(column) -> dict[str, int]:
    """{value: documents}, sorted by value; nulls count as ``<none>`` (as the selection manifest does)."""
    out: dict[str, int] = {}
    for item in pc.value_counts(column).to_pylist():
        key = NONE if item["values"] is None else str(item["values"])
        out[key] = out.get(key, 0) + int(item["counts"])
    return dict(sorted(out.items()))


def _sum(arr) -> int:
    return int(pc.sum(arr).as_py() or 0)


def text_counts(table: pa.Table) -> dict[str, int]:
    text = table.column(TEXT)
    return {
        "documents": table.num_rows,
        "characters": _sum(pc.utf8_length(text)),
        "utf8_bytes": _sum(pc.binary_length(text)),
        "tokens": _sum(pc.count_substring_regex(text, TOKEN_PATTERN)),
    }


def release_counts(table: pa.Table) -> dict:
    """Counts of the released documents; ``per_domain``/``per_license`` only when the column exists."""
    out: dict = text_counts(table)
    if DOMAIN in table.column_names:
        out["per_domain"] = value_counts(table.column(DOMAIN))
    lic = license_column(table.schema)
    if lic is not None:
        out["per_license"] = value_counts(table.column(lic))
    return out


def add_counts(parts: list[dict]) -> dict:
    """Sum per-shard :func:`release_counts` (what verify does, one shard in memory at a time)."""
    total: dict = {}
    for c in parts:
        for k, v in c.items():
            if isinstance(v, dict):
                d = total.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            else:
                total[k] = total.get(k, 0) + v
    return {k: dict(sorted(v.items())) if isinstance(v, dict) else v for k, v in sorted(total.items())}


__all__ = ["LICENSE_COLUMNS", "TOKENS_DEFINITION", "TOKEN_PATTERN", "add_counts", "license_column",
           "release_counts", "text_counts", "value_counts"]
