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
   and a seed so training is reproducible), newlines replaced by spaces, labels
   ``__label__1``/``__label__0``. Score = P(label 1), clamped to [0, 1] (reference issue #4).
5. Selection keeps a fraction of *characters* (10% in the paper): pass
   ``keep_chars_fraction=0.1`` to the API/CLI (``--keep-chars-fraction``), or use
   :func:`char_threshold` to get the score threshold (documents at or above it hold just over
   the fraction, as the reference's threshold estimated from its output).

Models: ``models=[PATH, ...]`` (lmsieve proxies or local safetensors HF causal LMs) with
``model_scores`` (benchmark-like, higher is better); or, by default, lmsieve's own proxies trained
on the pool sample (``proxies``: one dict per model with ``model``/``train`` configs, different
sizes/steps), whose score is minus their mean token loss on the user's target set.
Saved state: JSON + ``preselect.bin`` (the fastText model); ``fitted=DIR`` loads it (Beam jobs).
"""
from __future__ import annotations

import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.color_filter import FittedDirMixin, texts_of

FASTTEXT_FILE = "preselect.bin"
#: Three own proxies of different sizes and lengths of training (byte tokenizer).
DEFAULT_PROXIES = (
    {"model": {"n_layer": 1, "d_model": 64, "n_head": 2, "context": 256}, "train": {"steps": 100}},
    {"model": {"n_layer": 2, "d_model": 128, "n_head": 4, "context": 256}, "train": {"steps": 300}},
    {"model": {"n_layer": 4, "d_model": 256, "n_head": 4, "context": 256}, "train": {"steps": 600}},
)


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


def make_labels(counts: np.ndarray, n_pairs: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive indices, negative indices): perfect documents, and as many from the bottom."""
    top = n_pairs if np.any(counts == n_pairs) else int(counts.max())
    if top <= int(counts.min()):
        raise InputError("PreSelect: every calibration document has the same predictive strength; "
                         "no positives can be told from negatives", "pool_sample")
    pos = np.flatnonzero(counts == top)
    rest = np.flatnonzero(counts < top)
    neg = rest[np.lexsort((keys[rest], counts[rest]))][: len(pos)]
    return pos, neg


def fasttext_line(text: str) -> str:
    return " ".join(text.split("\n")).replace("\r", " ")


@register
class PreSelect(FittedDirMixin, Selector):
    """Score = fastText P(document predicts model quality); higher is better."""

    name = "preselect"
    default_ranking = "topk"
    needs_pool_sample = True
    execution_params = ("device", "batch_tokens")
    fitted_attributes = ("model_scores_", "classifier_")

    def __init__(self, models: list[str] | None = None, model_scores: list[float] | None = None,
                 proxies: list[dict] | None = None, window: int | None = None, stride: int | None = None,
                 epoch: int = 3, lr: float = 0.1, word_ngrams: int = 2, dim: int = 100, bucket: int = 2_000_000,
                 min_count: int = 1, seed: int = 0, fitted: str | None = None, device: str = "cpu",
                 batch_tokens: int = 8192):
        if models is not None:
            if len(models) < 3:
                raise ConfigError("PreSelect needs at least 3 models")
            if model_scores is None or len(model_scores) != len(models):
                raise ConfigError("models need one model_scores entry each (benchmark-like, higher is better)")
        if proxies is not None and len(proxies) < 3:
            raise ConfigError("PreSelect needs at least 3 proxies")
        super().__init__(models=models, model_scores=model_scores, proxies=proxies, window=window, stride=stride,
                         epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim, bucket=bucket, min_count=min_count,
                         seed=seed, fitted=fitted, device=device, batch_tokens=batch_tokens)
        self._init_fitted(fitted)

    # -- fitting --------------------------------------------------------------------------------
    def model_losses(self, lms, texts) -> np.ndarray:
        """(documents, models) total NLL in nats (== bits per character up to a per-document factor)."""
        from lmsieve.features.proxy_lm import document_losses

        p = self._params
        cols = [document_losses(lm, texts, window=min(p["window"] or lm.context, lm.context), stride=p["stride"],
                                batch_tokens=p["batch_tokens"]).total_nll for lm in lms]
        return np.stack(cols, axis=1)

    def fit(self, target, pool_sample=None) -> "PreSelect":
        if self._load_fitted():
            return self
        from lmsieve.features.proxy_lm import document_losses, load_proxy, train_proxy

        p = self._params
        if pool_sample is None:
            raise ConfigError("PreSelect needs a calibration sample of the pool (pool_sample=...)")
        texts = texts_of(pool_sample)
        if p["models"] is not None:
            lms = [load_proxy(m, device=p["device"]) for m in p["models"]]
            scores = [float(x) for x in p["model_scores"]]
        else:
            lms = [train_proxy(texts, c.get("model"), {"seed": p["seed"], **c.get("train", {})},
                               c.get("tokenizer", {"kind": "byte"}), device=p["device"])
                   for c in (p["proxies"] or DEFAULT_PROXIES)]
            tgt = texts_of(target)
            if not tgt:
                raise InputError("PreSelect scores its own proxies on the target set: it is empty", "target")
            scores = []
            for lm in lms:  # score = minus the mean token loss on the target (higher is better)
                r = document_losses(lm, tgt, batch_tokens=p["batch_tokens"])
                scores.append(-float(r.total_nll.sum() / max(1, r.n_tokens.sum())))
        ids = pool_sample.column("id").to_pylist() if hasattr(pool_sample, "column") and \
            "id" in getattr(pool_sample, "column_names", []) else [str(i) for i in range(len(texts))]
        return self.fit_from_losses(texts, self.model_losses(lms, texts), scores, ids)

    def fit_from_losses(self, texts: list[str], losses: np.ndarray, model_scores, ids=None) -> "PreSelect":
        """Labels from per-document losses and model scores, then the fastText classifier."""
        import fasttext

        p = self._params
        ids = [str(i) for i in range(len(texts))] if ids is None else ids
        counts = agreement_counts(losses, model_scores)
        n = len(model_scores)
        pos, neg = make_labels(counts, n * (n - 1) // 2, stable_hash64(p["seed"], ids))
        rows = [(i, 1) for i in pos] + [(i, 0) for i in neg]
        rows.sort(key=lambda r: int(stable_hash64(p["seed"] + 1, [ids[r[0]]])[0]))  # deterministic shuffle
        with tempfile.TemporaryDirectory(prefix="lmsieve-preselect-") as d:
            path = Path(d) / "train.txt"
            path.write_text("".join(f"__label__{y} {fasttext_line(texts[i])}\n" for i, y in rows), encoding="utf-8")
            self.classifier_ = fasttext.train_supervised(
                input=str(path), epoch=p["epoch"], lr=p["lr"], wordNgrams=p["word_ngrams"], dim=p["dim"],
                bucket=p["bucket"], minCount=p["min_count"], thread=1, seed=p["seed"], verbose=0)
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
            with tempfile.TemporaryDirectory(prefix="lmsieve-preselect-") as d:
                self.classifier_.save_model(str(Path(d) / FASTTEXT_FILE))
                st["classifier_"] = (Path(d) / FASTTEXT_FILE).read_bytes()
        return st

    def __setstate__(self, st):
        blob = st.pop("classifier_", None)
        self.__dict__.update(st)
        if blob is not None:
            import fasttext

            with tempfile.TemporaryDirectory(prefix="lmsieve-preselect-") as d:
                (Path(d) / FASTTEXT_FILE).write_bytes(blob)
                self.classifier_ = fasttext.load_model(str(Path(d) / FASTTEXT_FILE))

    def _load_files(self, path: Path) -> None:
        import fasttext

        f = path / FASTTEXT_FILE  # only from the selector's own directory
        if not f.is_file():
            raise ConfigError(f"{str(path)!r}: no {FASTTEXT_FILE}")
        self.classifier_ = fasttext.load_model(str(f))


__all__ = ["PreSelect", "agreement_counts", "char_threshold", "predictive_strength"]
