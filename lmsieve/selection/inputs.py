"""Inputs of a selection run: the selector by name, the pool under the bad-document policy, the target.

Every path into a selection (the API, ``lmsieve select``/``score``, the eval harness, the datatrove
steps) builds its selector and reads its documents here, so parameters and documents are checked
the same way everywhere (one-line errors naming the parameter, or the file and row).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from lmsieve.io.inputs import load_docs
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, Quarantine
from lmsieve.selectors.base import Selector, get_selector_class

def make_selector(method: str, **params) -> Selector:
    """A selector by name; parameters are checked against its signature first (one-line errors)."""
    from lmsieve.selectors.params import construct

    return construct(get_selector_class(method), params)


def load_target(target, name: str = "target", text_column: str | None = None,
                id_column: str | None = None) -> pa.Table:
    """The target documents (always validated strictly); an empty target is an error naming it."""
    tgt, files = load_docs(target, name=name, text_column=text_column, id_column=id_column)
    if tgt.num_rows == 0:
        where = ", ".join(f.path for f in files) or f"<{name}>"
        raise ConfigError(f"{where}: the target set is empty (0 documents)")
    return tgt


def feature_columns(sel: Selector) -> list[str]:
    """Columns a selector reads besides id/text whose non-finite values spoil a document."""
    return [c for c in (*sel.input_columns, *sel.get_params().get("score_columns", ())) if c not in (ID, TEXT)]


def load_pool(docs, method: str | Selector, params: dict | None = None, on_invalid="error",
              max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, **kw) -> tuple[pa.Table, list, Quarantine]:
    """(valid pool documents, files read, quarantine record) under the ``on_invalid`` policy
    (``"error"``, ``"quarantine"`` or a :class:`Quarantine` to fill); an empty pool is an error."""
    q = on_invalid if isinstance(on_invalid, Quarantine) else Quarantine(on_invalid, max_doc_bytes)
    sel = make_selector(method, **(params or {})) if isinstance(method, str) else method
    table, files = load_docs(docs, name="pool", quarantine=q, feature_columns=feature_columns(sel), **kw)
    if q.n_read == 0:
        raise InputError("the pool is empty (0 documents)", ", ".join(f.path for f in files) or "<pool>")
    return table, files, q


def drop_nonfinite(q: Quarantine, table: pa.Table, scores: np.ndarray, eligible: np.ndarray):
    """(table, scores, eligible) without the documents whose score is not finite (by policy)."""
    keep = q.screen_scores(scores, table.column(ID))
    if keep.all():
        return table, scores, eligible
    return table.filter(pa.array(keep)), scores[keep], eligible[keep]


def report_quarantine(q: Quarantine, quarantine_given: bool) -> None:
    if q.n and not quarantine_given:
        import logging

        logging.getLogger("lmsieve").warning("quarantined %d documents: %s (pass on_invalid=Quarantine(...) "
                                             "to get them)", q.n, q.counts())

def mapped_target(target, text_column, id_column):
    """The target loaded with a column mapping (each of several named targets alike)."""
    if text_column is None and id_column is None:
        return target
    if isinstance(target, dict):
        return {k: load_target(v, f"target {k}", text_column, id_column) for k, v in target.items()}
    return load_target(target, "target", text_column, id_column)



def table_digest(table: pa.Table) -> str:
    """sha256 of a table's ``id`` and ``text`` (Arrow IPC stream of those columns): the provenance and
    run key of documents passed as a table rather than files."""
    import pyarrow.ipc as ipc

    cols = [c for c in (ID, TEXT) if c in table.column_names]
    sink = pa.BufferOutputStream()
    t = table.select(cols).combine_chunks()
    with ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


__all__ = ["drop_nonfinite", "feature_columns", "load_pool", "load_target", "make_selector", "mapped_target",
           "report_quarantine", "table_digest"]
