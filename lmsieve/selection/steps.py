"""The resumable steps of a selection run: fit → score → sample, each recorded in a run directory.

Loading (and validating) the inputs always runs: its file checksums are part of the run key.
Writing the output always runs too: it is cheap next to fitting and scoring, and it is what makes
the output directory complete (files by rename, manifest last; :mod:`lmsieve.io.output`).

Steps and their artifacts (``OUT/.lmsieve-runs/<key>/<step>/``):

* ``fit``: the fitted selector (``Selector.save``: JSON + ``.npz``, no pickle);
* ``score``: ``scores.parquet`` (id, eligible, score or score_0..score_{m-1} for DSIR's separate
  targets), float64 bit for bit;
* ``sample``: ``selection.parquet``, the selected row indices in rank order.

A selector that fits and scores in one pass (DSIR's ``fit_score``) records both steps from that
pass; a rerun after a kill between them loads the fitted selector and scores with
``score_and_mask``, which gives the same bits (DSIR sums each document's weights in bucket order
from canonical counts either way).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmsieve.selection.inputs import make_selector
from lmsieve.selection.sample import Selection, run_selection
from lmsieve.selection.scoring import fit_and_score, fit_selector, score_table
from lmsieve.io.parquet import write_table
from lmsieve.io.runs import RunDir, run_root
from lmsieve.schemas.document import ID
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector

SCORES = "scores.parquet"
INDICES = "selection.parquet"


def run_config(method: str, params: dict, *, seed: int, budget, ranking: str | None, temperature: float | None,
               pool: list, target: list, extra: dict | None = None) -> dict:
    """Everything that determines a selection; its hash names the run directory. ``pool`` /
    ``target``: ``[sha256, rows]`` per input file (or table). Paths are left out (moving the
    inputs keeps the key), file order is kept (it fixes the row order)."""
    from lmsieve import __version__

    sel = make_selector(method, **params)
    return {
        "command": "select", "lmsieve_version": __version__, "method": method,
        "params": sel.fingerprint_params(), "seed": seed, "budget": budget.to_dict(),
        "ranking": ranking or sel.default_ranking,
        "temperature": sel.default_temperature if temperature is None else temperature,
        "pool": [list(x) for x in pool], "target": [list(x) for x in target],
        **(extra or {}),
    }


def open_run(out_dir: str | None, config: dict, resume: bool = True) -> RunDir:
    """The run directory for ``config`` under ``OUT/.lmsieve-runs`` (disabled for remote outputs
    and for runs without an output directory)."""
    root = run_root(out_dir) if out_dir is not None else None
    return RunDir(root or "", config, resume=resume, enabled=root is not None,
                  echo=lambda msg: print(f"lmsieve select: {msg}", file=sys.stderr))


def _save_selector(sel: Selector, d: str) -> None:
    sel.save(os.path.join(d, "selector"))


def _load_selector(d: str) -> Selector:
    return Selector.load(os.path.join(d, "selector"))


def _save_scores(ids: pa.ChunkedArray):
    def save(value, d: str) -> None:
        scores, eligible = value
        cols = {ID: ids, "eligible": pa.array(eligible, pa.bool_())}
        if scores.ndim == 1:
            cols["score"] = pa.array(scores, pa.float64())
        else:
            cols.update({f"score_{j}": pa.array(scores[:, j], pa.float64()) for j in range(scores.shape[1])})
        write_table(pa.table(cols), os.path.join(d, SCORES))
    return save


def _load_scores(ids: pa.ChunkedArray):
    def load(d: str) -> tuple[np.ndarray, np.ndarray]:
        path = os.path.join(d, SCORES)
        t = pq.read_table(path)
        if not t.column(ID).equals(ids):
            raise ConfigError(f"{path}: ids do not match the pool; delete {os.path.dirname(d)} "
                              "or rerun with --no-resume")
        names = ["score"] if "score" in t.column_names else sorted(
            (c for c in t.column_names if c.startswith("score_")), key=lambda c: int(c[6:]))
        cols = [t.column(c).to_numpy() for c in names]
        scores = cols[0] if names == ["score"] else np.stack(cols, axis=1)
        return scores, t.column("eligible").to_numpy(zero_copy_only=False)
    return load


def _save_indices(idx: np.ndarray, d: str) -> None:
    write_table(pa.table({"index": pa.array(idx, pa.int64())}), os.path.join(d, INDICES))


def _load_indices(d: str) -> np.ndarray:
    return pq.read_table(os.path.join(d, INDICES)).column("index").to_numpy()


def fit_score_sample(run: RunDir, method: str, params: dict, target, pool: pa.Table, budget, *, seed: int,
                     ranking: str | None, temperature: float, progress: bool = False,
                     screen=None, pool_sample=None) -> tuple[Selector, Selection]:
    """(fitted selector, selection): fit, score and sample, skipping recorded steps.

    ``screen(pool, scores, eligible) -> (pool, scores, eligible)`` runs between scoring and
    sampling (bad documents: :func:`lmsieve.selection.inputs.drop_nonfinite`); the selection is
    over its pool. ``pool_sample``: fit on it instead of the pool (DSIR's raw distribution)."""
    ids = pool.column(ID)
    one_pass = {}

    def fit() -> Selector:
        sel = make_selector(method, **params)
        if pool_sample is not None:
            return fit_selector(sel, target, pool=pool_sample)
        if hasattr(sel, "fit_score"):  # featurize the pool once for both steps
            sel, s, e = fit_and_score(method, target, pool, progress=progress, **params)
            one_pass["score"] = (s, e)
            return sel
        return fit_selector(sel, target, pool=pool)

    sel = run.cached("fit", fit, _save_selector, _load_selector)
    scores, eligible = run.cached("score", lambda: one_pass.get("score") or score_table(sel, pool, progress=progress),
                                  _save_scores(ids), _load_scores(ids))
    if screen is not None:
        pool, scores, eligible = screen(pool, scores, eligible)
    ranking = ranking or sel.default_ranking
    indices = run.cached("sample", lambda: run_selection(sel, pool, budget, seed=seed, ranking=ranking,
                                                         temperature=temperature, scores=scores,
                                                         eligible=eligible).indices,
                         _save_indices, _load_indices)
    return sel, Selection(pool, indices, scores, eligible, budget, ranking, seed)


__all__ = ["fit_score_sample", "open_run", "run_config"]
