"""One scoring run: every pool document's score against a target, optionally written to a Parquet file.

``lmsieve score`` and ``lmsieve.score(out=FILE)`` call :func:`score_run`. The file holds ``id,
score, eligible`` for every valid document (:data:`lmsieve.schemas.manifest.SCORES_SCHEMA`; with
decontamination also ``contaminated``, and in remove mode the contaminated are not eligible); with
``on_invalid="quarantine"`` the bad documents go to ``STEM.quarantine.parquet`` beside it. Both
files appear by rename.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lmsieve.io.inputs import load_docs
from lmsieve.io.parquet import write_table
from lmsieve.io.paths import check_out
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.manifest import scores_table
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, Quarantine
from lmsieve.selection.inputs import drop_nonfinite, load_pool, mapped_target, report_quarantine
from lmsieve.selection.scoring import fit_and_score


@dataclass
class ScoreResult:
    """Scores of the valid documents (``ids`` order), the quarantine record and contamination flags."""

    ids: pa.ChunkedArray
    scores: np.ndarray
    eligible: np.ndarray
    quarantine: Quarantine
    contaminated: np.ndarray | None = None
    path: str | None = None

    def table(self, mode: str | None = None) -> pa.Table:
        """The score file's table (``mode``: the decontamination mode, ``remove`` makes the
        contaminated ineligible)."""
        flat = self.scores if self.scores.ndim == 1 else self.scores.max(axis=1)
        eligible = self.eligible
        if self.contaminated is not None and mode == "remove":
            eligible = eligible & ~self.contaminated
        t = scores_table(self.ids, flat, eligible)
        if self.contaminated is not None:
            t = t.append_column("contaminated", pa.array(self.contaminated))
        return t


def quarantine_path(out: str) -> str:
    """``scores.parquet`` -> ``scores.quarantine.parquet`` (beside the scores)."""
    stem = out[:-len(".parquet")] if out.endswith(".parquet") else out
    return stem + ".quarantine.parquet"


def _write_atomic(table: pa.Table, path: str) -> None:
    write_table(table, path + ".tmp")
    os.replace(path + ".tmp", path)


def score_run(docs, method: str, target, *, params: dict | None = None, out: str | None = None, pool_sample=None,
              progress: bool = False, on_invalid="error", max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES,
              decontaminate=None, text_column=None, id_column=None, target_text_column=None,
              target_id_column=None) -> ScoreResult:
    """Fit ``method`` on ``target`` and score every valid document of ``docs``; with ``out`` write
    the score file (module docstring). ``decontaminate``: a ``Decontaminator`` or None."""
    params = dict(params or {})
    if out is not None:
        check_out(out, "file", flag="out", example="scores.parquet")
    pool, _, q = load_pool(docs, method, params, on_invalid, max_doc_bytes, columns=[ID, TEXT],
                           text_column=text_column, id_column=id_column)
    target = mapped_target(target, target_text_column or (text_column and [text_column, TEXT]),
                           target_id_column or (id_column and [id_column, ID]))
    if pool_sample is not None:
        pool_sample, _ = load_docs(pool_sample, name="pool sample")
    _, s, e = fit_and_score(method, target, pool, pool_sample, progress, **params)
    pool, s, e = drop_nonfinite(q, pool, s, e)
    flagged = decontaminate.flags(pool).flagged if decontaminate is not None else None
    res = ScoreResult(pool.column(ID), s, e, q, flagged)
    if out is None:
        report_quarantine(q, isinstance(on_invalid, Quarantine))
        return res
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    _write_atomic(res.table(decontaminate.mode if decontaminate is not None else None), out)
    if q.on_invalid == "quarantine":
        _write_atomic(q.table(), quarantine_path(out))
    res.path = out
    return res


__all__ = ["ScoreResult", "quarantine_path", "score_run"]
