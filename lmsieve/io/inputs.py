"""Turning whatever the user passes (paths, tables, DataFrames, lists of str) into a document table."""
from __future__ import annotations

import os

import pyarrow as pa

from lmsieve.io.columns import map_columns
from lmsieve.io.parquet import InputFile, read_documents
from lmsieve.schemas.document import ID, TEXT, validate_documents
from lmsieve.schemas.errors import InputError


class Paths(tuple):
    """Several paths/globs/URLs (a plain list of str would be read as texts)."""


def _is_pathlike(x) -> bool:
    if isinstance(x, (str, os.PathLike, Paths)):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(p, os.PathLike) for p in x)


def load_docs(
    docs,
    *,
    name: str = "input",
    columns: list[str] | None = None,
    require_text: bool = True,
    checksums: bool = False,
    quarantine=None,
    feature_columns=(),
    text_column: str | None = None,
    id_column: str | None = None,
) -> tuple[pa.Table, list[InputFile]]:
    """(validated document table, files read) from a path/glob/dir (str or PathLike, a list of
    PathLike, or :class:`Paths` of str/URLs), a pyarrow Table, a pandas DataFrame, or a sequence of str.

    A plain sequence of str is taken as texts, with ids "0", "1", ... (so its selection depends
    on its order; give ids for order-independent results). A str is always a path.

    ``quarantine`` (:class:`lmsieve.schemas.quarantine.Quarantine`) applies the ``on_invalid``
    policy to per-document problems (default: an error naming the file and row);
    ``feature_columns``: numeric columns whose non-finite values are such a problem.
    ``text_column`` / ``id_column``: where the text and the id are (:mod:`lmsieve.io.columns`;
    files of any format in :mod:`lmsieve.io.formats`).
    """
    if _is_pathlike(docs):
        return read_documents(docs, columns=columns, require_text=require_text, checksums=checksums,
                              quarantine=quarantine, feature_columns=feature_columns, text_column=text_column,
                              id_column=id_column)
    if isinstance(docs, pa.RecordBatch):
        docs = pa.Table.from_batches([docs])
    if not isinstance(docs, pa.Table):
        if hasattr(docs, "columns") and hasattr(docs, "iloc"):  # pandas DataFrame
            docs = pa.Table.from_pandas(docs, preserve_index=False)
        else:
            try:
                texts = list(docs)
            except TypeError:
                raise InputError(f"cannot read documents from a {type(docs).__name__}", name) from None
            if texts and not all(isinstance(t, str) for t in texts):
                bad = next(i for i, t in enumerate(texts) if not isinstance(t, str))
                raise InputError(f"expected str, got {type(texts[bad]).__name__}", name, bad)
            docs = pa.table({ID: pa.array([str(i) for i in range(len(texts))], pa.string()), TEXT: pa.array(texts, pa.string())})
    docs = map_columns(docs, f"<{name}>", text_column=text_column, id_column=id_column, require_text=require_text)
    table = validate_documents(docs, source=f"<{name}>", require_text=require_text, quarantine=quarantine,
                               feature_columns=feature_columns)
    return table, []
