"""PreSelect: predictive data selection with a fastText scorer.

Shum, Huang, Zhu, Wang, Li, Hsu, Chen, Wang, Kong, He (2025), "Predictive Data Selection: The
Data That Predicts Is the Data That Teaches", arXiv:2503.00808; reference hkust-nlp/PreSelect
258c632 (``bpc/main.py``, ``train_fasttext.py``).

1. Per calibration document (``fit``'s ``pool_sample``), the total NLL under N >= 3 models
   (``proxy_lm.document_losses``: every token scored once with a sliding window; unlike the
   reference, context never crosses a document boundary and the tail is scored too). Comparing
   total NLL is comparing bits per character (same characters for every model).
2. Predictive strength: for every pair of models with different benchmark scores, 1 when the
   better model has the strictly lower loss; ties count 0. Normalised by the number of model
   pairs, N(N−1)/2 (15 for 6 models), into [0, 1] (the paper's exact constant is unconfirmed;
   pairs of models with equal scores can never count, so such a document cannot be perfect).
3. Positives: documents with perfect agreement; negatives: as many documents from the lowest
   strengths (ties broken by the stable hash of (seed, id)). Without any perfect document the
   positives are the documents at the highest strength present (a documented fallback).
4. fastText (``epoch=3, lr=0.1, wordNgrams=2``, other values fastText's defaults; ``thread=1``
   and a seed so training is reproducible), whitespace runs replaced by one space, labels
   ``__label__1``/``__label__0``. Score = P(label 1), clamped to [0, 1] (reference issue #4).
5. Selection keeps a fraction of *characters* (10% in the paper): pass
   ``keep_chars_fraction=0.1`` to the API/CLI (``--keep-chars-fraction``), or use
   :func:`char_threshold` to get the score threshold (documents at or above it hold just over
   the fraction, as the reference's threshold estimated from its output).

Models: ``models=[NAME_OR_DIR, ...]`` (fetched models such as ``smollm2-135m``, local safetensors HF
causal LMs, lmsieve proxies) with ``model_scores`` (benchmark-like, higher is better), or without
them, scored like the own proxies below (minus nats per UTF-8 byte on the target, comparable across
tokenizers); ``models`` and ``proxies`` form one family of >= 3 (e.g. ``models=["smollm2-135m"]``
with the three default proxies: with fewer than 3 models the default proxies join them). By default, N = 3 of lmsieve's own proxies whose quality differs *in
kind*, not only in size.

Per-document losses use the reference's sliding window, 1,900 tokens with stride 512
(``window``/``stride``), capped by each model's context (a proxy with a 256-token context scores
with window 256 and stride min(512, window // 2) = 128); the strided scheme scores every token once. Proxies of one kind trained on the same
data with different sizes/steps agree on almost every document's loss order (on 1,000 shared-pool
documents the labels came out 998 perfect / 2 not), so nothing can be learnt from them. Instead
(``proxies``: one dict per model, ``model``/``train``/``tokenizer`` configs and a ``mixture``):

* the calibration sample is split by the stable hash of (seed, id): ``proxy_share`` (half) trains
  the proxies, the rest is labelled, so no labelled document was seen by any proxy;
* the training part is ranked by a cheap target affinity, DSIR's hashed uni+bigram log importance
  weight (target vs. the calibration sample) per n-gram; its top ``like_fraction`` (a quarter)
  is the target-like part; every proxy trains on that many documents, a share ``mixture`` of them
  from the target-like part (defaults 0, 0.5, 1) and the rest from the others (a half split
  was too coarse: on the shared pool its "unlike" half held most Go code, and a byte-level proxy
  trained on it beat the others on Python targets);
* a proxy's score is minus its loss on the user's target set in nats per UTF-8 byte (higher is
  better), so the ordering is measured, not assumed. A proxy without ``mixture`` trains on the whole
  training part (the old behaviour; pass ``proxy_share=1`` to train and label on everything).

Degenerate labels are an error, not a silent fallback: when fewer than ``min_per_class``
documents are positive or negative, ``fit`` raises :class:`InputError` with the counts. When
there are fewer imperfect documents than perfect ones, the positives are downsampled by the
stable hash to as many as the negatives (balanced classes, as the paper's ~200K/200K).
fastText is trained by :mod:`lmsieve.features.fasttext_model` (fresh subprocess, one thread,
the selector's seed), so a fit is reproducible in any process.
Saved state: JSON + ``preselect.bin`` (the fastText model); ``fitted=DIR`` loads it (Beam jobs).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from lmsieve.features.fasttext_model import fasttext_line, model_from_bytes, model_to_bytes, train_classifier
from lmsieve.sampling.hashing import stable_hash64, stable_uniform
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.color_filter import FittedDirMixin, texts_of

FASTTEXT_FILE = "preselect.bin"
_PROXY_MODEL = {"n_layer": 2, "d_model": 128, "n_head": 4, "context": 256}
#: Three own proxies of one size trained on different mixtures (share of target-like documents).
DEFAULT_PROXIES = tuple({"model": _PROXY_MODEL, "train": {"steps": 300}, "mixture": m} for m in (0.0, 0.5, 1.0))


def agreement_counts(losses: np.ndarray, model_scores) -> np.ndarray:
    """Raw predictive strength per document: pairs (i, j) where the model with the higher score has
    the strictly lower loss. ``losses`` is (documents, models)."""
    L = np.asarray(losses, dtype=np.float64)
    sc = np.asarray(model_scores, dtype=np.float64)
    if L.ndim != 2 or L.shape[1] != len(sc):
        raise ConfigError(f"losses must be (documents, {len(sc)} models), got {L.shape}")
    out = np.zeros(len(L), dtype=np.int64)
    for i, j in combinations(range(len(sc)), 2):
        if sc[i] == sc[j]:
            continue
        hi, lo = (i, j) if sc[i] > sc[j] else (j, i)
        out += L[:, hi] < L[:, lo]
    return out


def predictive_strength(losses: np.ndarray, model_scores) -> np.ndarray:
    """:func:`agreement_counts` / N(N−1)/2, in [0, 1]."""
    n = len(model_scores)
    return agreement_counts(losses, model_scores) / (n * (n - 1) / 2)


def char_threshold(scores: np.ndarray, n_chars: np.ndarray, fraction: float) -> float:
    """Lowest score such that the documents scored at or above it hold >= ``fraction`` of characters."""
    s, c = np.asarray(scores, np.float64), np.asarray(n_chars, np.float64)
    order = np.argsort(-s, kind="stable")
    csum = np.cumsum(c[order])
    i = int(np.searchsorted(csum, fraction * c.sum() * (1 - 1e-12), side="left"))
    return float(s[order[min(i, len(s) - 1)]])


def make_labels(counts: np.ndarray, n_pairs: int, keys: np.ndarray,
                min_per_class: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(positive indices, negative indices): perfect documents, and as many from the bottom; with
    fewer imperfect documents than perfect ones, positives are cut (by ``keys``) to that number."""
    top = n_pairs if np.any(counts == n_pairs) else int(counts.max())
    pos = np.flatnonzero(counts == top)
    rest = np.flatnonzero(counts < top)
    if min(len(pos), len(rest)) < max(1, min_per_class):
        raise InputError(f"PreSelect: degenerate labels ({len(pos)} documents at the top strength {top}/{n_pairs}, "
                         f"{len(rest)} below; need >= {max(1, min_per_class)} of each): the models agree on "
                         "(almost) every document's order; use models that differ in kind", "pool_sample")
    neg = rest[np.lexsort((keys[rest], counts[rest]))][: len(pos)]
    if len(pos) > len(neg):
        pos = np.sort(pos[np.argsort(keys[pos], kind="stable")[: len(neg)]])
    return pos, neg


def mixture_splits(affinity: np.ndarray, keys: np.ndarray, mixtures, like_fraction: float = 0.25) -> list[np.ndarray]:
    """Per mixture m: n = ⌈like_fraction·N⌉ document indices, a share m of them from the n most
    target-like documents (by ``affinity``) and the rest from the others, each part in ``keys`` order."""
    order = np.lexsort((keys, -affinity))
    n = max(1, min(len(order) // 2, int(np.ceil(like_fraction * len(order)))))
    like, unlike = order[:n], order[n:]
    like, unlike = like[np.argsort(keys[like], kind="stable")], unlike[np.argsort(keys[unlike], kind="stable")]
    return [np.sort(np.concatenate([like[: int(round(m * n))], unlike[: n - int(round(m * n))]])) for m in mixtures]


def target_affinity(target, texts: list[str]) -> np.ndarray:
    """DSIR's log importance weight (target vs. ``texts``) per hashed uni+bigram of a document."""
    from lmsieve.selectors.dsir import DSIR

    dsir = DSIR().fit(target, pool_sample=texts)
    occ = dsir.featurizer.transform(texts)
    return dsir.score_counts(occ)[0] / np.maximum(occ.per_doc(), 1)


@register
class PreSelect(FittedDirMixin, Selector):
    """Score = fastText P(document predicts model quality); higher is better."""

    name = "preselect"
    default_ranking = "topk"
    needs_pool_sample = True
    execution_params = ("device", "dtype", "batch_tokens")
    fitted_attributes = ("model_scores_", "classifier_")

    def __init__(self, models: list[str] | None = None, model_scores: list[float] | None = None,
                 proxies: list[dict] | None = None, window: int = 1900, stride: int = 512,
                 epoch: int = 3, lr: float = 0.1, word_ngrams: int = 2, dim: int = 100, bucket: int = 2_000_000,
                 min_count: int = 1, proxy_share: float = 0.5, like_fraction: float = 0.25, min_per_class: int = 5,
                 seed: int = 0,
                 fitted: str | None = None, device: str = "auto", dtype: str = "auto", batch_tokens: int = 8192):
        models = None if models is None else [str(m) for m in ([models] if isinstance(models, str) else models)]
        n_family = len(models or []) + (len(proxies) if proxies is not None else
                                        (0 if len(models or []) >= 3 else len(DEFAULT_PROXIES)))
        if n_family < 3:
            raise ConfigError(f"PreSelect needs a family of at least 3 models (models + proxies), got {n_family}")
        if model_scores is not None and (models is None or len(model_scores) != len(models) or len(models) < 3
                                         or proxies is not None):
            raise ConfigError("model_scores: one benchmark-like score per entry of models (higher is better), and "
                              "only without proxies (proxies are scored on the target)")
        if int(window) < 1 or not 1 <= int(stride):
            raise ConfigError(f"window and stride must be >= 1, got {window}, {stride}")
        if not (0 < proxy_share <= 1 and 0 < like_fraction <= 0.5):
            raise ConfigError(f"proxy_share must be in (0, 1] and like_fraction in (0, 0.5], got {proxy_share}, "
                              f"{like_fraction}")
        super().__init__(models=models, model_scores=model_scores, proxies=proxies, window=window, stride=stride,
                         epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim, bucket=bucket, min_count=min_count,
                         proxy_share=proxy_share, like_fraction=like_fraction, min_per_class=int(min_per_class), seed=seed, fitted=fitted,
                         device=device, dtype=dtype, batch_tokens=batch_tokens)
        self._init_fitted(fitted)

    # -- fitting --------------------------------------------------------------------------------
    def window_of(self, lm) -> tuple[int, int]:
        """(window, stride) for ``lm``: the reference's 1900/512, capped by the model context."""
        p = self._params
        window = min(int(p["window"]), lm.context)
        if window < int(p["window"]):  # clipped by the context: keep half a window of context per new token
            return window, min(int(p["stride"]), max(1, window // 2))
        return window, min(int(p["stride"]), window)

    def _losses(self, lm, texts):
        from lmsieve.features.proxy_lm import document_losses

        window, stride = self.window_of(lm)
        return document_losses(lm, texts, window=window, stride=stride, batch_tokens=self._params["batch_tokens"])

    def model_losses(self, lms, texts) -> np.ndarray:
        """(documents, models) total NLL in nats (== bits per character up to a per-document factor)."""
        return np.stack([self._losses(lm, texts).total_nll for lm in lms], axis=1)

    def target_score(self, lm, target_texts) -> float:
        """Minus the loss on the target in nats per UTF-8 byte (comparable across tokenizers)."""
        r = self._losses(lm, target_texts)
        return -float(r.total_nll.sum() / max(1, r.n_bytes.sum()))

    def fit(self, target, pool_sample=None) -> "PreSelect":
        if self._load_fitted():
            return self
        from lmsieve.features.proxy_lm import load_proxy

        p = self._params
        if pool_sample is None:
            raise ConfigError("PreSelect needs a calibration sample of the pool (pool_sample=...)")
        texts = texts_of(pool_sample)
        ids = pool_sample.column("id").to_pylist() if "id" in getattr(pool_sample, "column_names", []) \
            else [str(i) for i in range(len(texts))]
        lms = [load_proxy(m, device=p["device"], dtype=p["dtype"]) for m in (p["models"] or [])]
        if len(lms) >= 3 and p["proxies"] is None:
            label = np.arange(len(texts))
            if p["model_scores"] is not None:
                scores = [float(x) for x in p["model_scores"]]
            else:
                tgt = texts_of(target)
                if not tgt:
                    raise InputError("PreSelect scores its models on the target set: it is empty", "target")
                scores = [self.target_score(lm, tgt) for lm in lms]
        else:
            own, own_scores, label = self.train_proxies(target, texts, ids)
            tgt = texts_of(target)
            scores = [self.target_score(lm, tgt) for lm in lms] + own_scores
            lms = lms + own
        return self.fit_from_losses([texts[i] for i in label], self.model_losses(lms, [texts[i] for i in label]),
                                    scores, [ids[i] for i in label])

    def train_proxies(self, target, texts: list[str], ids: list[str]) -> tuple[list, list[float], np.ndarray]:
        """(proxies, their scores = minus nats per byte on the target, indices of the documents to label)."""
        from lmsieve.features.proxy_lm import train_proxy

        p = self._params
        tgt = texts_of(target)
        if not tgt:
            raise InputError("PreSelect scores its own proxies on the target set: it is empty", "target")
        u = stable_uniform(p["seed"], ids)
        share = p["proxy_share"]
        train = np.flatnonzero(u < share) if share < 1 else np.arange(len(texts))
        label = np.flatnonzero(u >= share) if share < 1 else np.arange(len(texts))
        if len(train) < 2 or len(label) < 2:
            raise InputError(f"PreSelect: a calibration sample of {len(texts)} documents is too small", "pool_sample")
        cfgs = list(p["proxies"] if p["proxies"] is not None else DEFAULT_PROXIES)
        train_texts = [texts[i] for i in train]
        mixtures = [c["mixture"] for c in cfgs if c.get("mixture") is not None]
        parts = iter(mixture_splits(target_affinity(target, train_texts), stable_hash64(p["seed"] + 2, [ids[i] for i in train]),
                                    mixtures, p["like_fraction"]) if mixtures else [])
        lms, scores = [], []
        for c in cfgs:
            docs = [train_texts[i] for i in next(parts)] if c.get("mixture") is not None else train_texts
            lm = train_proxy(docs, c.get("model"), {"seed": p["seed"], **c.get("train", {})},
                             c.get("tokenizer", {"kind": "byte"}), device=p["device"])
            lms.append(lm)
            scores.append(self.target_score(lm, tgt))
        return lms, scores, label

    def fit_from_losses(self, texts: list[str], losses: np.ndarray, model_scores, ids=None) -> "PreSelect":
        """Labels from per-document losses and model scores, then the fastText classifier."""
        p = self._params
        ids = [str(i) for i in range(len(texts))] if ids is None else ids
        counts = agreement_counts(losses, model_scores)
        n = len(model_scores)
        pos, neg = make_labels(counts, n * (n - 1) // 2, stable_hash64(p["seed"], ids), p["min_per_class"])
        rows = [(i, 1) for i in pos] + [(i, 0) for i in neg]
        rows.sort(key=lambda r: int(stable_hash64(p["seed"] + 1, [ids[r[0]]])[0]))  # deterministic shuffle
        self.classifier_ = train_classifier(
            [texts[i] for i, _ in rows], [str(y) for _, y in rows],
            dict(epoch=p["epoch"], lr=p["lr"], wordNgrams=p["word_ngrams"], dim=p["dim"], bucket=p["bucket"],
                 minCount=p["min_count"], seed=p["seed"]))
        self.model_scores_ = [float(x) for x in model_scores]
        self.label_counts_ = {"positive": len(pos), "negative": len(neg), "calibration": len(texts)}
        self.strength_ = (counts / (n * (n - 1) / 2)).astype(np.float64)
        return self

    # -- scoring --------------------------------------------------------------------------------
    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        texts = [fasttext_line(t) for t in texts_of(batch)]
        out = np.zeros(len(texts))
        if texts:
            labels, probs = self.classifier_.predict(texts, k=-1)
            for i, (ls, ps) in enumerate(zip(labels, probs)):
                d = dict(zip(ls, np.asarray(ps, np.float64)))
                out[i] = d.get("__label__1", 0.0)
        return np.clip(out, 0.0, 1.0), np.ones(len(texts), dtype=bool)

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"model_scores_": self.model_scores_, "label_counts_": getattr(self, "label_counts_", {})}

    def _state_arrays(self) -> dict:
        return {"strength_": np.asarray(getattr(self, "strength_", np.zeros(0)), np.float64)}

    def _save_files(self, path: Path) -> None:
        self.classifier_.save_model(str(path / FASTTEXT_FILE))

    def __getstate__(self):
        """Picklable for Beam workers: the fastText model travels as the bytes of its .bin file."""
        st = self.__dict__.copy()
        if "classifier_" in st:
            st["classifier_"] = model_to_bytes(self.classifier_)
        return st

    def __setstate__(self, st):
        blob = st.pop("classifier_", None)
        self.__dict__.update(st)
        if blob is not None:
            self.classifier_ = model_from_bytes(blob)

    def _load_files(self, path: Path) -> None:
        import fasttext

        f = path / FASTTEXT_FILE  # only from the selector's own directory
        if not f.is_file():
            raise ConfigError(f"{str(path)!r}: no {FASTTEXT_FILE}")
        self.classifier_ = fasttext.load_model(str(f))


__all__ = ["PreSelect", "agreement_counts", "char_threshold", "predictive_strength"]
