"""Selection primitives shared by every selector.

One ranking, several budgets. A ranking orders documents by a key: the score itself (``topk``) or
score/temperature plus Gumbel noise (``gumbel``: Gumbel-top-k, i.e. sampling without replacement
with probability proportional to exp(score/temperature); Kool et al. 2019, as DSIR and MATES use
it). Ties are broken by the stable hash of (seed, id), so the order is a function of
(seed, ids, scores) only: the same under any input order or sharding.

Budgets: ``k`` documents, a ``fraction`` of documents, a fraction of characters (or tokens:
pass the lengths you want counted), or a score ``threshold``; optionally per group (domain) with
quotas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError

RANKINGS = ("topk", "gumbel")


@dataclass(frozen=True)
class Budget:
    """How much to keep; exactly one field is set.

    ``k``: documents. ``fraction``: of documents, k = floor(fraction * N).
    ``length_fraction``: of total length (characters or tokens): the shortest prefix of the
    ranking whose length reaches the fraction (so it keeps just over it).
    ``threshold``: every eligible document whose score is at least as good as the threshold.
    """

    k: int | None = None
    fraction: float | None = None
    length_fraction: float | None = None
    threshold: float | None = None

    def __post_init__(self):
        set_ = [n for n in ("k", "fraction", "length_fraction", "threshold") if getattr(self, n) is not None]
        if len(set_) != 1:
            raise ConfigError(f"a budget needs exactly one of k, fraction, length_fraction, threshold (got {set_ or 'none'})")
        if self.k is not None and (int(self.k) != self.k or self.k < 0):
            raise ConfigError(f"k must be a non-negative integer, got {self.k}")
        for name in ("fraction", "length_fraction"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 1.0):
                raise ConfigError(f"{name} must be in [0, 1], got {v}")

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def ranking_keys(
    scores: np.ndarray,
    ids,
    *,
    seed: int = 0,
    ranking: str = "topk",
    temperature: float = 1.0,
    higher_is_better: bool = True,
    eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(key, tiebreak) per document: larger key ranks first; ineligible documents get -inf."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) != len(ids):
        raise ConfigError(f"scores must be 1-D and aligned with ids ({s.shape} vs {len(ids)})")
    if ranking not in RANKINGS:
        raise ConfigError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
    elig = np.ones(len(s), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    bad_rows = np.flatnonzero(~np.isfinite(s) & elig)
    if len(bad_rows):
        bad = int(bad_rows[0])
        raise ConfigError(f"score of row {bad} is {s[bad]}: scores of eligible documents must be finite")
    h = stable_hash64(seed, ids)
    if ranking == "gumbel":
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))
        g = -np.log(-np.log(u))  # Gumbel(0, 1)
        # higher is better: the largest s/T + G; lower is better: the *smallest* s/T + G, exactly
        # MATES's ``mates_select`` (noise added to the predictions; negating the scores instead
        # would flip the noise's skew and give another distribution)
        key = s / temperature + g if higher_is_better else -(s / temperature + g)
    else:
        key = s.copy() if higher_is_better else -s
    key[~elig] = -np.inf
    return key, h


def rank(key: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Indices of eligible documents, best first (key descending, then tiebreak ascending)."""
    order = np.lexsort((tiebreak, -key))
    n_ok = int(np.count_nonzero(key > -np.inf))
    return order[:n_ok]


def take_budget(
    order: np.ndarray,
    budget: Budget,
    *,
    n_total: int,
    scores: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    total_length: float | None = None,
    higher_is_better: bool = True,
) -> np.ndarray:
    """Cut a best-first ``order`` to the budget.

    ``n_total`` and ``total_length`` count all documents the budget is a fraction of, eligible
    or not (default: all of ``lengths``).
    """
    if budget.k is not None:
        return order[: int(budget.k)]
    if budget.fraction is not None:
        return order[: int(math.floor(budget.fraction * n_total + 1e-9))]
    if budget.length_fraction is not None:
        if lengths is None:
            raise ConfigError("a length budget needs document lengths")
        lengths = np.asarray(lengths, dtype=np.float64)
        total = float(lengths.sum()) if total_length is None else float(total_length)
        goal = budget.length_fraction * total
        if goal <= 0:
            return order[:0]
        csum = np.cumsum(lengths[order])
        n = int(np.searchsorted(csum, goal * (1 - 1e-12), side="left")) + 1
        return order[: min(n, len(order))]
    if scores is None:
        raise ConfigError("a threshold budget needs scores")
    s = np.asarray(scores, dtype=np.float64)[order]
    ok = s >= budget.threshold if higher_is_better else s <= budget.threshold
    return order[ok]


def select(
    scores: np.ndarray,
    ids,
    budget: Budget,
    *,
    seed: int = 0,
    ranking: str = "topk",
    temperature: float = 1.0,
    higher_is_better: bool = True,
    eligible: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    quotas: Mapping[str, Budget] | None = None,
) -> np.ndarray:
    """Indices of the selected documents, in rank order (best first).

    With ``groups`` and ``quotas``, each group is ranked on its own and cut to its own budget
    (a group without a quota keeps nothing); the result is the groups' selections in rank order.
    """
    key, tb = ranking_keys(
        scores, ids, seed=seed, ranking=ranking, temperature=temperature,
        higher_is_better=higher_is_better, eligible=eligible,
    )
    if quotas is None:
        order = rank(key, tb)
        return take_budget(order, budget, n_total=len(key), scores=scores, lengths=lengths,
                           higher_is_better=higher_is_better)
    if groups is None:
        raise ConfigError("quotas need a group (domain) per document")
    groups = np.asarray(groups, dtype=object)
    picked = []
    for g, b in quotas.items():
        members = np.flatnonzero(groups == g)
        order = members[rank(key[members], tb[members])]
        total_length = None if lengths is None else float(np.asarray(lengths, np.float64)[members].sum())
        picked.append(take_budget(order, b, n_total=len(members), scores=scores, lengths=lengths,
                                  total_length=total_length, higher_is_better=higher_is_better))
    allp = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    return allp[rank(key[allp], tb[allp])]
