"""Meta-rater's weight search (Zhuang et al., ACL 2025, arXiv 2504.14194; ``opendatalab/Meta-rater``
+ ``mihara-bot/Meta-rater`` ``pipeline/step1..4``): RegMix applied to quality-rating weights.

1. ``proxy_runs`` weight vectors w ~ Dirichlet(α·1) (α = ``dirichlet_alpha``, the reference's
   ``--strength`` 1.0; seed 1048).
2. Each w scores the pool (Σ w_f·x_f over the [0, 5]-scaled ratings), keeps its top ``top_fraction``
   (15 %: the 85th-percentile threshold, ties kept) and trains one proxy LM on it with the
   ``trainer``; the proxy's loss on the target's held-out half (``loss_target``) and on a general
   validation sample of the pool (``loss_general``) go to a resumable run table (Parquet, like
   ``mix optimise``: a rerun skips finished runs).
3. One LightGBM regressor per loss with the reference parameters (gbdt, regression, 1000 rounds,
   lr 0.01, seed 42; sequential 80/20 split, early stopping after 5 rounds on the 20 %).
   The reference reports Spearman on that same 20 %; we report it from a second fit that never
   sees the last 20 % (trained on the first 64 %, early-stopped on the next 16 %).
4. 200k candidates ~ Dirichlet(``candidate_alpha``·1) (the reference's ``--alpha`` 1.0, seed 42);
   the mean of the 128 with the lowest predicted objective loss is the weight vector.

Measured (see tests/test_meta_rater.py): with α = 1 in 25 dimensions even a perfect regressor puts
at most ~35 % of the mean-of-128 mass on two true features (Dirichlet(1) candidates rarely
concentrate), so recovering a sparse optimum needs the reference's own ``--alpha`` knob set lower.

The default trainer is the mixtures module's proxy trainer (:class:`lmsieve.mixtures.runs.ProxyRunner`
with :class:`~lmsieve.mixtures.runs.Fidelity`), called through its public names on a one-component
"mixture" of the selected documents; ``trainer="module:function"`` plugs in another one with the
signature ``trainer(selected: pa.Table, evals: dict[str, pa.Table], seed: int) -> {"losses": {name:
loss}, "seconds": s, "flops": f}`` (a cluster job, or the fake trainer of the synthetic check).
Imports of :mod:`lmsieve.mixtures` are deferred to the call (the search trains LMs; the selector
itself only scores).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time

import numpy as np
import pyarrow as pa

from lmsieve.schemas.errors import ConfigError

RUN_SEED = 1048
CANDIDATE_SEED = 42
LOSSES = ("target", "general")


def top_fraction_mask(scores: np.ndarray, fraction: float = 0.15) -> np.ndarray:
    """Documents at or above the (1 − fraction) percentile of the scores (ties kept)."""
    thr = np.percentile(scores, 100.0 * (1.0 - fraction))
    return scores >= thr


def load_trainer(spec: str):
    """``"module:function"`` -> the callable (a trainer plug-in)."""
    mod, _, fn = str(spec).partition(":")
    if not mod or not fn:
        raise ConfigError(f"meta_rater.trainer: expected 'module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"meta_rater.trainer: cannot import {spec!r} ({e})") from None


def proxy_trainer(proxy: dict, *, eval_docs: int = 64, eval_chars: int = 1024, budget_tokens: float | None = None):
    """The mixtures module's proxy trainer on the selected documents (one component, weight 1)."""
    from lmsieve.mixtures.runs import Fidelity, ProxyRunner

    fid = Fidelity("meta_rater", **proxy)
    ctx = int(fid.model.get("context", 128))
    want = float(budget_tokens or fid.steps * fid.batch_size * (ctx + 1))

    def train(selected: pa.Table, evals: dict, seed: int) -> dict:
        from lmsieve.mixtures.mixing import token_lengths

        table = selected.select(["id", "text"]).append_column("_mr", pa.array(["top"] * selected.num_rows))
        budget = min(want, float(token_lengths(table.column("text")).sum()))
        runner = ProxyRunner(table, evals, budget_tokens=budget, component_column="_mr", seed=seed,
                             eval_docs=eval_docs, eval_chars=eval_chars)
        return runner({"top": 1.0}, fid, seed)
    return train


def _progress(total: int, done: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="meta_rater proxy runs", unit="run", file=sys.stderr,
                smoothing=0.0)


def run_proxies(X: np.ndarray, names: list, pool: pa.Table, evals: dict, trainer, table_path: str, *,
                n_runs: int, alpha: float = 1.0, fraction: float = 0.15, exclude=None, seed: int = RUN_SEED,
                progress: bool = True, config: str = "") -> tuple[np.ndarray, np.ndarray, list]:
    """Step 1–2: (W (n, F), losses (n, 2: target, general), rows); resumable through ``table_path``.
    ``config`` (a hash of what determines a run's loss) is stored per row; a table holding runs of
    another configuration is an error rather than silently reused."""
    from lmsieve.mixtures.runs import RunTable, run_id

    W = np.random.Generator(np.random.PCG64(seed)).dirichlet(np.full(X.shape[1], float(alpha)), n_runs)
    table = RunTable(table_path)
    other = {r.get("config", "") for r in table.rows} - {config}
    if other:
        raise ConfigError(f"{table_path}: the run table holds runs of another Meta-rater configuration "
                          "(pool, target, ratings or proxy differ); use another runs=PATH or delete it")
    by_id = {r["run_id"]: r for r in table.rows}
    keep_ok = np.ones(pool.num_rows, bool) if exclude is None else ~exclude
    ids = [run_id(dict(zip(names, w)), "meta_rater", seed) for w in W]
    bar = _progress(n_runs, sum(i in by_id for i in ids)) if progress else None
    for i, (w, rid) in enumerate(zip(W, ids)):
        if rid in by_id:
            continue
        mask = top_fraction_mask(X @ w, fraction) & keep_ok
        t0 = time.perf_counter()
        res = trainer(pool.filter(pa.array(mask)), evals, seed + i)
        row = {"run_id": rid, "config": config, "run": i, **{f"w_{k}": float(v) for k, v in zip(names, w)},
               "n_selected": int(mask.sum()), "seconds": float(res.get("seconds", time.perf_counter() - t0)),
               "flops": float(res.get("flops", 0.0)), "seed": seed + i,
               **{f"loss_{k}": float(res["losses"][k]) for k in LOSSES}}
        table.append(row)
        by_id[rid] = row
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    rows = [by_id[r] for r in ids]
    losses = np.array([[r[f"loss_{k}"] for k in LOSSES] for r in rows], dtype=np.float64)
    return W, losses, rows


def fit_and_search(W: np.ndarray, losses: np.ndarray, *, objective: str = "target", n_candidates: int = 200_000,
                   top: int = 128, alpha: float = 1.0, early_stopping: int = 5, params: dict | None = None,
                   seed: int = CANDIDATE_SEED) -> dict:
    """Steps 3–4: regressors, held-out Spearman per loss, the mean of the ``top`` best candidates."""
    from lmsieve.mixtures.baselines import fit_regressor, heldout_spearman

    if objective not in LOSSES:
        raise ConfigError(f"meta_rater.objective: expected one of {LOSSES}, got {objective!r}")
    out = {"spearman": {}, "heldout": {}}
    models = {}
    for j, name in enumerate(LOSSES):
        models[name] = fit_regressor(W, losses[:, j], early_stopping=early_stopping, params=params)
        h = heldout_spearman(W, losses[:, j], early_stopping=early_stopping, params=params)
        out["spearman"][name] = h["spearman"]
        out["heldout"][name] = h
    C = np.random.Generator(np.random.PCG64(seed)).dirichlet(np.full(W.shape[1], float(alpha)), n_candidates)
    pred = models[objective].predict(C)
    best = np.argsort(pred, kind="stable")[:top]
    w = C[best].mean(0)
    out.update(weights=w / w.sum(), predicted_loss=float(pred[best].mean()), models=models)
    return out


def plot_fit(path: str, names: list, weights: np.ndarray, heldout: dict, objective: str) -> str:
    """Fitted weights (bars) and the regressor's predicted vs measured held-out loss (scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, max(4, 0.25 * len(names))),
                               gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(names))
    a.barh(y, weights, color=["tab:red" if v < 0 else "tab:blue" for v in weights])
    a.set_yticks(y, names, fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("weight (signed)")
    a.set_title("Meta-rater fitted weights")
    h = heldout.get(objective, {})
    pred, meas = np.asarray(h.get("predicted", [])), np.asarray(h.get("measured", []))
    if len(pred):
        b.scatter(meas, pred, s=14)
        lo, hi = float(min(meas.min(), pred.min())), float(max(meas.max(), pred.max()))
        b.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    b.set_xlabel(f"measured loss_{objective} (held-out runs)")
    b.set_ylabel("predicted")
    b.set_title(f"regressor, Spearman {h.get('spearman', float('nan')):.3f} on {len(pred)} held-out runs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def config_hash(key: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_runs_path(key: dict) -> str:
    """The run table when ``runs`` is not given: under $LMSIEVE_HOME (default ~/.cache/lmsieve), named
    by the hash of everything that determines the runs (so a rerun of the same fit resumes)."""
    home = os.environ.get("LMSIEVE_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "lmsieve")
    return os.path.join(home, "meta_rater", config_hash(key), "runs.parquet")


__all__ = ["fit_and_search", "load_trainer", "plot_fit", "proxy_trainer", "run_proxies", "top_fraction_mask"]
