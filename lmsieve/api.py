"""In-process API: score or select one corpus against a target, optionally writing the run's files.

``select(..., out=DIR)`` and ``score(..., out=FILE)`` run the library's selection and scoring runs
(:mod:`lmsieve.selection.run`, :mod:`lmsieve.selection.score_run`): the same output directory,
manifest and resumable steps as ``lmsieve select`` / ``lmsieve score``, which call them too.
The primitives (selector construction, loading, batched scoring, sampling) live in
:mod:`lmsieve.selection` and are re-exported here.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from lmsieve.io.inputs import load_docs
from lmsieve.sampling.select import Budget  # noqa: F401  (re-exported)
from lmsieve.schemas.document import ID
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES
from lmsieve.selection.inputs import (drop_nonfinite, feature_columns, load_pool, load_target,  # noqa: F401
                                      make_selector)
from lmsieve.selection.sample import Selection, make_budget, run_selection  # noqa: F401
from lmsieve.selection.scoring import (SCORE_BATCH_ROWS, fit_and_score, fit_selector, score_batch_rows,  # noqa: F401
                                       score_table)


def _decontaminator(spec, mode: str):
    """``decontaminate=`` of :func:`score`/:func:`select`: an index, a saved index or evaluation files."""
    if spec is None:
        return None
    from lmsieve.features.decontam.apply import Decontaminator

    return spec if isinstance(spec, Decontaminator) else Decontaminator.from_spec(spec, mode)


def decontamination_index(eval_sets, **kw):
    """An overlap index of evaluation sets (paths ``[NAME=]PATH`` or ``{name: table}``); ``n``,
    ``min_words``, ``columns``, ``bloom_fpr`` as ``lmsieve decontaminate build``."""
    from lmsieve.features.decontam import build_index

    return build_index(eval_sets, **kw)


def contamination(docs, index, *, min_overlap: int = 1, min_fraction: float | None = None) -> pa.Table:
    """Per document: ``id``, ``contaminated`` and the evaluation sets that contaminate it
    (``index``: a :func:`decontamination_index`, a saved index directory or evaluation files)."""
    from lmsieve.features.decontam.apply import Decontaminator

    table, _ = load_docs(docs, name="docs")
    d = Decontaminator.from_spec(index, "report", min_overlap, min_fraction)
    f = d.flags(table)
    names = d.index.set_names
    sets = [[n for s, n in enumerate(names) if (m >> s) & 1] for m in f.sets.tolist()]
    return pa.table({ID: table.column(ID), "contaminated": pa.array(f.flagged),
                     "eval_sets": pa.array(sets, pa.list_(pa.string()))})


def score(docs, method: str, target, *, pool_sample=None, progress: bool = False, on_invalid="error",
          max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, decontaminate=None, decontaminate_mode="remove",
          text_column: str | None = None, id_column: str | None = None, target_text_column: str | None = None,
          target_id_column: str | None = None, out: str | None = None, **params) -> np.ndarray:
    """Scores aligned with ``docs`` (higher is better unless the method says otherwise).

    Ineligible documents (e.g. DSIR's under-100-word ones) still get their score; use
    :func:`select` for selection, which excludes them. ``on_invalid``: "error" (default: a bad
    document raises InputError naming its file and row), "quarantine" (its score is NaN and a
    warning counts them) or a :class:`lmsieve.schemas.quarantine.Quarantine` to fill.
    ``decontaminate``: an index or evaluation files; in "remove" mode a contaminated document's
    score is NaN (see :func:`contamination` for the flags themselves).
    ``text_column`` / ``id_column``: where files or tables keep the text and ids (default ``text``,
    ``id``; absent ids are generated, :mod:`lmsieve.io.columns`); ``target_text_column`` /
    ``target_id_column``: the same for the target (default: the pool's where the target has them,
    else ``text`` / ``id``).
    ``out``: also write ``lmsieve score``'s Parquet file there (id, score, eligible; with
    ``on_invalid="quarantine"`` the quarantine file beside it).
    """
    from lmsieve.selection.score_run import score_run

    res = score_run(docs, method, target, params=params, out=out, pool_sample=pool_sample, progress=progress,
                    on_invalid=on_invalid, max_doc_bytes=max_doc_bytes,
                    decontaminate=_decontaminator(decontaminate, decontaminate_mode), text_column=text_column,
                    id_column=id_column, target_text_column=target_text_column, target_id_column=target_id_column)
    s, q = res.scores, res.quarantine
    if res.contaminated is not None and decontaminate_mode == "remove":
        s = np.where(res.contaminated.reshape((-1,) + (1,) * (s.ndim - 1)), np.nan, s)
    full = np.full((q.n_read,) + s.shape[1:], np.nan)
    full[q.kept_index_] = s
    return full


def select(docs, method: str, target, keep=None, seed: int = 0, *, keep_chars_fraction: float | None = None,
           threshold: float | None = None, ranking: str | None = None, temperature: float | None = None,
           pool_sample=None, progress: bool = False, on_invalid="error",
           max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, decontaminate=None, decontaminate_mode="remove",
           text_column: str | None = None, id_column: str | None = None, target_text_column: str | None = None,
           target_id_column: str | None = None, out: str | None = None, resume: bool = True,
           save_fitted: str | None = None, **params) -> pa.Table:
    """The selected documents (all input columns, input order).

    ``keep``: a count or a fraction of documents; or ``keep_chars_fraction`` / ``threshold``.
    ``ranking``: "topk" or "gumbel" (default: the method's paper default; ``temperature`` too,
    e.g. MATES's 0.5, else 1). ``on_invalid``: as in
    :func:`score`; quarantined documents are never selected (a fraction counts the valid ones).
    ``decontaminate``: an index (:func:`decontamination_index`), a saved index directory or
    evaluation files; with ``decontaminate_mode="remove"`` (default) contaminated documents are
    removed before the budget is filled ("report": use :func:`contamination` to see them).
    ``text_column`` / ``id_column`` / ``target_*``: as in :func:`score`.
    ``out``: write the run's directory there, as ``lmsieve select --out`` does (selected shards,
    ``scores.parquet``, ``quarantine.parquet``, ``manifest.json`` last; byte-identical for the same
    inputs), resuming from the steps an earlier run of the same configuration finished there
    (``resume=False``: recompute them). ``save_fitted``: also save the fitted selector there.
    """
    from lmsieve.selection.run import select_run

    budget = make_budget(keep, keep_chars_fraction, threshold)
    res = select_run(docs, method, target, budget, params=params, seed=seed, ranking=ranking,
                     temperature=temperature, out=out, resume=resume, save_fitted=save_fitted,
                     pool_sample=pool_sample, progress=progress, on_invalid=on_invalid, max_doc_bytes=max_doc_bytes,
                     decontaminate=_decontaminator(decontaminate, decontaminate_mode), text_column=text_column,
                     id_column=id_column, target_text_column=target_text_column, target_id_column=target_id_column)
    return res.selected


__all__ = ["Budget", "SCORE_BATCH_ROWS", "Selection", "contamination", "decontamination_index", "drop_nonfinite", "feature_columns",
           "fit_and_score", "fit_selector", "load_pool", "load_target", "make_budget", "make_selector",
           "run_selection", "score", "score_batch_rows", "score_table", "select"]
