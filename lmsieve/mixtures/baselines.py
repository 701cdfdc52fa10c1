"""Baselines in the optimiser's interface: random Dirichlet search and RegMix.

RegMix (Liu et al., arXiv 2407.01492): proxy runs on Dirichlet mixtures, a LightGBM regressor from
mixture to loss (lr 0.01, 1000 iterations, early stopping after 3 rounds on a sequential 80/20
split), then simulate many Dirichlet(prior) mixtures and average the 128 with the lowest predicted
loss. The same search weights Meta-rater's quality scores (Zhuang et al., arXiv 2504.14194).

Candidate concentration: RegMix draws Dirichlet(prior·s) with s from logspace(0.1, 5, 15) (read
literally: 10^0.1 … 10^5) so candidates range from sparse to near the prior; ``concentrations=None``
uses plain Dirichlet(prior·K), i.e. Dirichlet(1) for a uniform prior (Meta-rater's choice).
All draws use ``numpy.random.Generator(PCG64(seed))``.
"""
from __future__ import annotations

import numpy as np

REGMIX_SCALES = tuple(np.logspace(0.1, 5, 15))
LGBM_PARAMS = dict(objective="regression", boosting_type="gbdt", n_estimators=1000, learning_rate=0.01,
                   random_state=42, deterministic=True, num_threads=1, verbose=-1, min_child_samples=5)


def dirichlet(n: int, k: int, seed: int, prior=None, concentrations=None) -> np.ndarray:
    """``n`` mixtures over ``k`` components: Dirichlet(prior·K) or, with ``concentrations``,
    Dirichlet(prior·s) with s cycling through them (RegMix)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, float) / np.sum(prior)
    if concentrations is None:
        return rng.dirichlet(prior * k, n)
    s = np.asarray(concentrations, float)[np.arange(n) % len(concentrations)]
    g = rng.gamma(np.maximum(prior[None, :] * s[:, None], 1e-3))
    g[g.sum(1) == 0] = prior  # all-zero rows from tiny alphas fall back to the prior
    return g / g.sum(1, keepdims=True)


def random_search(evaluate, k: int, n: int, seed: int = 0, prior=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``n`` Dirichlet mixtures (``evaluate(W) -> losses``); return (W, losses, best)."""
    W = dirichlet(n, k, seed, prior)
    losses = np.asarray(evaluate(W), float)
    return W, losses, W[int(np.argmin(losses))]


def fit_regressor(W: np.ndarray, losses: np.ndarray, *, early_stopping: int | None = 3, params: dict | None = None):
    """LightGBM regressor mixture -> loss (the reference parameters; sequential 80/20 split for early
    stopping, which is then also the validation split — as in the reference, optimistic)."""
    import lightgbm as lgb

    model = lgb.LGBMRegressor(**{**LGBM_PARAMS, **(params or {})})
    if early_stopping and len(W) >= 20:
        cut = int(0.8 * len(W))
        model.fit(W[:cut], losses[:cut], eval_X=(W[cut:],), eval_y=(losses[cut:],),
                  callbacks=[lgb.early_stopping(early_stopping, verbose=False)])
    else:
        model.fit(W, losses)
    return model


def regmix_search(W: np.ndarray, losses: np.ndarray, *, n_candidates: int = 100_000, top: int = 128, seed: int = 0,
                  prior=None, concentrations=REGMIX_SCALES, early_stopping: int | None = 3) -> dict:
    """Fit the regressor on proxy runs (W, losses) and average the ``top`` best predicted candidates."""
    model = fit_regressor(np.asarray(W, float), np.asarray(losses, float), early_stopping=early_stopping)
    C = dirichlet(n_candidates, W.shape[1], seed, prior, concentrations)
    pred = model.predict(C)
    best = np.argsort(pred, kind="stable")[:top]
    w = C[best].mean(0)
    return {"weights": w / w.sum(), "predicted_loss": float(model.predict(w[None])[0]), "model": model}


def regmix(evaluate, k: int, *, n_runs: int = 128, seed: int = 0, prior=None, **kw) -> dict:
    """Full RegMix: ``n_runs`` proxy runs on Dirichlet mixtures, regression, search."""
    W = dirichlet(n_runs, k, seed, prior, REGMIX_SCALES)
    losses = np.asarray(evaluate(W), float)
    out = regmix_search(W, losses, seed=seed + 1, prior=prior, **kw)
    out.update(runs=W, losses=losses)
    return out
