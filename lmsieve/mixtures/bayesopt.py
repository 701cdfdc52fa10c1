"""Bayesian mixture optimisation on BoTorch (ADMIRE-BayesOpt, Chen et al., arXiv 2508.11551).

Inputs are mixture weights π on the simplex plus the fidelity as the *last* column; the objective
is maximised (use −loss). Model: ``SingleTaskMultiFidelityGP`` (linear-truncated fidelity kernel,
Matérn-5/2 over π), exact-MLL fit. Acquisitions:

* ``mf-mes``: ``qMultiFidelityMaxValueEntropy`` made cost-aware by
  ``InverseCostWeightedUtility(AffineFidelityCostModel(fidelity weight 1, fixed cost 0))`` — the
  information gain per unit of fidelity cost — with ``project_to_target_fidelity``.
* ``qlogei``: single-fidelity ``qLogExpectedImprovement`` at the target fidelity (simpler mode).

Modes: :func:`replay` picks among a fixed pool of candidate runs (the paper's released runs);
:func:`suggest_continuous` optimises over the continuous simplex with the equality constraint
Σπ = 1 (botorch#484) for the *live* loop. The recommendation is the argmax of the posterior mean
at the target fidelity (the paper's MF script used the acquisition value, a quirk we do not copy).

Max-value samples: ``num_mv_samples=1`` as the reference (``mfbayesopt_maxvalue.py``). A failed GP
fit is not swallowed: it is logged, raised as a :class:`GPFitWarning` and listed in
``Trace.gp_fit_failures`` (the reference lets ``ModelFittingError`` end the run; we continue with the
prior hyperparameters so a long replay survives one bad step, and say so).

Choices where the spec is silent: the max-value candidate set is the candidate mixtures projected
to the target fidelity (at most ``n_mv_candidates`` of them) rather than only the observed X; the
acquisition is scored on at most ``max_scored`` unqueried rows per step (a stable random subset)
to bound the cost per step on CPU; y is standardised inside the GP (``Standardize``); BoTorch's
random draws (max-value samples, raw restarts) run under a forked torch RNG seeded with ``seed``
(:func:`torch_seeded`), so a run is reproducible and the caller's global RNG state is untouched;
recommendations use the posterior mean only (variances skipped, in chunks).
"""
from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

DTYPE = torch.float64
log = logging.getLogger(__name__)


class GPFitWarning(UserWarning):
    """The exact-MLL fit of the GP failed (the step continues with the prior hyperparameters)."""


def torch_seeded(fn):
    """Run ``fn`` under a forked torch RNG seeded with its ``seed`` argument: BoTorch draws (max-value
    samples, raw restarts) are then reproducible and the caller's global RNG state is untouched."""
    @functools.wraps(fn)
    def wrapper(*args, seed: int = 0, **kw):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return fn(*args, seed=seed, **kw)
    return wrapper


@dataclass
class Trace:
    """What a replay run did: queried rows, their fidelities and values, cost so far, recommendations."""
    rows: list = field(default_factory=list)
    fidelities: list = field(default_factory=list)
    values: list = field(default_factory=list)
    cum_cost: list = field(default_factory=list)
    recommended: list = field(default_factory=list)  # X row recommended after each step; last = final
    gp_fit_failures: list = field(default_factory=list)  # "step N: <error>" per failed GP fit

    def to_dict(self) -> dict:
        return {k: (list(v) if k == "gp_fit_failures" else
                    [float(x) if isinstance(x, (float, np.floating)) else int(x) for x in v])
                for k, v in self.__dict__.items()}


def fit_gp(X: np.ndarray, y: np.ndarray, *, multi_fidelity: bool, maxiter: int = 75):
    """Fit the GP on X (n, K+1: π then fidelity) and y (n,), maximisation convention."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP, SingleTaskMultiFidelityGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    tX = torch.as_tensor(X, dtype=DTYPE)
    tY = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(-1, 1), dtype=DTYPE)
    if multi_fidelity:
        model = SingleTaskMultiFidelityGP(tX, tY, data_fidelities=[tX.shape[1] - 1],
                                          outcome_transform=Standardize(m=1))
    else:
        model = SingleTaskGP(tX[:, :-1], tY, outcome_transform=Standardize(m=1))
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    model.fit_error_ = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": maxiter}})
        except Exception as e:  # noqa: BLE001 — reported below, and in Trace.gp_fit_failures
            model.fit_error_ = f"{type(e).__name__}: {e}"
    if model.fit_error_ is not None:
        msg = f"GP fit failed on {len(tX)} runs ({model.fit_error_}); the prior hyperparameters are used"
        log.warning(msg)
        warnings.warn(msg, GPFitWarning, stacklevel=2)
    return model


def posterior_mean(model, X: np.ndarray, *, multi_fidelity: bool, chunk: int = 512) -> np.ndarray:
    """Posterior mean only (variances skipped: the full covariance of thousands of rows is the cost)."""
    import gpytorch

    tX = torch.as_tensor(X if multi_fidelity else X[:, :-1], dtype=DTYPE)
    with torch.no_grad(), gpytorch.settings.skip_posterior_variances(True):
        return np.concatenate([model.posterior(tX[i:i + chunk]).mean.squeeze(-1).numpy()
                               for i in range(0, len(tX), chunk)])


def mes_acquisition(model, cand_target: np.ndarray, target_fidelity: float = 1.0, num_mv_samples: int = 1,
                    num_fantasies: int = 16):
    """Cost-aware multi-fidelity MES (cost = fidelity value, the paper's choice)."""
    from botorch.acquisition.cost_aware import InverseCostWeightedUtility
    from botorch.acquisition.max_value_entropy_search import qMultiFidelityMaxValueEntropy
    from botorch.acquisition.utils import project_to_target_fidelity
    from botorch.models.cost import AffineFidelityCostModel

    d = cand_target.shape[1] - 1
    cost = AffineFidelityCostModel(fidelity_weights={d: 1.0}, fixed_cost=0.0)
    return qMultiFidelityMaxValueEntropy(
        model, candidate_set=torch.as_tensor(cand_target, dtype=DTYPE), num_fantasies=num_fantasies,
        num_mv_samples=num_mv_samples, cost_aware_utility=InverseCostWeightedUtility(cost_model=cost),
        project=lambda X: project_to_target_fidelity(X, target_fidelities={d: target_fidelity}, d=d + 1))


def logei_acquisition(model, best_f: float):
    from botorch.acquisition.logei import qLogExpectedImprovement

    return qLogExpectedImprovement(model, best_f=best_f)


def _score(acqf, X: np.ndarray, chunk: int = 256) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(X), chunk):
            out.append(acqf(torch.as_tensor(X[i:i + chunk], dtype=DTYPE).unsqueeze(1)).numpy())
    return np.concatenate(out)


@torch_seeded
def replay(X: np.ndarray, evaluate, *, budget: float, method: str = "mf-mes", target_fidelity: float = 1.0,
           seed: int = 0, n_init: int = 1, max_steps: int = 200, max_scored: int = 512,
           n_mv_candidates: int = 256, num_mv_samples: int = 1, gp_maxiter: int = 75) -> Trace:
    """Choose runs from a fixed pool until the cost ``budget`` is spent.

    ``X``: (N, K+1) candidate runs (π, fidelity). ``evaluate(row) -> value`` (maximised). The cost
    of a run is its fidelity. ``mf-mes`` may query any fidelity; ``qlogei`` only rows at
    ``target_fidelity``. Initial design: ``n_init`` random rows at the lowest fidelity (the paper's
    NUM_INIT = 1) for mf-mes, at the target fidelity for qlogei. The recommendation after each step
    is the target-fidelity row with the largest posterior mean.
    """
    if method not in ("mf-mes", "qlogei"):
        raise ValueError(f"method: expected 'mf-mes' or 'qlogei', got {method!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    fid = X[:, -1]
    target_rows = np.flatnonzero(np.isclose(fid, target_fidelity))
    allowed = np.arange(len(X)) if method == "mf-mes" else target_rows
    init_pool = np.flatnonzero(np.isclose(fid, fid.min())) if method == "mf-mes" else target_rows
    mf = method == "mf-mes"
    trace, spent, queried = Trace(), 0.0, np.zeros(len(X), bool)
    cand_t = np.unique(X[target_rows, :-1], axis=0)
    if len(cand_t) > n_mv_candidates:
        cand_t = cand_t[rng.choice(len(cand_t), n_mv_candidates, replace=False)]
    cand_t = np.hstack([cand_t, np.full((len(cand_t), 1), target_fidelity)])

    def query(i):
        nonlocal spent
        if spent + fid[i] > budget + 1e-12:
            return False
        queried[i] = True
        spent += float(fid[i])
        trace.rows.append(int(i)); trace.fidelities.append(float(fid[i]))
        trace.values.append(float(evaluate(int(i)))); trace.cum_cost.append(spent)
        return True

    for i in rng.choice(init_pool, min(n_init, len(init_pool)), replace=False):
        query(i)
    for _ in range(max_steps + 1):
        rows = np.array(trace.rows)
        model = fit_gp(X[rows], np.array(trace.values), multi_fidelity=mf, maxiter=gp_maxiter)
        if model.fit_error_ is not None:
            trace.gp_fit_failures.append(f"step {_}: {model.fit_error_}")
        rec_mean = posterior_mean(model, X[target_rows], multi_fidelity=mf)
        trace.recommended.append(int(target_rows[int(np.argmax(rec_mean))]))  # given data so far
        free = allowed[~queried[allowed] & (fid[allowed] <= budget - spent + 1e-12)]
        if len(free) == 0 or _ == max_steps:
            break
        if len(free) > max_scored:
            free = np.sort(rng.choice(free, max_scored, replace=False))
        if mf:
            acqf = mes_acquisition(model, cand_t, target_fidelity, num_mv_samples=num_mv_samples)
            vals = _score(acqf, X[free])
        else:
            vals = _score(logei_acquisition(model, float(np.max(trace.values))), X[free, :-1])
        query(int(free[int(np.nanargmax(vals))]))
    return trace


def project_simplex(w: np.ndarray) -> np.ndarray:
    """Clip tiny negatives from the optimiser and renormalise, so Σπ = 1 and π ≥ 0 exactly-ish."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    return w / w.sum()


@torch_seeded
def suggest_continuous(X: np.ndarray, y: np.ndarray, *, method: str = "qlogei", fidelities=(1.0,),
                       target_fidelity: float = 1.0, seed: int = 0, num_restarts: int = 4,
                       raw_samples: int = 64, num_mv_samples: int = 1) -> tuple[np.ndarray, float]:
    """Live mode: the next (π, fidelity) to run, optimised over the simplex (Σπ = 1, π ≥ 0)."""
    from botorch.optim import optimize_acqf, optimize_acqf_mixed

    k = X.shape[1] - 1
    mf = method == "mf-mes"
    model = fit_gp(X, y, multi_fidelity=mf)
    eq = [(torch.arange(k), torch.ones(k, dtype=DTYPE), 1.0)]
    if mf:
        rng = np.random.Generator(np.random.PCG64(seed))
        cand = rng.dirichlet(np.ones(k), 256)
        cand = np.hstack([cand, np.full((len(cand), 1), target_fidelity)])
        acqf = mes_acquisition(model, cand, target_fidelity, num_mv_samples=num_mv_samples)
        bounds = torch.tensor([[0.0] * k + [min(fidelities)], [1.0] * k + [max(fidelities)]], dtype=DTYPE)
        x, _ = optimize_acqf_mixed(acqf, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
                                   fixed_features_list=[{k: float(f)} for f in fidelities], equality_constraints=eq)
        x = x.squeeze(0).numpy()
        return project_simplex(x[:k]), float(x[k])
    acqf = logei_acquisition(model, float(np.max(y)))
    bounds = torch.tensor([[0.0] * k, [1.0] * k], dtype=DTYPE)
    x, _ = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
                         equality_constraints=eq)
    return project_simplex(x.squeeze(0).numpy()), float(target_fidelity)


def recommend(X: np.ndarray, y: np.ndarray, candidates: np.ndarray, *, multi_fidelity: bool = True,
              target_fidelity: float = 1.0) -> np.ndarray:
    """Argmax of the posterior mean at the target fidelity over candidate mixtures (M, K)."""
    model = fit_gp(X, y, multi_fidelity=multi_fidelity)
    C = np.hstack([candidates, np.full((len(candidates), 1), target_fidelity)])
    return candidates[int(np.argmax(posterior_mean(model, C, multi_fidelity=multi_fidelity)))]


def live(run_fn, k: int, *, n_init: int = 6, n_steps: int = 10, method: str = "qlogei", fidelities=(1.0,),
         target_fidelity: float = 1.0, seed: int = 0, n_recommend_candidates: int = 4096) -> dict:
    """Live loop: ``run_fn(weights (K,), fidelity) -> loss`` (e.g. a proxy run); minimises the loss.

    ``n_init`` Dirichlet(1) mixtures (PCG64(seed)) at the lowest fidelity for mf-mes, else at the
    target; then ``n_steps`` suggestions from :func:`suggest_continuous`; the recommendation is the
    posterior-mean argmax at the target fidelity over Dirichlet candidates plus the queried mixtures.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    f0 = min(fidelities) if method == "mf-mes" else target_fidelity
    X, y = [], []
    for w in rng.dirichlet(np.ones(k), n_init):
        X.append(np.append(w, f0)); y.append(-float(run_fn(w, f0)))
    for step in range(n_steps):
        w, f = suggest_continuous(np.array(X), np.array(y), method=method, fidelities=fidelities,
                                  target_fidelity=target_fidelity, seed=seed + 1 + step)
        X.append(np.append(w, f)); y.append(-float(run_fn(w, f)))
    X, y = np.array(X), np.array(y)
    cands = np.vstack([rng.dirichlet(np.ones(k), n_recommend_candidates), X[:, :-1]])
    rec = recommend(X, y, cands, multi_fidelity=method == "mf-mes", target_fidelity=target_fidelity)
    return {"X": X, "losses": -y, "recommended": project_simplex(rec)}
