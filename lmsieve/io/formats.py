"""The input formats lmsieve reads, one file at a time, into an Arrow table.

Formats (chosen by the file name, or by the first bytes when the name says nothing):

* **Parquet** (``.parquet``, ``.pq``);
* **JSON Lines** (``.jsonl``, ``.ndjson``, ``.json``), plain or compressed (``.gz``, ``.zst``/``.zstd``,
  ``.bz2``): one JSON object per line, as dolma (``documents/*.json.gz``: ``id``, ``text``, ``source``,
  ``added``, ``metadata``) and datatrove's ``JsonlWriter`` (``text``, ``id``, ``media``, ``metadata``)
  write them. Nested values (objects, arrays) become columns of JSON text (keys sorted), so files
  whose ``metadata`` differ still read into one table; a column whose scalar types differ between
  rows becomes text;
* **CSV / TSV** (``.csv``, ``.tsv``, optionally compressed): a header row; quoted fields may hold
  newlines; the text and id columns are read as strings;
* **Arrow** (``.arrow``): the shards of a Hugging Face ``datasets`` directory written by
  ``save_to_disk`` (the directory itself is expanded by :mod:`lmsieve.io.paths`).

Column mapping and ids are applied by :func:`lmsieve.io.columns.map_columns` after reading.
"""
from __future__ import annotations

import io
import json

import pyarrow as pa

from lmsieve.schemas.errors import InputError

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2"}
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
            ".csv": "csv", ".tsv": "tsv", ".arrow": "arrow"}
#: What the error messages say lmsieve reads.
EXPECTED = ("Parquet, JSON Lines (.jsonl/.json, optionally .gz/.zst: dolma and datatrove layouts), CSV/TSV, "
            "or a Hugging Face datasets directory (save_to_disk)")


def split_suffix(path: str) -> tuple[str | None, str | None]:
    """(format, compression) from a file name; ``(None, c)`` when the name does not say."""
    name = path.rsplit("/", 1)[-1].lower()
    comp = None
    for suf, c in COMPRESSIONS.items():
        if name.endswith(suf):
            comp, name = c, name[: -len(suf)]
            break
    for suf, fmt in SUFFIXES.items():
        if name.endswith(suf):
            return fmt, comp
    return None, comp


def is_input_name(path: str, in_directory: bool = False) -> bool:
    """Whether a file found in a directory is read as input. Plain ``.json`` is left out there
    (``manifest.json``, ``dataset_info.json``), as are ``.arrow`` shards outside a datasets dir;
    ``.json.gz``/``.json.zst`` (dolma) are read."""
    fmt, comp = split_suffix(path)
    if fmt is None:
        return False
    if in_directory:
        lower = path.lower()
        if fmt == "arrow" or (fmt == "jsonl" and comp is None and lower.endswith(".json")):
            return False
    return True


def _sniff(head: bytes) -> tuple[str | None, str | None]:
    if head.startswith(b"PAR1"):
        return "parquet", None
    if head.startswith(b"\x1f\x8b"):
        return None, "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return None, "zstd"
    if head.startswith(b"BZh"):
        return None, "bz2"
    if head.lstrip()[:1] == b"{":
        return "jsonl", None
    return None, None


def _decompress(raw: bytes, comp: str | None, path: str) -> bytes:
    if comp is None:
        return raw
    try:
        if comp == "bz2":
            import bz2

            return bz2.decompress(raw)
        if comp == "gzip":
            import gzip

            return gzip.decompress(raw)
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad file
        raise InputError(f"not readable {comp}-compressed data ({exc})", path) from None


def read_any(path: str, columns: list[str] | None = None, string_columns: tuple[str, ...] = ()) -> pa.Table:
    """One input file as read (no mapping or validation); errors name the file and the format
    that was expected. ``columns``: keep only these (those present); ``string_columns``: CSV
    columns to read as text whatever they look like."""
    from lmsieve.io.paths import open_file

    fmt, comp = split_suffix(path)
    if fmt == "parquet":
        from lmsieve.io.parquet import read_parquet_file

        return read_parquet_file(path, columns)
    try:
        with open_file(path) as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    if fmt is None:
        sniffed, c2 = _sniff(raw[:16])
        comp = comp or c2
        if sniffed == "parquet":
            from lmsieve.io.parquet import read_parquet_file

            return read_parquet_file(path, columns)
        if c2 is not None:
            raw = _decompress(raw, c2, path)
            sniffed = _sniff(raw[:16])[0]
        if sniffed != "jsonl":
            raise InputError(f"unrecognised file format (expected {EXPECTED})", path)
        fmt, comp = "jsonl", None
    raw = _decompress(raw, comp, path)
    if fmt == "jsonl":
        t = read_jsonl_bytes(raw, path)
    elif fmt in ("csv", "tsv"):
        t = read_csv_bytes(raw, path, "\t" if fmt == "tsv" else ",", string_columns)
    else:
        t = read_arrow_bytes(raw, path)
    if columns is not None:
        t = t.select([c for c in t.column_names if c in columns])
    return t


def _column(values: list) -> pa.Array:
    """One column from JSON values: nested -> JSON text; mixed scalar types -> text."""
    if any(isinstance(v, (dict, list)) for v in values):
        return pa.array([None if v is None else json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values],
                        pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
                        pa.string())


def read_jsonl_bytes(raw: bytes, path: str) -> pa.Table:
    """JSON Lines: one object per line (blank lines skipped; rows count non-blank lines from 0)."""
    records, keys = [], {}
    row = 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            hint = " (expected JSON Lines: one JSON object per line)"
            if row == 0 and line.lstrip()[:1] == b"[":
                hint = " (a JSON array; expected JSON Lines: one JSON object per line)"
            raise InputError(f"not valid JSON ({exc.__class__.__name__}: {exc}){hint}", path, row) from None
        if not isinstance(rec, dict):
            kind = {"list": "array", "str": "string", "int": "number", "float": "number"}.get(type(rec).__name__,
                                                                                            type(rec).__name__)
            raise InputError(f"a JSON {kind}; expected JSON Lines (one JSON object per line)", path, row)
        for k in rec:
            keys.setdefault(k, None)
        records.append(rec)
        row += 1
    if not records:
        return pa.table({})
    return pa.table({k: _column([r.get(k) for r in records]) for k in keys})


def read_csv_bytes(raw: bytes, path: str, delimiter: str, string_columns=()) -> pa.Table:
    import pyarrow.csv as pcsv

    head = raw.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
    names = [n.strip('"') for n in head.split(delimiter)]
    types = {c: pa.string() for c in string_columns if c in names}
    try:
        return pcsv.read_csv(io.BytesIO(raw), parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                             convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    except (pa.ArrowException, OSError) as exc:
        what = "TSV" if delimiter == "\t" else "CSV"
        raise InputError(f"not readable {what} with a header row ({exc})", path) from None


def read_arrow_bytes(raw: bytes, path: str) -> pa.Table:
    """An Arrow IPC stream (what ``datasets`` writes) or file."""
    import pyarrow.ipc as ipc

    for opener in (ipc.open_stream, ipc.open_file):
        try:
            return opener(pa.BufferReader(raw)).read_all()
        except (pa.ArrowException, OSError):
            continue
    raise InputError(f"not a readable Arrow (Hugging Face datasets) file (expected {EXPECTED})", path)


__all__ = ["EXPECTED", "is_input_name", "read_any", "read_jsonl_bytes", "split_suffix"]
