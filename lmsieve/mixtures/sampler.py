"""The mixture sampler: a pure function over (ids, component, scores, lengths) arrays.

Component ``c`` gets the quota ``w_c × budget``. Inside a component, documents are ordered by
``top`` (score, best first), ``gumbel`` (score/T + stable Gumbel noise: sampling without
replacement ∝ exp(score/T)) or ``random`` (stable hash); ties break by the stable hash of (seed, id).
A component takes the shortest prefix of that order whose length reaches its quota, so each
component overshoots by less than one document and the budget is met exactly up to one document
per component. Everything depends on (seed, id) only: same inputs, same sample, on any machine.

A Beam job (``lmsieve/pipelines``) can call :func:`sample_mixture` once per mixture on the gathered
(id, component, score, length) columns — the per-document text never has to be in memory — and then
join the returned ids back to the documents.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmsieve.sampling.hashing import stable_gumbel, stable_hash64, stable_uniform
from lmsieve.schemas.errors import ConfigError, LmsieveError


class ShortfallError(LmsieveError, ValueError):
    """A component holds less than its share of the budget (and redistribution is off)."""


@dataclass
class MixtureSample:
    indices: np.ndarray          # selected rows, in input order
    quotas: dict                 # component -> quota (budget units) after redistribution
    taken: dict                  # component -> amount taken (budget units)
    counts: dict                 # component -> documents taken
    available: dict              # component -> amount available


def _order_keys(ids, scores, ranking: str, temperature: float, seed: int) -> np.ndarray:
    """Sort key, larger = earlier (float64)."""
    if ranking == "random" or scores is None:
        return stable_uniform(seed, ids)
    s = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise ConfigError(f"scores must be finite (row {int(np.flatnonzero(~np.isfinite(s))[0])})")
    if ranking == "top":
        return s
    if ranking == "gumbel":
        return s / temperature + stable_gumbel(seed, ids)
    raise ConfigError(f"ranking: expected 'top', 'gumbel' or 'random', got {ranking!r}")


def _quotas(weights: dict, budget: float, avail: dict, redistribute: bool) -> dict:
    q = {c: w * budget for c, w in weights.items()}
    short = {c for c in q if q[c] > avail.get(c, 0.0) and q[c] > 0}
    if short and not redistribute:
        c = sorted(short)[0]
        raise ShortfallError(
            f"component {c!r} cannot fill its share: needs {q[c]:.6g}, has {avail.get(c, 0.0):.6g} "
            f"({len(short)} short component(s): {', '.join(sorted(short))}); set redistribute = true "
            f"to give the deficit to the other components")
    fixed: dict = {}
    while short:  # water-filling: short components take all they have; the rest share the deficit
        for c in short:
            fixed[c] = avail.get(c, 0.0)
        free = {c: weights[c] for c in q if c not in fixed and weights[c] > 0}
        left = budget - sum(fixed.values())
        wsum = sum(free.values())
        if not free or wsum <= 0:
            raise ShortfallError(f"the pool cannot fill the budget {budget:.6g} even with redistribution "
                                 f"(total available {sum(avail.get(c, 0.0) for c in q):.6g})")
        q = {**fixed, **{c: left * w / wsum for c, w in free.items()}}
        short = {c for c in free if q[c] > avail.get(c, 0.0)}
    return q


def sample_mixture(ids, components, lengths, weights: dict, budget: float, *, scores=None,
                   ranking: str = "random", temperature: float = 1.0, seed: int = 0,
                   redistribute: bool = False) -> MixtureSample:
    """Draw a mixture from a pool; see the module docstring. ``lengths`` are in budget units."""
    ids = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)
    comp = np.asarray(components.to_pylist() if hasattr(components, "to_pylist") else components, dtype=object)
    lens = np.asarray(lengths, dtype=np.float64)
    n = len(ids)
    if len(comp) != n or len(lens) != n or (scores is not None and len(scores) != n):
        raise ConfigError("ids, components, lengths (and scores) must have the same length")
    if np.any(lens < 0):
        raise ConfigError(f"lengths must be >= 0 (row {int(np.flatnonzero(lens < 0)[0])})")
    wsum = float(sum(weights.values()))
    if wsum <= 0 or any(v < 0 for v in weights.values()):
        raise ConfigError("weights must be >= 0 and not all 0")
    weights = {str(k): float(v) / wsum for k, v in weights.items()}
    names, code = np.unique(comp.astype(str), return_inverse=True) if n else (np.array([], str), np.zeros(0, int))
    avail = {str(c): float(lens[code == i].sum()) for i, c in enumerate(names)}
    quotas = _quotas(weights, float(budget), avail, redistribute)

    key = _order_keys(ids, scores, ranking, temperature, seed)
    tie = stable_hash64(seed, ids)
    order = np.lexsort((tie, -key, code))            # by component, then key desc, then hash
    c_sorted, l_sorted = code[order], lens[order]
    csum = np.cumsum(l_sorted)
    starts = np.searchsorted(c_sorted, np.arange(len(names)))
    before = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)[c_sorted]
    within = csum - l_sorted - before                  # amount taken before this doc in its component
    q_arr = np.array([quotas.get(str(c), 0.0) for c in names])[c_sorted] if n else np.zeros(0)
    keep = within < q_arr - 1e-9
    idx = np.sort(order[keep])
    taken = {str(c): float(lens[idx][code[idx] == i].sum()) for i, c in enumerate(names)}
    counts = {str(c): int((code[idx] == i).sum()) for i, c in enumerate(names)}
    return MixtureSample(idx, quotas, taken, counts, avail)
