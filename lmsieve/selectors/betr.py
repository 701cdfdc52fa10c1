"""BETR: benchmark-targeted ranking (Mizrahi et al., Apple 2025, arXiv:2507.12466).

1. Embed every target example individually and a sample of the pool (``pool_sample``, capped
   at ``sample_size`` documents picked by the stable hash of their ids).
2. Each example ranks the sample by cosine; a document's label score is its **best rank** over
   all examples (``aggregation="max"``, the paper's choice: any decreasing v(rank) gives the same
   order); ``"mean"`` (mean of v = log2(1/rank)) is the ablation: there k starts at a list size
   that alone covers the positive fraction and an unlisted rank counts as (k+1+N)/2. Exact full ranks are not
   needed: an exact blocked faiss top-k per example (``lmsieve.features.knn``), k doubled until
   the union of the top-k lists covers ``positive_fraction`` of the sample; a document outside an
   example's list gets rank k+1. Ties on the best rank are broken by the cosine at that rank.
3. Top ``positive_fraction`` (10%) = positive, the rest negative, downsampled to 1:1 (the
   negatives with the smallest stable hash of (seed, id) are kept).
4. fastText (whitespace tokens, wordNgrams 2, lr 0.03, dim 128, ws 10, minCount 5, 5 epochs,
   one thread and a fixed seed so that a fit is reproducible) scores every pool document:
   score = P(positive) in [0, 1].
5. Threshold: the held-out part of the sample (``heldout_fraction``, by hash, never trained on) is
   scored; ``threshold_`` keeps ``token_fraction`` of its **tokens** (whitespace tokens), not of
   its documents. Documents scoring below it are marked ineligible, so any budget acts as a cap
   on the paper's filter (``--keep 1.0`` = exactly the filter); ``token_fraction=1`` disables it.

The kept fraction should grow with training compute (the paper: "the filtering rate must scale
with compute"). Its fit over 500+ models (1e19-1e22 FLOPs) is F_opt(C) = 4e-5 * C^0.25 percent of
the tokens for C training FLOPs: :func:`optimal_keep_fraction` (4.0% at 1e20, 22.5% at 1e23; the
spec's rounded anchors "3% at 1e20, 30% at 1e23" do not lie on a C^0.25 law, so we follow the
formula). Pass it as ``token_fraction``.

Beam (and any per-document scorer): fit once in-process and ``save(DIR)`` (selector JSON plus
``betr_fasttext.bin``); ``fitted=DIR`` makes ``fit`` a load (no pool sample), so scoring is
per document: the features job stores score and eligibility (score >= ``threshold_``, the token
threshold fitted on the held-out sample), and the selection job keeps the eligible documents up
to its budget (``keep_fraction=1`` = the paper's filter; ``keep_chars_fraction=F`` with
``token_fraction=1`` instead keeps the best documents holding F of the pool's characters, a
length budget over the whole pool rather than over the held-out sample).

Choices where the paper is silent: benchmark examples are embedded without a query prefix
(``query_prefix``); instruction rows use ``chat_template``; fastText ``bucket`` defaults to
fastText's 2M (lower it for small pools: the model file is (vocab + bucket) x dim floats);
newlines become spaces for fastText. The fastText model is saved as ``betr_fasttext.bin`` beside
``selector.json`` and read back only from that directory: load with ``Betr.load(dir)`` or
``fitted=dir``.
"""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np

from lmsieve.features.fasttext_model import fasttext_line, train_fasttext
from lmsieve.features.knn import ExactIPIndex
from lmsieve.sampling.hashing import stable_uniform
from lmsieve.schemas.document import ID
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.chat_template import TEMPLATE_COLUMNS, template_texts
from lmsieve.selectors.fitted_dir import FittedDirMixin

FASTTEXT_FILE = "betr_fasttext.bin"
FASTTEXT_ARGS = dict(wordNgrams=2, lr=0.03, dim=128, ws=10, minCount=5, epoch=5)


def optimal_keep_fraction(compute_flops: float) -> float:
    """The paper's compute-optimal kept fraction of tokens, F_opt(C) = 4e-5 * C^0.25 percent
    (returned as a fraction, capped at 1): 0.04 at 1e20 FLOPs, 0.225 at 1e23."""
    if not compute_flops > 0:
        raise ConfigError(f"compute_flops must be > 0, got {compute_flops}")
    return min(1.0, 4e-5 * float(compute_flops) ** 0.25 / 100.0)


def topk_lists(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (cosines, doc indices) per query; entry r of a row has rank r + 1."""
    index = ExactIPIndex(docs.shape[1], use_gpu=False)
    index.add(docs)
    return index.search(queries, min(k, len(docs)))


def best_ranks(queries: np.ndarray, docs: np.ndarray, fraction: float,
               per_list: bool = False) -> tuple[np.ndarray, np.ndarray, int, tuple]:
    """(best rank (N,), cosine at the best rank (N,), k, rank lists) with k grown until the union
    of the per-example top-k lists covers ``fraction`` of the documents; others get rank k+1.
    ``per_list`` (the mean ablation) starts k where each list alone covers the fraction."""
    n, q = len(docs), len(queries)
    need = max(1, math.ceil(fraction * n))
    k = need if per_list else max(1, min(n, math.ceil(need / q)))
    while True:
        cos, idx = topk_lists(queries, docs, k)
        if len(np.unique(idx[idx >= 0])) >= need or k >= n:
            break
        k = min(n, 2 * k)
    k = idx.shape[1]
    rank = np.broadcast_to(np.arange(1, k + 1), idx.shape)
    best = np.full(n, k + 1, dtype=np.int64)
    np.minimum.at(best, idx.ravel(), rank.ravel())
    at_best = rank.ravel() == best[idx.ravel()]
    best_cos = np.full(n, -np.inf)
    np.maximum.at(best_cos, idx.ravel()[at_best], cos.ravel()[at_best].astype(np.float64))
    return best, best_cos, k, (cos, idx)


def rank_scores(idx: np.ndarray, n: int, aggregation: str = "max") -> np.ndarray:
    """Label score per document from the per-example rank lists (higher = better): -log2(best
    rank) for ``max``; the mean over examples of log2(1/rank) for ``mean``, where an unlisted
    rank (one of k+1..N) counts as their mean (k+1+N)/2."""
    k = idx.shape[1]
    flat, r = idx.ravel(), np.broadcast_to(np.arange(1, k + 1, dtype=np.float64), idx.shape).ravel()
    ok = flat >= 0
    flat, r = flat[ok], r[ok]
    if aggregation == "max":
        best = np.full(n, k + 1, dtype=np.float64)
        np.minimum.at(best, flat, r)
        return -np.log2(best)
    if aggregation != "mean":
        raise ConfigError(f"aggregation: expected 'max' or 'mean', got {aggregation!r}")
    listed = np.bincount(flat, minlength=n).astype(np.float64)
    total = np.bincount(flat, weights=-np.log2(r), minlength=n)
    off = (k + 1 + max(n, k + 1)) / 2  # an unlisted rank is one of k+1..N: impute their mean
    return (total + (idx.shape[0] - listed) * -np.log2(off)) / idx.shape[0]


def token_counts(texts: list[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=np.int64)


def token_threshold(scores: np.ndarray, tokens: np.ndarray, fraction: float) -> float:
    """The score threshold whose kept set (score >= it) holds ``fraction`` of the tokens."""
    order = np.argsort(-scores, kind="stable")
    csum = np.cumsum(tokens[order].astype(np.float64))
    j = min(int(np.searchsorted(csum, fraction * csum[-1] * (1 - 1e-12), side="left")), len(order) - 1)
    return float(scores[order[j]])


def balanced_labels(label_score: np.ndarray, tiebreak: np.ndarray, ids: list[str], fraction: float, seed: int):
    """(positive indices, negative indices): top ``fraction`` by (score, tiebreak), negatives 1:1."""
    order = np.lexsort((-tiebreak, -label_score))
    n_pos = max(1, int(round(fraction * len(order))))
    pos, neg = order[:n_pos], order[n_pos:]
    u = stable_uniform(seed, [ids[i] for i in neg])
    return pos, neg[np.argsort(u, kind="stable")[:n_pos]]


@register
class Betr(FittedDirMixin, Selector):
    """Score = fastText P(similar to the benchmark examples), trained on rank-derived labels.

    ``token_fraction``: share of tokens the fitted threshold keeps (default 0.1, the paper's
    default); the paper's compute-optimal value is ``optimal_keep_fraction(C)`` = 4e-5 * C^0.25 %
    for C training FLOPs. ``fitted=DIR``: load a saved fit instead of fitting (Beam jobs)."""

    name = "betr"
    input_columns = TEMPLATE_COLUMNS
    needs_pool_sample = True
    fitted_attributes = ("model_", "threshold_")
    execution_params = ("device",)
    fasttext_attributes = ("model_",)  # pickled as .bin bytes for Beam workers (FittedDirMixin)
    cli_note = ("token_fraction=F keeps F of the tokens (held-out threshold; default 0.1); the paper's "
                "compute-optimal F = 4e-5*C^0.25 percent for C training FLOPs (4% at 1e20, 22.5% at 1e23: "
                "lmsieve.selectors.betr.optimal_keep_fraction); fitted=DIR loads a saved fit (Beam jobs); "
                "bucket=N fastText hash buckets (default fastText's 2,000,000: the fitted directory is about "
                "(vocabulary + N) x 128 x 4 bytes, ~1 GB; bucket=200000 gives ~100 MB and suits pool samples "
                "under ~1M documents)")

    def __init__(self, embed_model: str | None = None, max_seq_length: int | None = None, query_prefix: str = "",
                 aggregation: str = "max", positive_fraction: float = 0.1, token_fraction: float = 0.1,
                 sample_size: int = 10_000_000, heldout_fraction: float = 0.1, bucket: int = 2_000_000,
                 seed: int = 0, fitted: str | None = None, device: str = "cpu"):
        if aggregation not in ("max", "mean"):
            raise ConfigError(f"aggregation: expected 'max' or 'mean', got {aggregation!r}")
        for k, v in (("positive_fraction", positive_fraction), ("token_fraction", token_fraction),
                     ("heldout_fraction", heldout_fraction)):
            if not 0 < v <= 1 or (k == "heldout_fraction" and v >= 1):
                raise ConfigError(f"{k} must be in (0, 1], got {v}")
        super().__init__(embed_model=embed_model, max_seq_length=max_seq_length, query_prefix=query_prefix,
                         aggregation=aggregation, positive_fraction=positive_fraction, token_fraction=token_fraction,
                         sample_size=int(sample_size), heldout_fraction=heldout_fraction, bucket=int(bucket),
                         seed=int(seed), fitted=fitted, device=device)
        self._init_fitted(fitted)

    def _embedder(self):
        from lmsieve.features.embeddings import Embedder

        p = self._params
        return Embedder(p["embed_model"], device=p["device"], max_seq_length=p["max_seq_length"],
                        query_prefix=p["query_prefix"])

    def fit(self, target, pool_sample=None) -> "Betr":
        if self._load_fitted():
            return self
        if pool_sample is None:
            raise ConfigError("BETR needs a pool sample to fit")
        p = self._params
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        t_texts = [s for t in targets for s in template_texts(t)]
        if not t_texts:
            raise InputError("BETR needs at least one target example", "target")
        ids = pool_sample.column(ID).to_pylist()
        u = stable_uniform(p["seed"], ids)
        take = np.argsort(u, kind="stable")[: p["sample_size"]]
        all_texts = template_texts(pool_sample)
        u, texts = u[take], [all_texts[i] for i in take]
        ids = [ids[i] for i in take]
        held = u >= np.quantile(u, 1 - p["heldout_fraction"]) if len(u) >= 20 else np.zeros(len(u), bool)
        tr = np.flatnonzero(~held)
        if len(tr) < 10:
            raise InputError(f"BETR needs a pool sample of at least a few dozen documents, got {len(ids)}", "pool")
        from lmsieve import progress as _progress

        emb = self._embedder()
        with _progress.step("BETR: embed target and pool sample", items=len(t_texts) + len(tr)):
            q = emb.encode(t_texts, side="query")
            d = emb.encode([texts[i] for i in tr])
        _, tie, self.k_, (_, idx) = best_ranks(q, d, p["positive_fraction"], p["aggregation"] == "mean")
        label = rank_scores(idx, len(tr), p["aggregation"])
        pos, neg = balanced_labels(label, tie, [ids[i] for i in tr], p["positive_fraction"], p["seed"])
        self.n_positive_, self.n_negative_ = int(len(pos)), int(len(neg))
        with _progress.step("BETR: train fastText", items=len(pos) + len(neg)):
            self.model_ = self._train([texts[tr[i]] for i in pos], [texts[tr[i]] for i in neg])
        ho = [texts[i] for i in np.flatnonzero(held)] or [texts[i] for i in tr]
        self.threshold_ = 0.0 if p["token_fraction"] >= 1 else \
            token_threshold(self.predict(ho), token_counts(ho), p["token_fraction"])
        return self

    def _train(self, pos: list[str], neg: list[str]):
        lines = [f"__label__pos {_clean(t)}" for t in pos] + [f"__label__neg {_clean(t)}" for t in neg]
        order = np.argsort(stable_uniform(self._params["seed"] + 1, [str(i) for i in range(len(lines))]))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(lines[i] + "\n" for i in order)
            return train_fasttext(path, dict(FASTTEXT_ARGS, bucket=self._params["bucket"], seed=self._params["seed"]))

    def predict(self, texts: list[str]) -> np.ndarray:
        """fastText P(positive) per text."""
        if not texts:
            return np.zeros(0)
        labels, probs = self.model_.predict([_clean(t) for t in texts], k=2)
        return np.array([dict(zip(lab, pr)).get("__label__pos", 0.0) for lab, pr in zip(labels, probs)],
                        dtype=np.float64).clip(0.0, 1.0)

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        s = self.predict(template_texts(batch))
        return s, s >= self.threshold_

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"threshold_": float(self.threshold_), "k_": int(self.k_), "n_positive_": self.n_positive_,
                "n_negative_": self.n_negative_, "fasttext_file": FASTTEXT_FILE}

    def _set_state(self, state: dict, arrays: dict) -> None:
        for k in ("threshold_", "k_", "n_positive_", "n_negative_"):
            setattr(self, k, state[k])

    def _save_files(self, path) -> None:
        f = os.path.join(os.fspath(path), FASTTEXT_FILE)
        self.model_.save_model(f)
        size = os.path.getsize(f)
        if size > 256 << 20:
            import logging

            logging.getLogger("lmsieve").warning(
                "BETR's fitted fastText model is %.0f MB (bucket=%d hash buckets x 128 dims); --param bucket=200000 "
                "makes it ~10x smaller", size / 1e6, self._params["bucket"])

    def _load_files(self, path) -> None:
        import fasttext

        f = os.path.join(os.fspath(path), FASTTEXT_FILE)  # only from the selector's own directory
        if not os.path.isfile(f):
            raise ConfigError(f"{os.fspath(path)!r}: no {FASTTEXT_FILE}")
        self.model_ = fasttext.load_model(f)


_clean = fasttext_line  # whitespace runs (newlines included) -> one space

