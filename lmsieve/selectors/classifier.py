"""``classifier``: a fastText target classifier, the selector production pipelines use.

DCLM (Li et al. 2024, "DataComp-LM", arXiv:2406.11794, §4.4) keeps the web documents that a
fastText classifier, trained on high-quality examples (OpenHermes 2.5 + ELI5, positive) against
random web text (negative), scores highest; FineWeb-Edu (Penedo et al. 2024, arXiv:2406.17557)
does the same with an LLM-annotated classifier. Here the positives are the target examples, the
negatives a sample of the pool, and ``score = P(target)`` in [0, 1]; the budget keeps the top.

fastText defaults are DCLM's: the training script ``baselines/train_fasttext_classifier.py`` of
mlfoundations/dclm (lr 0.1, dim 100, ws 5, epoch 5, minCount 1) with bigram features
(``wordNgrams=2``: the released DCLM classifier is
``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin``, balanced 200k + 200k lines). The
loss is fastText's default softmax over the two labels.

Choices where DCLM is silent or its scale does not apply:

* ``bucket`` (hashed n-gram rows) defaults to 100,000 instead of fastText's 2,000,000: the model
  file holds (vocabulary + bucket) x dim float32, so ~45 MB here instead of ~800 MB (BETR's
  2M x 128 model is 981 MB); with a few hundred positive examples, 100k buckets leave few
  collisions among the n-grams that matter. Lower it for tests.
* negatives: ``n_negatives`` pool-sample units (default ``None`` = as many as there are target
  examples: DCLM's balanced classes), chosen by the smallest stable hash of (seed, id).
  Balance matters on small targets: with 40 HumanEval positives against 1,000 negatives the DCLM
  settings underfit and the top 2% of a 1,500-document slice held 7% Python; balanced, 97%.
  ``negative_unit="window"`` cuts the sample into windows of the target examples' median length
  first (:mod:`lmsieve.features.windows`), so negatives have the positives' length.
* deterministic: training in a fresh interpreter with ``thread=1`` and the seed
  (:mod:`lmsieve.features.fasttext_model`), lines shuffled by a stable hash.
* ``unit="window"`` (:mod:`lmsieve.selectors.windows`) scores windows of each document too.

Saved like BETR: ``selector.json`` + ``classifier_fasttext.bin``; ``fitted=DIR`` loads it (no
pool sample needed, so the Beam features job scores per document).
"""
from __future__ import annotations

import os

import numpy as np

from lmsieve.features.fasttext_model import fasttext_line, train_classifier
from lmsieve.features.windows import auto_window, cut_windows
from lmsieve.sampling.hashing import stable_uniform
from lmsieve.schemas.document import ID, text_array
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.fitted_dir import FittedDirMixin

FASTTEXT_FILE = "classifier_fasttext.bin"
#: DCLM's fastText settings (see the module doc); ``bucket`` is ours.
DCLM_ARGS = dict(lr=0.1, dim=100, ws=5, epoch=5, minCount=1, wordNgrams=2)
POS, NEG = "target", "pool"


@register
class Classifier(FittedDirMixin, Selector):
    """Score = fastText P(target example | text), trained on target vs pool sample."""

    name = "classifier"
    needs_pool_sample = True
    fitted_attributes = ("model_",)
    fasttext_attributes = ("model_",)
    cli_note = ("fastText target-vs-pool classifier (DCLM settings: lr=0.1 dim=100 ws=5 epoch=5 minCount=1 "
                "wordNgrams=2; bucket=100000); n_negatives=N, negative_unit=window; fitted=DIR loads a saved fit")

    def __init__(self, lr: float = 0.1, dim: int = 100, ws: int = 5, epoch: int = 5, minCount: int = 1,
                 wordNgrams: int = 2, bucket: int = 100_000, n_negatives: int | None = None,
                 negative_unit: str = "doc", seed: int = 0, fitted: str | None = None):
        if negative_unit not in ("doc", "window"):
            raise ConfigError(f"negative_unit: expected 'doc' or 'window', got {negative_unit!r}")
        if n_negatives is not None and (isinstance(n_negatives, bool) or int(n_negatives) < 1):
            raise ConfigError(f"n_negatives must be >= 1, got {n_negatives!r}")
        for k, v in (("dim", dim), ("ws", ws), ("epoch", epoch), ("wordNgrams", wordNgrams), ("bucket", bucket)):
            if isinstance(v, bool) or int(v) < 1:
                raise ConfigError(f"{k} must be an int >= 1, got {v!r}")
        if not float(lr) > 0:
            raise ConfigError(f"lr must be > 0, got {lr!r}")
        super().__init__(lr=float(lr), dim=int(dim), ws=int(ws), epoch=int(epoch), minCount=int(minCount),
                         wordNgrams=int(wordNgrams), bucket=int(bucket),
                         n_negatives=None if n_negatives is None else int(n_negatives),
                         negative_unit=negative_unit, seed=int(seed), fitted=fitted)
        self._init_fitted(fitted)

    # -- fitting --------------------------------------------------------------------------------
    def negatives(self, target_texts: list[str], pool_sample) -> list[str]:
        """The negative texts: pool documents (or windows) with the smallest stable hashes."""
        p = self._params
        texts = text_array(pool_sample)
        ids = pool_sample.column(ID).to_pylist() if hasattr(pool_sample, "column") and \
            ID in pool_sample.column_names else [str(i) for i in range(len(texts))]
        want = p["n_negatives"] or len(target_texts)
        if p["negative_unit"] == "window":
            w = cut_windows(texts, auto_window(target_texts))
            keys = [f"{ids[d]}#{int(s)}" for d, s in zip(w.doc.tolist(), w.start.tolist())]
            texts = w.texts
        else:
            keys = ids
        order = np.argsort(stable_uniform(p["seed"], keys), kind="stable")[:want]
        return texts.take(np.sort(order)).to_pylist()

    def fit(self, target, pool_sample=None) -> "Classifier":
        if self._load_fitted():
            return self
        if pool_sample is None:
            raise ConfigError("classifier needs a pool sample for its negative examples")
        from lmsieve.selectors.windows import target_texts

        pos = target_texts(target)
        if not pos:
            raise InputError("classifier needs at least one target example", "target")
        neg = self.negatives(pos, pool_sample)
        if not neg:
            raise InputError("classifier needs a non-empty pool sample", "pool")
        texts, labels = pos + neg, [POS] * len(pos) + [NEG] * len(neg)
        order = np.argsort(stable_uniform(self._params["seed"] + 1, [str(i) for i in range(len(texts))]),
                           kind="stable")
        p = self._params
        args = {k: p[k] for k in DCLM_ARGS} | {"bucket": p["bucket"], "seed": p["seed"]}
        self.model_ = train_classifier([texts[i] for i in order], [labels[i] for i in order], args)
        self.n_positive_, self.n_negative_ = len(pos), len(neg)
        return self

    # -- scoring --------------------------------------------------------------------------------
    def predict(self, texts: list[str]) -> np.ndarray:
        """fastText P(target) per text."""
        if not texts:
            return np.zeros(0)
        labels, probs = self.model_.predict([fasttext_line(t) for t in texts], k=2)
        return np.array([dict(zip(lab, pr)).get(f"__label__{POS}", 0.0) for lab, pr in zip(labels, probs)],
                        dtype=np.float64).clip(0.0, 1.0)

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        s = self.predict(text_array(batch).to_pylist())
        return s, np.ones(len(s), dtype=bool)

    # -- persistence ----------------------------------------------------------------------------
    def _state_json(self) -> dict:
        return {"n_positive_": int(self.n_positive_), "n_negative_": int(self.n_negative_),
                "fasttext_file": FASTTEXT_FILE}

    def _set_state(self, state: dict, arrays: dict) -> None:
        self.n_positive_, self.n_negative_ = int(state["n_positive_"]), int(state["n_negative_"])

    def _save_files(self, path) -> None:
        self.model_.save_model(os.path.join(os.fspath(path), FASTTEXT_FILE))

    def _load_files(self, path) -> None:
        import fasttext

        f = os.path.join(os.fspath(path), FASTTEXT_FILE)  # only from the selector's own directory
        if not os.path.isfile(f):
            raise ConfigError(f"{os.fspath(path)!r}: no {FASTTEXT_FILE}")
        self.model_ = fasttext.load_model(f)
