"""DSIR: Data Selection with Importance Resampling (Xie, Santurkar, Ma, Liang; NeurIPS 2023).

Hashed n-gram bag-of-words models of the raw pool and the target give an importance weight per
document, ``log w(x) = Σ_occurrences log_diff[bucket]`` with
``log_diff = log(p_target + 1e-8) − log(p_raw + 1e-8)`` (not length-normalised, as the reference).
Documents under ``min_example_length`` words are not eligible (short documents win through hash
collisions otherwise). Selection is Gumbel-top-k on log w (sampling without replacement ∝ w),
or deterministic top-k. Follows the reference package ``data-selection`` (p-lambda/dsir 4802a1c):

* the raw distribution is fitted on the pool sample in order until the feature total passes
  ``num_tokens_to_fit`` (``"auto"`` = 100,000 × buckets, ``"all"`` = no cap; the document that
  crosses the budget is included), and is never smoothed;
* the target distribution is fitted on all target data, with an optional Laplace pseudo-count
  (``target_laplace_smoothing``, default 0): (counts + α) / (T + α·B);
* several targets: by default pooled into one distribution; with ``separate_targets`` each gets
  its own log-weight column and a share of k (``target_proportions``, default ∝ each target's
  feature count; floors, remainder to the last target; documents taken by one target are masked
  for the next).

``per_ngram=True`` (not the paper's; for ``unit="window"``, :mod:`lmsieve.selectors.windows`)
divides the log weight by the document's n-gram count. That score is no longer a log importance
weight, so resampling it with Gumbel noise is not DSIR's importance resampling, and the noise
swamps its small range (eval harness, heldout_code_python at a 2% budget: Gumbel 0.15 precision);
its default ranking is therefore deterministic top-k (``ranking="gumbel"`` still asks for noise).

Weights stay in log space (issue #12 in the reference repo: weights span 1e-52 … 1e40).
"""
from __future__ import annotations

import numpy as np

from lmsieve.features.ngrams import HashedNgramFeaturizer, NgramCounts
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector, register

EPS = 1e-8


def _as_target_list(target) -> list:
    """One target batch, or a list/tuple/dict of them (several targets)."""
    if isinstance(target, dict):
        return list(target.values())
    if isinstance(target, (list, tuple)) and target and not isinstance(target[0], str):
        return list(target)
    return [target]


@register
class DSIR(Selector):
    name = "dsir"
    default_ranking = "gumbel"
    needs_pool_sample = True
    fitted_attributes = ("raw_counts_", "target_counts_", "log_diff_")

    def __init__(
        self,
        num_buckets: int = 10000,
        ngrams: int = 2,
        min_example_length: int = 100,
        target_laplace_smoothing: float = 0.0,
        num_tokens_to_fit: int | str = "auto",
        separate_targets: bool = False,
        target_proportions: list[float] | None = None,
        per_ngram: bool = False,
    ):
        if not (num_tokens_to_fit in ("auto", "all") or (isinstance(num_tokens_to_fit, int) and num_tokens_to_fit > 0)):
            raise ConfigError(f"num_tokens_to_fit must be 'auto', 'all' or a positive int, got {num_tokens_to_fit!r}")
        if target_laplace_smoothing < 0:
            raise ConfigError("target_laplace_smoothing must be >= 0")
        super().__init__(
            num_buckets=num_buckets, ngrams=ngrams, min_example_length=min_example_length,
            target_laplace_smoothing=target_laplace_smoothing, num_tokens_to_fit=num_tokens_to_fit,
            separate_targets=separate_targets, target_proportions=target_proportions,
            **({"per_ngram": True} if per_ngram else {}),  # not the paper's: listed only when on
        )
        self.featurizer = HashedNgramFeaturizer(num_buckets=num_buckets, ngrams=ngrams)
        if per_ngram:  # a mean log ratio, not a log importance weight: no resampling noise by default
            self.default_ranking = "topk"

    # -- fitting --------------------------------------------------------------------------------
    @property
    def fit_budget(self) -> int | None:
        """Raw-pool feature budget (None: fit on everything)."""
        v = self._params["num_tokens_to_fit"]
        return 100_000 * self._params["num_buckets"] if v == "auto" else None if v == "all" else int(v)

    def raw_counts(self, pool_sample, already: int = 0) -> tuple[np.ndarray, bool]:
        """Bucket counts of a pool batch up to the fit budget: (counts, budget_reached).

        ``already`` is the feature total counted in earlier batches, so a stream of batches can
        be fitted in order exactly as one pass.
        """
        return self.raw_counts_from_counts(self.featurizer.transform(pool_sample), already)

    def raw_counts_from_counts(self, occ: NgramCounts, already: int) -> tuple[np.ndarray, bool]:
        """:meth:`raw_counts` from already featurized documents (e.g. stored features)."""
        budget = self.fit_budget
        if budget is None:
            return occ.total_counts(), False
        per_doc = np.cumsum(occ.per_doc()) + already
        crossing = np.flatnonzero(per_doc > budget)
        if len(crossing) == 0:
            return occ.total_counts(), False
        end = occ.indptr[int(crossing[0]) + 1]  # the crossing document is included
        head = np.bincount(occ.indices[:end], weights=occ.counts[:end], minlength=self.featurizer.num_buckets)
        return head.astype(np.int64), True

    def fit(self, target, pool_sample=None) -> "DSIR":
        if pool_sample is None:
            raise ConfigError("DSIR needs a pool sample to fit the raw distribution (pool_sample=...)")
        raw, _ = self.raw_counts(pool_sample)
        targets = [self.featurizer.transform(t).total_counts() for t in _as_target_list(target)]
        return self.fit_counts(raw, targets)

    def fit_score(self, target, pool, batch_rows: int = 4096, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Fit with ``pool`` as the raw sample and score it, featurizing the pool once."""
        counts, raw, done = [], np.zeros(self._params["num_buckets"], dtype=np.int64), False
        for start in range(0, pool.num_rows, batch_rows):
            c = self.featurizer.transform(pool.slice(start, batch_rows))
            counts.append(c)
            if not done:
                part, done = self.raw_counts_from_counts(c, int(raw.sum()))
                raw += part
            if progress is not None:
                progress(c.n_docs)
        targets = [self.featurizer.transform(t).total_counts() for t in _as_target_list(target)]
        self.fit_counts(raw, targets)
        allc = NgramCounts.concat(counts, self._params["num_buckets"])
        return self.score_counts(allc)

    def fit_counts(self, raw_counts: np.ndarray, target_counts) -> "DSIR":
        """Fit from bucket-count vectors (what a distributed job sums with a combiner)."""
        B = self._params["num_buckets"]
        raw = np.asarray(raw_counts, dtype=np.float64)
        tc = np.atleast_2d(np.asarray(target_counts, dtype=np.float64))
        if raw.shape != (B,) or tc.shape[1] != B:
            raise ConfigError(f"count vectors must have {B} buckets")
        if raw.sum() <= 0:
            raise ConfigError("the pool sample has no n-gram features (is it empty?)")
        if np.any(tc.sum(axis=1) <= 0):
            raise ConfigError("a target set has no n-gram features (is it empty?)")
        if not self._params["separate_targets"]:
            tc = tc.sum(axis=0, keepdims=True)
        alpha = float(self._params["target_laplace_smoothing"])
        p_target = (tc + alpha) / (tc.sum(axis=1, keepdims=True) + alpha * B)
        p_raw = raw / raw.sum()
        self.raw_counts_ = raw.astype(np.int64)
        self.target_counts_ = tc.astype(np.int64)
        self.log_diff_ = np.log(p_target + EPS) - np.log(p_raw + EPS)
        return self

    @property
    def target_proportions_(self) -> np.ndarray:
        """Share of k per target (separate targets): given, or ∝ each target's feature count."""
        given = self._params["target_proportions"]
        w = np.asarray(given if given is not None else self.target_counts_.sum(axis=1), dtype=np.float64)
        if len(w) != self.log_diff_.shape[0]:
            raise ConfigError(f"target_proportions has {len(w)} entries for {self.log_diff_.shape[0]} targets")
        return w / w.sum()

    def allocate(self, k: int) -> list[int]:
        """k split over targets: floor(k·p_j), the remainder to the last target (as the reference)."""
        ks = [int(k * p) for p in self.target_proportions_]
        ks[-1] += k - sum(ks)
        return ks

    # -- scoring --------------------------------------------------------------------------------
    def score_counts(self, occ: NgramCounts) -> tuple[np.ndarray, np.ndarray]:
        """(log weights (n,) or (n, targets), eligible) from featurized documents.

        The one scoring implementation: in-process, Beam (from stored counts) and datatrove."""
        self.check_fitted()
        cols = [occ.dot(row) for row in self.log_diff_]
        if self._params.get("per_ngram"):  # normalised option (window mode): mean log weight per n-gram
            cols = [c / np.maximum(occ.per_doc(), 1) for c in cols]
        words = self.featurizer.word_counts(occ)
        eligible = words >= self._params["min_example_length"]
        scores = cols[0] if len(cols) == 1 else np.stack(cols, axis=1)
        return scores, eligible

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        return self.score_counts(self.featurizer.transform(batch))

    # -- persistence ----------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"raw_counts_": self.raw_counts_, "target_counts_": self.target_counts_, "log_diff_": self.log_diff_}
