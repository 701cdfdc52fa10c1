"""In-process API: score or select one corpus against a target.

The same selector objects run here, in the CLI and in the Beam jobs; this module only wires
inputs, fitting, batched scoring and the sampling primitives together.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.io.inputs import load_docs
from lmsieve.sampling.select import Budget, select as select_indices
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, Quarantine
from lmsieve.selectors.base import Selector, get_selector_class

SCORE_BATCH_ROWS = 4096


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


def _report(q: Quarantine, quarantine_given: bool) -> None:
    if q.n and not quarantine_given:
        import logging

        logging.getLogger("lmsieve").warning("quarantined %d documents: %s (pass on_invalid=Quarantine(...) "
                                             "to get them)", q.n, q.counts())


def fit_selector(method: str | Selector, target, pool=None, **params) -> Selector:
    """Fit a selector on ``target`` (one or several batches/paths) and, where it needs one, a pool
    sample (DSIR's raw distribution)."""
    sel = make_selector(method, **params) if isinstance(method, str) else method
    targets = target if isinstance(target, dict) else None
    if targets is not None:
        tgt = [load_target(v, name=f"target {k}") for k, v in targets.items()]
    else:
        tgt = load_target(target)
    pool_table = None
    if sel.needs_pool_sample:
        if pool is None:
            raise ConfigError(f"{sel.name} needs a pool sample to fit")
        pool_table = pool if isinstance(pool, pa.Table) else load_docs(pool, name="pool")[0]
    from lmsieve import progress as _progress

    n = pool_table.num_rows if pool_table is not None else None
    with _progress.step(f"fit ({sel.name})", items=n):
        return sel.fit(tgt, pool_table)


def score_batch_rows(selector: Selector, n: int, batch_rows: int = SCORE_BATCH_ROWS) -> int:
    """Rows per scoring batch: the selector's ``score_batch_rows`` (slow, model-based selectors set a
    small one so the bar moves every few seconds) capped by ``batch_rows``; never above a fiftieth of
    the table (at least 64 rows) so even a short run reports progress."""
    rows = min(int(batch_rows), int(getattr(selector, "score_batch_rows", batch_rows) or batch_rows))
    return max(1, min(rows, max(64, -(-n // 50))))


def score_table(selector: Selector, table: pa.Table, batch_rows: int = SCORE_BATCH_ROWS,
                progress: bool | None = False) -> tuple[np.ndarray, np.ndarray]:
    """(scores, eligible) for every row, scored in batches, with a progress bar (ETA) when
    ``progress`` is on (``None``: the process default, :func:`lmsieve.progress.configure`)."""
    from lmsieve import progress as _progress

    n = table.num_rows
    cols = {ID, *selector.input_columns, *feature_columns(selector)}
    parts_s, parts_e = [], []
    rows = score_batch_rows(selector, n, batch_rows)
    with _progress.step(f"score ({selector.name})", items=n), \
            _progress.bar(total=n, desc=f"scoring ({selector.name})", unit="doc", enabled=progress) as bar:
        for start in range(0, n, rows):
            batch = table.slice(start, rows).select([c for c in table.column_names if c in cols])
            s, e = selector.score_and_mask(batch)
            parts_s.append(np.asarray(s, dtype=np.float64))
            parts_e.append(np.asarray(e, dtype=bool))
            bar.update(batch.num_rows)
    if not parts_s:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(parts_s), np.concatenate(parts_e)


def make_budget(keep=None, keep_chars_fraction: float | None = None, threshold: float | None = None) -> Budget:
    """``keep``: an int (documents), a float in (0, 1] (fraction of documents) or a Budget."""
    if isinstance(keep, Budget):
        return keep
    given = [x is not None for x in (keep, keep_chars_fraction, threshold)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of keep (count or fraction), keep_chars_fraction, threshold")
    if keep_chars_fraction is not None:
        return Budget(length_fraction=float(keep_chars_fraction))
    if threshold is not None:
        return Budget(threshold=float(threshold))
    if isinstance(keep, (bool, np.bool_)):
        raise ConfigError("keep must be a count or a fraction")
    if isinstance(keep, (int, np.integer)):
        return Budget(k=int(keep))
    keep = float(keep)
    if not 0 < keep <= 1:
        raise ConfigError(f"a fractional keep must be in (0, 1], got {keep}")
    return Budget(fraction=keep)


def _target_seed(seed: int, j: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{j}".encode(), digest_size=8).digest(), "little")


@dataclass
class Selection:
    """A selection over one table: indices in rank order, with the scores it was made from."""

    table: pa.Table
    indices: np.ndarray
    scores: np.ndarray
    eligible: np.ndarray
    budget: Budget
    ranking: str
    seed: int
    details: dict = field(default_factory=dict)

    @property
    def selected(self) -> pa.Table:
        """The selected rows, all columns, in input order."""
        return self.table.take(pa.array(np.sort(self.indices), type=pa.int64()))


def run_selection(selector: Selector, table: pa.Table, budget: Budget, *, seed: int = 0,
                  ranking: str | None = None, temperature: float | None = None,
                  scores: np.ndarray | None = None, eligible: np.ndarray | None = None,
                  progress: bool = False) -> Selection:
    """Score (unless scores are given) and cut to the budget with the shared primitives."""
    ranking = ranking or selector.default_ranking
    temperature = selector.default_temperature if temperature is None else temperature
    if scores is None:
        scores, eligible = score_table(selector, table, progress=progress)
    ids = table.column(ID)
    lengths = None
    if budget.length_fraction is not None:
        lengths = pc.utf8_length(table.column(TEXT)).to_numpy(zero_copy_only=False).astype(np.int64)
    kw = dict(ranking=ranking, temperature=temperature, higher_is_better=selector.higher_is_better, lengths=lengths)
    if scores.ndim == 2:  # DSIR with separate targets: allocate k, mask what earlier targets took
        n_elig = int(eligible.sum())
        k = budget.k if budget.k is not None else int(np.floor(budget.fraction * len(scores) + 1e-9)) if budget.fraction is not None else None
        if k is None:
            raise ConfigError("separate targets take a document budget (keep N or a fraction)")
        taken = np.zeros(len(scores), dtype=bool)
        picked = []
        for j, kj in enumerate(selector.allocate(min(k, n_elig))):
            idx = select_indices(scores[:, j], ids, Budget(k=kj), seed=_target_seed(seed, j),
                                 eligible=eligible & ~taken, **kw)
            taken[idx] = True
            picked.append(idx)
        indices = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    else:
        indices = select_indices(scores, ids, budget, seed=seed, eligible=eligible, **kw)
    if budget.k is not None and len(indices) < budget.k:
        import logging

        n_inel = int((~np.asarray(eligible, dtype=bool)).sum()) if eligible is not None else 0
        why = f" ({n_inel} not eligible for {selector.name}{_INELIGIBLE.get(selector.name, '')})" if n_inel else ""
        logging.getLogger("lmsieve").warning("asked to keep %d documents but the pool has %d%s: selected %d",
                                             budget.k, table.num_rows, why, len(indices))
    return Selection(table, indices, scores, eligible, budget, ranking, seed)


_INELIGIBLE = {"dsir": ": under min_example_length words"}


def fit_and_score(method: str, target, table: pa.Table, pool_sample=None, progress: bool | None = False,
                  **params) -> tuple[Selector, np.ndarray, np.ndarray]:
    """Fit (with ``table`` as the pool sample unless one is given) and score ``table``.

    A selector with ``fit_score`` (DSIR) featurizes the pool once for both steps."""
    sel = make_selector(method, **params)
    if pool_sample is None and hasattr(sel, "fit_score"):
        tgt = {k: load_target(v, name=f"target {k}") for k, v in target.items()} if isinstance(target, dict) \
            else load_target(target)
        from lmsieve import progress as _progress

        with _progress.step(f"fit and score ({sel.name})", items=table.num_rows), \
                _progress.bar(total=table.num_rows, desc=f"featurizing and scoring ({sel.name})", unit="doc",
                              enabled=progress) as bar:
            import inspect

            kw = {"progress": bar.update}
            if "batch_rows" in inspect.signature(sel.fit_score).parameters:  # DSIR: finer batches, same bits
                kw["batch_rows"] = score_batch_rows(sel, table.num_rows)
            s, e = sel.fit_score(list(tgt.values()) if isinstance(tgt, dict) else tgt, table, **kw)
        return sel, s, e
    sel = fit_selector(sel, target, pool=pool_sample if pool_sample is not None else table)
    s, e = score_table(sel, table, progress=progress)
    return sel, s, e


def _decontaminate(spec, mode: str, table: pa.Table, s: np.ndarray, e: np.ndarray):
    """``decontaminate=`` of :func:`score`/:func:`select` (remove mode: drop the flagged rows)."""
    if spec is None:
        return table, s, e
    from lmsieve.features.decontam.apply import Decontaminator

    d = Decontaminator.from_spec(spec, mode)
    _, record = d.screen(table)
    return d.drop(table, s, e, record)


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


def _mapped_target(target, text_column, id_column):
    """The target loaded with a column mapping (each of several named targets alike)."""
    if text_column is None and id_column is None:
        return target
    if isinstance(target, dict):
        return {k: load_target(v, f"target {k}", text_column, id_column) for k, v in target.items()}
    return load_target(target, "target", text_column, id_column)


def score(docs, method: str, target, *, pool_sample=None, progress: bool = False, on_invalid="error",
          max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, decontaminate=None, decontaminate_mode="remove",
          text_column: str | None = None, id_column: str | None = None, target_text_column: str | None = None,
          target_id_column: str | None = None,
          **params) -> np.ndarray:
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
    """
    table, _, q = load_pool(docs, method, params, on_invalid, max_doc_bytes, columns=[ID, TEXT],
                            text_column=text_column, id_column=id_column)
    target = _mapped_target(target, target_text_column or (text_column and [text_column, TEXT]),
                            target_id_column or (id_column and [id_column, ID]))
    _, s, e = fit_and_score(method, target, table, pool_sample, progress, **params)
    table, s, e = drop_nonfinite(q, table, s, e)
    _report(q, isinstance(on_invalid, Quarantine))
    full = np.full((q.n_read,) + s.shape[1:], np.nan)
    if decontaminate is not None and decontaminate_mode == "remove":
        kept, _, _ = _decontaminate(decontaminate, "remove", table, s, e)
        s = np.where(pc.is_in(table.column(ID), value_set=kept.column(ID)).to_numpy(zero_copy_only=False)
                     .reshape((-1,) + (1,) * (s.ndim - 1)), s, np.nan)
    full[q.kept_index_] = s
    return full


def select(docs, method: str, target, keep=None, seed: int = 0, *, keep_chars_fraction: float | None = None,
           threshold: float | None = None, ranking: str | None = None, temperature: float | None = None,
           pool_sample=None, progress: bool = False, on_invalid="error",
           max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, decontaminate=None, decontaminate_mode="remove",
           text_column: str | None = None, id_column: str | None = None, target_text_column: str | None = None,
           target_id_column: str | None = None, **params) -> pa.Table:
    """The selected documents (all input columns, input order).

    ``keep``: a count or a fraction of documents; or ``keep_chars_fraction`` / ``threshold``.
    ``ranking``: "topk" or "gumbel" (default: the method's paper default; ``temperature`` too,
    e.g. MATES's 0.5, else 1). ``on_invalid``: as in
    :func:`score`; quarantined documents are never selected (a fraction counts the valid ones).
    ``decontaminate``: an index (:func:`decontamination_index`), a saved index directory or
    evaluation files; with ``decontaminate_mode="remove"`` (default) contaminated documents are
    removed before the budget is filled ("report": use :func:`contamination` to see them).
    ``text_column`` / ``id_column`` / ``target_*``: as in :func:`score`.
    """
    budget = make_budget(keep, keep_chars_fraction, threshold)
    table, _, q = load_pool(docs, method, params, on_invalid, max_doc_bytes, text_column=text_column,
                            id_column=id_column)
    target = _mapped_target(target, target_text_column or (text_column and [text_column, TEXT]),
                            target_id_column or (id_column and [id_column, ID]))
    sel, s, e = fit_and_score(method, target, table, pool_sample, progress, **params)
    table, s, e = drop_nonfinite(q, table, s, e)
    _report(q, isinstance(on_invalid, Quarantine))
    table, s, e = _decontaminate(decontaminate, decontaminate_mode, table, s, e)
    return run_selection(sel, table, budget, seed=seed, ranking=ranking, temperature=temperature,
                         scores=s, eligible=e).selected


__all__ = ["Selection", "contamination", "decontamination_index", "drop_nonfinite", "feature_columns", "fit_and_score", "fit_selector", "load_pool", "load_target",
           "make_budget", "make_selector", "run_selection", "score", "score_table", "select"]
