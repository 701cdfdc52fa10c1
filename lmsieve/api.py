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
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector, get_selector_class

SCORE_BATCH_ROWS = 4096


def make_selector(method: str, **params) -> Selector:
    return get_selector_class(method)(**params)


def fit_selector(method: str | Selector, target, pool=None, **params) -> Selector:
    """Fit a selector on ``target`` (one or several batches/paths) and, where it needs one, a pool
    sample (DSIR's raw distribution)."""
    sel = make_selector(method, **params) if isinstance(method, str) else method
    targets = target if isinstance(target, dict) else None
    if targets is not None:
        tables = {k: load_docs(v, name=f"target {k}")[0] for k, v in targets.items()}
        tgt = list(tables.values())
    else:
        tgt = load_docs(target, name="target")[0]
        if tgt.num_rows == 0:
            raise ConfigError("the target set is empty")
    pool_table = None
    if sel.needs_pool_sample:
        if pool is None:
            raise ConfigError(f"{sel.name} needs a pool sample to fit")
        pool_table = pool if isinstance(pool, pa.Table) else load_docs(pool, name="pool")[0]
    return sel.fit(tgt, pool_table)


def score_table(selector: Selector, table: pa.Table, batch_rows: int = SCORE_BATCH_ROWS,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scores, eligible) for every row, scored in batches (with a progress bar if asked)."""
    n = table.num_rows
    parts_s, parts_e = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="doc", desc=f"scoring ({selector.name})", smoothing=0.1)
    for start in range(0, n, batch_rows):
        batch = table.slice(start, batch_rows).select([c for c in table.column_names if c in selector.input_columns or c == ID])
        s, e = selector.score_and_mask(batch)
        parts_s.append(np.asarray(s, dtype=np.float64))
        parts_e.append(np.asarray(e, dtype=bool))
        if bar is not None:
            bar.update(batch.num_rows)
    if bar is not None:
        bar.close()
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
                  ranking: str | None = None, temperature: float = 1.0,
                  scores: np.ndarray | None = None, eligible: np.ndarray | None = None,
                  progress: bool = False) -> Selection:
    """Score (unless scores are given) and cut to the budget with the shared primitives."""
    ranking = ranking or selector.default_ranking
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
    return Selection(table, indices, scores, eligible, budget, ranking, seed)


def fit_and_score(method: str, target, table: pa.Table, pool_sample=None, progress: bool = False,
                  **params) -> tuple[Selector, np.ndarray, np.ndarray]:
    """Fit (with ``table`` as the pool sample unless one is given) and score ``table``.

    A selector with ``fit_score`` (DSIR) featurizes the pool once for both steps."""
    sel = make_selector(method, **params)
    if pool_sample is None and hasattr(sel, "fit_score"):
        tgt = {k: load_docs(v, name=f"target {k}")[0] for k, v in target.items()} if isinstance(target, dict) \
            else load_docs(target, name="target")[0]
        if not isinstance(tgt, dict) and tgt.num_rows == 0:
            raise ConfigError("the target set is empty")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=table.num_rows, unit="doc", desc=f"featurizing and scoring ({sel.name})")
        s, e = sel.fit_score(list(tgt.values()) if isinstance(tgt, dict) else tgt, table,
                             progress=bar.update if bar else None)
        if bar:
            bar.close()
        return sel, s, e
    sel = fit_selector(sel, target, pool=pool_sample if pool_sample is not None else table)
    s, e = score_table(sel, table, progress=progress)
    return sel, s, e


def score(docs, method: str, target, *, pool_sample=None, progress: bool = False, **params) -> np.ndarray:
    """Scores aligned with ``docs`` (higher is better unless the method says otherwise).

    Ineligible documents (e.g. DSIR's under-100-word ones) still get their score; use
    :func:`select` for selection, which excludes them.
    """
    table, _ = load_docs(docs, name="pool", columns=[ID, TEXT])
    return fit_and_score(method, target, table, pool_sample, progress, **params)[1]


def select(docs, method: str, target, keep=None, seed: int = 0, *, keep_chars_fraction: float | None = None,
           threshold: float | None = None, ranking: str | None = None, temperature: float = 1.0,
           pool_sample=None, progress: bool = False, **params) -> pa.Table:
    """The selected documents (all input columns, input order).

    ``keep``: a count or a fraction of documents; or ``keep_chars_fraction`` / ``threshold``.
    ``ranking``: "topk" or "gumbel" (default: the method's paper default).
    """
    budget = make_budget(keep, keep_chars_fraction, threshold)
    table, _ = load_docs(docs, name="pool")
    sel, s, e = fit_and_score(method, target, table, pool_sample, progress, **params)
    return run_selection(sel, table, budget, seed=seed, ranking=ranking, temperature=temperature,
                         scores=s, eligible=e).selected


__all__ = ["Selection", "fit_and_score", "fit_selector", "make_budget", "make_selector", "run_selection", "score", "score_table", "select"]
