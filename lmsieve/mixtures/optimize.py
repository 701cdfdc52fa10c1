"""End to end: optimise a mixture of pool components for a target with proxy runs.

Glue between :mod:`runs` (proxy training, resumable run table) and :mod:`bayesopt`; every proxy
run goes through the run table, so rerunning with the same table skips finished runs.

Methods and modes (ADMIRE-BayesOpt, Chen et al., arXiv 2508.11551; RegMix, Liu et al., arXiv
2407.01492):

* ``qlogei`` / ``mf-mes`` with ``mode="pool"`` (default): the paper's *replay* loop over a fixed
  candidate pool — the K vertices, the uniform mixture and ``n_candidates`` Dirichlet(1) mixtures
  (PCG64(seed)), each at every fidelity — but a candidate is trained only when the acquisition
  picks it. Cost budget: ``n_runs`` target-fidelity runs' worth (Σ fidelity costs).
* the same with ``mode="continuous"`` (*live*): optimise the acquisition over the simplex.
* ``random``: ``n_runs`` Dirichlet(1) mixtures at the target fidelity, best observed.
* ``regmix``: ``n_runs`` of RegMix's own mixtures (prior = the components' token shares ``prior``,
  tempered, usage-capped, rounded, de-duplicated: :func:`~lmsieve.mixtures.baselines.regmix_mixtures`),
  a LightGBM surrogate, the mean of the 128 best of 100k Dirichlet(prior) candidates.

Choice where the spec is silent: the pool contains the vertices and the uniform mixture, because
in a live setting the single-source mixtures are the natural extremes a user wants compared, and a
Dirichlet(1) sample of a few hundred rarely comes close to a vertex in 3-4 dimensions.
"""
from __future__ import annotations

import numpy as np

from lmsieve.mixtures import bayesopt as bo
from lmsieve.mixtures.baselines import dirichlet, regmix_mixtures, regmix_search
from lmsieve.mixtures.runs import Fidelity, RunTable, run_or_skip
from lmsieve.schemas.errors import ConfigError, InputError

METHODS = ("qlogei", "mf-mes", "random", "regmix")
MODES = ("pool", "continuous")


def candidate_pool(k: int, n: int, seed: int) -> np.ndarray:
    """Vertices, the uniform mixture and ``n`` Dirichlet(1) mixtures (rows sum to 1)."""
    return np.vstack([np.eye(k), np.full((1, k), 1.0 / k), dirichlet(n, k, seed)])


def optimise(train_fn, components: list, target: str, table: RunTable, *, fidelities: list, method: str = "qlogei",
             mode: str = "pool", n_init: int = 4, n_runs: int = 10, n_candidates: int = 256,
             max_runs: int | None = None, seed: int = 0, n_steps: int | None = None, prior=None) -> dict:
    """Minimise ``loss_<target>`` over mixtures of ``components``; fidelity costs are ``Fidelity.cost``
    (the largest is the target fidelity). Returns the recommendation, the run table rows and the
    cost trace. ``n_steps`` (continuous mode) defaults to ``n_runs - n_init``. ``prior``: the
    components' token shares (RegMix's prior; default uniform)."""
    if method not in METHODS:
        raise ConfigError(f"optimise.method: expected one of {METHODS}, got {method!r}")
    if mode not in MODES:
        raise ConfigError(f"optimise.mode: expected one of {MODES}, got {mode!r}")
    by_cost = {float(f.cost): f for f in fidelities}
    target_cost = max(by_cost)
    k = len(components)

    from lmsieve import progress as _progress

    # one tick per proxy run (bayesopt in pool mode may stop before its cap, so the total is an upper bound)
    bar = _progress.bar(total=n_runs if method in ("random", "regmix") or mode == "continuous"
                        else (max_runs or 3 * n_runs), desc=f"mix optimise ({method})", unit="run")

    def run(w, cost) -> float:
        f = by_cost[min(by_cost, key=lambda c: abs(c - cost))]
        weights = {c: float(x) for c, x in zip(components, w)}
        with _progress.step(f"mix run {len(table.rows) + 1} ({f.name})"):
            loss = float(run_or_skip(table, train_fn, weights, f, seed)[f"loss_{target}"])
        bar.update(1)
        return loss

    out = {"method": method, "mode": mode, "target_fidelity": by_cost[target_cost].name}
    if method == "random":
        W = dirichlet(n_runs, k, seed)
        losses = np.array([run(w, target_cost) for w in W])
        rec = W[int(np.argmin(losses))]
    elif method == "regmix":
        W = regmix_mixtures(n_runs, prior, seed, k=k)
        losses = np.array([run(w, target_cost) for w in W])
        rec = regmix_search(W, losses, seed=seed + 1, prior=prior)["weights"]
    elif mode == "continuous":
        steps = max(0, n_runs - n_init) if n_steps is None else n_steps
        res = bo.live(run, k, n_init=n_init, n_steps=steps, method=method, fidelities=tuple(sorted(by_cost)),
                      target_fidelity=target_cost, seed=seed)
        rec = res["recommended"]
    else:
        C = candidate_pool(k, n_candidates, seed)
        X = np.vstack([np.hstack([C, np.full((len(C), 1), c)]) for c in sorted(by_cost)])
        trace = bo.replay(X, lambda i: -run(X[i, :-1], X[i, -1]), budget=n_runs * target_cost, method=method,
                          target_fidelity=target_cost, seed=seed, n_init=n_init,
                          max_steps=(max_runs or 3 * n_runs) - n_init)
        rec = X[trace.recommended[-1], :-1]
        out["trace"] = trace.to_dict()
    bar.close()
    out["recommended"] = dict(zip(components, map(float, bo.project_simplex(rec))))
    out["runs"] = table.rows
    return out


def evaluate_mixture(train_fn, weights: dict, fidelity: Fidelity, target: str, table: RunTable, seed: int = 0) -> float:
    return float(run_or_skip(table, train_fn, weights, fidelity, seed)[f"loss_{target}"])


def table_components(rows: list) -> list:
    """Component names from a run table's ``w_<name>`` columns (first-seen order)."""
    return list(dict.fromkeys(c[2:] for r in rows for c in r if c.startswith("w_")))


def check_table(rows: list, components: list, target: str, where: str) -> None:
    """A user-filled run table must have the columns the surrogate reads, finite, per row."""
    if not rows:
        raise InputError("the run table is empty", where)
    need = [f"w_{c}" for c in components] + ["fidelity_cost", f"loss_{target}"]
    for i, r in enumerate(rows):
        for col in need:
            v = r.get(col)
            if v is None or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InputError(f"column {col!r} must be a finite number, got {v!r}", where, i)
        if any(r[f"w_{c}"] < 0 for c in components) or sum(r[f"w_{c}"] for c in components) <= 0:
            raise InputError("mixture weights must be >= 0 and not all 0", where, i)


def recommend_from_table(rows: list, components: list, target: str, *, method: str = "gp", n_candidates: int = 4096,
                         seed: int = 0, where: str = "runs") -> dict:
    """Fit the surrogate on a (user-filled) run table and recommend a mixture.

    ``gp``: the multi-fidelity GP when the table has several fidelity costs (else single-fidelity),
    argmax of the posterior mean at the largest cost over the vertices, the uniform mixture,
    ``n_candidates`` Dirichlet(1) mixtures and the observed mixtures. ``regmix``: LightGBM + the
    mean of the 128 best predicted (target-fidelity rows only)."""
    check_table(rows, components, target, where)
    W = np.array([[r[f"w_{c}"] for c in components] for r in rows], dtype=np.float64)
    W = W / W.sum(1, keepdims=True)
    f = np.array([r["fidelity_cost"] for r in rows], dtype=np.float64)
    y = np.array([r[f"loss_{target}"] for r in rows], dtype=np.float64)
    target_cost = float(f.max())
    if method == "regmix":
        hi = np.isclose(f, target_cost)
        rec = regmix_search(W[hi], y[hi], seed=seed)["weights"]
    elif method == "gp":
        mf = len(np.unique(f)) > 1
        C = np.vstack([candidate_pool(len(components), n_candidates, seed), W])
        rec = bo.recommend(np.hstack([W, f[:, None]]), -y, C, multi_fidelity=mf, target_fidelity=target_cost)
    else:
        raise ConfigError(f"recommend: method must be 'gp' or 'regmix', got {method!r}")
    return {"recommended": dict(zip(components, map(float, bo.project_simplex(rec)))), "target_cost": target_cost,
            "n_runs": len(rows), "method": method}
