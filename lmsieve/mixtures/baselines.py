"""Baselines in the optimiser's interface: random Dirichlet search and RegMix.

RegMix (Liu et al., arXiv 2407.01492), as its reference code (sail-sg/regmix):

* proxy mixtures (``mixture_config/synthesize_mixture.py``): the prior is the token distribution
  sharpened by a temperature, prior^0.5 (renormalised); each draw picks one of 15 strengths
  ``np.logspace(np.log10(0.1), np.log10(5), 15)`` uniformly and samples Dirichlet(prior·s); a draw
  is rejected if any domain exceeds min(15 × its *untempered* share, 1) (the usage cap); weights
  below 2e-4 are zeroed, the rest renormalised and rounded to multiples of 2e-4; 100 × n draws are
  made, sorted (``np.lexsort``) and de-duplicated (L1 distance ≤ 1e-5 to the last kept), and n are
  drawn from them without replacement (:func:`regmix_mixtures`);
* regressor (``regression_fitting/regression.ipynb``): LightGBM gbdt, regression objective,
  1000 iterations, lr 0.01, seed 42, early stopping after 3 rounds on a held-out split;
* search: 100k Dirichlet(prior) mixtures (the raw token distribution as α, strength 1), the mean
  of the 128 with the lowest predicted loss.

The same search weights Meta-rater's quality scores (Zhuang et al., arXiv 2504.14194) with
Dirichlet(1) everywhere. All draws use ``numpy.random.Generator(PCG64(seed))`` (the reference's
global ``np.random``/``random`` streams are not reproduced, only their distributions).
"""
from __future__ import annotations

import numpy as np

from lmsieve.schemas.errors import ConfigError

REGMIX_STRENGTHS = tuple(np.logspace(np.log10(0.1), np.log10(5.0), 15))
REGMIX_TEMPERATURE = 0.5
REGMIX_MAX_USAGE = 15.0
REGMIX_MINIMUM = 2e-4
REGMIX_SAMPLE_MULTIPLIER = 100
REGMIX_DEDUP_THRESHOLD = 1e-5
#: The reference parameters (RegMix notebook, Meta-rater step3); determinism for reproducible reruns.
LGBM_PARAMS = dict(objective="regression", boosting_type="gbdt", n_estimators=1000, learning_rate=0.01,
                   random_state=42, deterministic=True, num_threads=1, verbose=-1)


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def dirichlet(n: int, k: int, seed: int, prior=None, alpha: float | None = None) -> np.ndarray:
    """``n`` draws of Dirichlet(α) over ``k`` components: α = ``alpha``·1 (Meta-rater: 1), or the
    normalised ``prior`` as α (RegMix's search), or 1 when neither is given."""
    if prior is not None:
        a = np.asarray(prior, float) / np.sum(prior)
    else:
        a = np.full(k, 1.0 if alpha is None else float(alpha))
    return _rng(seed).dirichlet(a, n)


def _normalised_prior(prior, k: int) -> np.ndarray:
    p = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, float)
    if p.shape != (k,) or np.any(p < 0) or p.sum() <= 0:
        raise ConfigError(f"regmix prior: expected {k} non-negative shares, not all 0")
    return p / p.sum()


def sort_and_deduplicate(X: np.ndarray, threshold: float = REGMIX_DEDUP_THRESHOLD) -> np.ndarray:
    """RegMix's dedup: sort rows with ``np.lexsort`` and keep a row when its L1 distance to the last
    kept row exceeds ``threshold``."""
    X = X[np.lexsort(X.T)]
    keep = [0]
    for i in range(1, len(X)):
        if np.abs(X[i] - X[keep[-1]]).sum() > threshold:
            keep.append(i)
    return X[keep]


def regmix_mixtures(n: int, prior=None, seed: int = 0, *, k: int | None = None, temperature: float = REGMIX_TEMPERATURE,
                    strengths=REGMIX_STRENGTHS, max_usage: float = REGMIX_MAX_USAGE, minimum: float = REGMIX_MINIMUM,
                    multiplier: int = REGMIX_SAMPLE_MULTIPLIER) -> np.ndarray:
    """``n`` proxy mixtures as RegMix's ``generate_weights_dirichlet`` (see the module docstring)."""
    k = len(prior) if prior is not None else k
    p = _normalised_prior(prior, k)
    bound = np.minimum(p * max_usage, 1.0)  # from the untempered prior, as the reference
    if temperature < 1.0:
        p = p ** temperature
        p = p / p.sum()
    rng = _rng(seed)
    total = n * multiplier
    which = rng.integers(0, len(strengths), total)  # random.choice among one draw per strength
    S = np.empty((total, k))
    for j, s in enumerate(strengths):
        rows = np.flatnonzero(which == j)
        S[rows] = rng.dirichlet(p * s, len(rows))
    S = S[np.all((S >= 0) & (S <= bound), axis=1)]
    S = np.where(S < minimum, 0.0, S)
    S = S[S.sum(1) > 0]
    S = S / S.sum(1, keepdims=True)
    S = np.round(S / minimum) * minimum
    S = sort_and_deduplicate(S)
    if len(S) < n:
        raise ConfigError(f"regmix: only {len(S)} distinct mixtures pass the usage cap; ask for fewer runs than {n}")
    return S[np.sort(rng.choice(len(S), n, replace=False))]


def random_search(evaluate, k: int, n: int, seed: int = 0, prior=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``n`` Dirichlet mixtures (``evaluate(W) -> losses``); return (W, losses, best)."""
    W = dirichlet(n, k, seed, prior)
    losses = np.asarray(evaluate(W), float)
    return W, losses, W[int(np.argmin(losses))]


def fit_regressor(W: np.ndarray, losses: np.ndarray, *, early_stopping: int | None = 3, params: dict | None = None,
                  split: float = 0.8):
    """LightGBM regressor mixture -> loss with the reference parameters. With ``early_stopping``, the
    first ``split`` of the rows (sequential) train and the rest stop the boosting (as the references)."""
    import lightgbm as lgb

    model = lgb.LGBMRegressor(**{**LGBM_PARAMS, **(params or {})})
    cut = int(split * len(W))
    if early_stopping and 2 <= cut < len(W):
        model.fit(W[:cut], losses[:cut], eval_X=(W[cut:],), eval_y=(losses[cut:],), eval_metric="l2",
                  callbacks=[lgb.early_stopping(early_stopping, verbose=False)])
    else:
        model.fit(W, losses)
    return model


def heldout_spearman(W: np.ndarray, losses: np.ndarray, *, early_stopping: int | None = 3, params: dict | None = None,
                     split: float = 0.8) -> dict:
    """An honest held-out Spearman: the last ``1 − split`` rows are never seen; the model trains on
    the first ``split`` of the rest and early-stops on its remainder. (The references early-stop on
    the same rows they report the correlation on, which is optimistic.)"""
    from scipy.stats import spearmanr

    cut = int(split * len(W))
    if cut < 4 or len(W) - cut < 3:
        return {"spearman": float("nan"), "n_train": cut, "n_test": len(W) - cut}
    model = fit_regressor(W[:cut], losses[:cut], early_stopping=early_stopping, params=params, split=split)
    pred = model.predict(W[cut:])
    r = spearmanr(pred, losses[cut:]).statistic if np.ptp(pred) > 0 else float("nan")
    return {"spearman": float(r), "n_train": cut, "n_test": len(W) - cut, "predicted": pred.tolist(),
            "measured": losses[cut:].tolist()}


def regmix_search(W: np.ndarray, losses: np.ndarray, *, n_candidates: int = 100_000, top: int = 128, seed: int = 0,
                  prior=None, early_stopping: int | None = 3, params: dict | None = None) -> dict:
    """Fit the regressor on proxy runs (W, losses); average the ``top`` best of ``n_candidates``
    Dirichlet(prior) candidates (uniform prior: Dirichlet(1/K · 1))."""
    W = np.asarray(W, float)
    model = fit_regressor(W, np.asarray(losses, float), early_stopping=early_stopping, params=params)
    C = dirichlet(n_candidates, W.shape[1], seed, _normalised_prior(prior, W.shape[1]))
    best = np.argsort(model.predict(C), kind="stable")[:top]
    w = C[best].mean(0)
    return {"weights": w / w.sum(), "predicted_loss": float(model.predict(w[None])[0]), "model": model}


def regmix(evaluate, k: int, *, n_runs: int = 128, seed: int = 0, prior=None, **kw) -> dict:
    """Full RegMix: ``n_runs`` proxy runs on RegMix's mixtures, regression, search."""
    W = regmix_mixtures(n_runs, prior, seed, k=k)
    losses = np.asarray(evaluate(W), float)
    out = regmix_search(W, losses, seed=seed + 1, prior=prior, **kw)
    out.update(runs=W, losses=losses)
    return out
