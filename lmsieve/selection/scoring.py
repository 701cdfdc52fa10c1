"""Fitting and batched scoring: the one implementation the API, the CLI and the eval harness share."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from lmsieve.io.inputs import load_docs
from lmsieve.schemas.document import ID
from lmsieve.schemas.errors import ConfigError
from lmsieve.selection.inputs import feature_columns, load_target, make_selector
from lmsieve.selectors.base import Selector

SCORE_BATCH_ROWS = 4096


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

