"""Between datatrove ``Document``s and lmsieve's Arrow batches and Parquet shards.

datatrove's Parquet reader turns a row into ``Document(id, text, metadata=<every other column> +
file_path)``; :class:`ColumnsAdapter` turns it back into exactly the input's columns, so shards
written by a datatrove pipeline are lmsieve documents again (``lmsieve select`` reads them).
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from lmsieve.io.paths import expand_paths, open_file
from lmsieve.schemas.document import ID, TEXT, check_columns
from lmsieve.schemas.errors import InputError


def docs_to_table(docs, columns: tuple[str, ...] = (TEXT,)) -> pa.Table:
    """An Arrow batch with ``id`` and ``columns`` (``text`` from ``doc.text``, others from metadata)."""
    cols = {ID: pa.array([d.id for d in docs], pa.string())}
    for c in columns:
        if c == ID:
            continue
        if c == TEXT:
            cols[TEXT] = pa.array([d.text for d in docs], pa.string())
            continue
        missing = next((d for d in docs if c not in d.metadata), None)
        if missing is not None:
            raise InputError(f"document {missing.id!r} has no metadata field {c!r}, which the selector reads",
                             missing.metadata.get("file_path"))
        cols[c] = pa.array([d.metadata[c] for d in docs])
    return pa.table(cols)


@dataclass
class ColumnsAdapter:
    """A datatrove writer adapter that writes ``id``, ``text`` and the named metadata columns.

    Metadata datatrove adds (``file_path``) and anything else not named is left out; a named column
    missing from a document is written as null. Pass as ``ParquetWriter(adapter=...)``.
    """

    columns: tuple[str, ...]

    def __call__(self, writer, document) -> dict:
        out = {ID: document.id, TEXT: document.text}
        for c in self.columns:
            if c not in (ID, TEXT):
                out[c] = document.metadata.get(c)
        return out


@dataclass
class ParquetInput:
    """lmsieve Parquet shards as datatrove sees them: a folder, a paths file and a schema."""

    folder: str
    relative_paths: list[str]
    schema: pa.Schema
    rows: int

    def write_paths_file(self, path: str) -> str:
        with open(path, "w") as f:
            f.write("".join(p + "\n" for p in self.relative_paths))
        return path


def inspect_input(spec) -> ParquetInput:
    """Expand a file/directory/glob (or list) like ``lmsieve select`` does and check each footer:
    ``id``/``text`` present and strings, one schema for all (errors name the file)."""
    paths = expand_paths(spec, parquet_only=True)
    schema, rows = None, 0
    for p in paths:
        try:
            with open_file(p) as f:
                pf = pq.ParquetFile(f)
                s, n = pf.schema_arrow, pf.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"not a readable Parquet file ({exc})", p) from None
        check_columns(s, p)
        if not (pa.types.is_string(s.field(TEXT).type) or pa.types.is_large_string(s.field(TEXT).type)):
            raise InputError(f"column 'text' must be string for datatrove, got {s.field(TEXT).type}", p)
        if schema is None:
            schema = s.remove_metadata()
        elif not s.remove_metadata().equals(schema):
            raise InputError(f"schema differs from {paths[0]}'s: {s.remove_metadata()} vs {schema}", p)
        rows += n
    proto, sep, _ = paths[0].partition("://")
    strip = (lambda p: p.partition("://")[2]) if sep else (lambda p: os.path.abspath(p))
    local = [strip(p) for p in paths]
    folder = posixpath.dirname(local[0]) if len(local) == 1 else posixpath.commonpath(local)
    rel = [posixpath.relpath(p, folder) for p in local]
    return ParquetInput(f"{proto}://{folder}" if sep else folder, rel, schema, rows)
