"""CoLoR-Filter: Conditional Loss Reduction filtering.

Brandfonbrener, Zhang, Kirsch, Schwarz, Kakade (NeurIPS 2024), "CoLoR-Filter: Conditional Loss
Reduction Filtering for Targeted Language Model Pre-training"; reference davidbrandfonbrener/
color-filter-olmo 7d26c7c (``olmo/score.py``, ``scripts/select_index_np.py``).

* prior: a proxy LM trained on a random pool sample (``fit``'s ``pool_sample``), or an existing
  lmsieve/HF checkpoint (``prior=PATH``);
* conditional: the prior fine-tuned for ``finetune_epochs`` (default 1) epochs on the target, with
  the optimizer reset (``proxy_lm.finetune``; lr 1e-3, 20 warmup steps as the Books config);
* score = L_prior(x) − L_cond(x), L the mean token cross-entropy; larger is better;
* selection: the top ⌊N/τ⌋ (no noise, no dedup).

Unit (the spec's "unit of selection"): ``unit="chunk"`` (default) cuts every document into
``chunk_len``-token chunks (512, the reference's packed length; the last chunk of a document is
shorter; no packing across documents), scores each chunk on its own (:meth:`score_chunks`,
:meth:`select_chunks`: the reference's top ⌊N_chunks/τ⌋ of chunks, checking, as the reference
does, that both models scored the identical chunk list). A document's score (``score_and_mask``,
what the API/CLI/Beam rank) is the token-weighted mean of its chunks' scores, i.e. the per-token
loss reduction over the document with chunk-local context. ``unit="document"`` scores the whole
document with a sliding window (``document_losses``) and normalises by its token count (mean CE
difference per token). Empty documents are ineligible.

τ: the selector's ``tau`` (default 7, the smallest value of the paper's sweep {7, 16, 32, 64}) is
honoured by :meth:`select_chunks` and :meth:`budget` (``Budget(k=N // tau)``). The API and CLI take
their budget from the caller: pass ``keep=selector.budget(N)`` or ``keep=1/tau`` (``--keep-fraction``;
k = ⌊N/τ⌋ up to float rounding of 1/τ, which the sampling layer's 1e-9 guard absorbs).

Scores are bit-reproducible under any batching (API batches, Beam units) with the default
``batch_tokens=1``: one window per forward pass. Larger values pack windows into padded
micro-batches (faster on a GPU) and agree only to float tolerance (~1e-7), which can swap near-ties.

Fitting happens once: ``save(dir)`` writes the selector JSON plus ``prior/`` and ``conditional/``
safetensors checkpoints; ``ColorFilter.load(dir)`` or ``fitted=dir`` (what a Beam job's params
name) restores them. ``fitted`` makes ``fit`` a load, so the selector needs no pool sample.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.fitted_dir import FittedDirMixin

def texts_of(batch) -> list[str]:
    """Texts of a batch (pyarrow, pandas, list of str) or of a list/dict of batches, pooled."""
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)) and batch and not isinstance(batch[0], str):
        return [s for part in batch for s in text_array(part).to_pylist()]
    return text_array(batch).to_pylist()


# FittedDirMixin moved to lmsieve.selectors.fitted_dir (re-exported here for its importers).


def model_cfgs(model: dict | None, train: dict | None, seed: int) -> tuple[dict, dict]:
    return dict(model or {}), {"seed": seed, **(train or {})}


@register
class ColorFilter(FittedDirMixin, Selector):
    """Score = prior loss − conditional loss (the conditional loss reduction); higher is better."""

    name = "color"
    default_ranking = "topk"
    needs_pool_sample = True
    execution_params = ("device", "batch_tokens")
    fitted_attributes = ("prior_", "conditional_")

    def __init__(self, tau: float = 7, unit: str = "chunk", chunk_len: int = 512, prior: str | None = None,
                 proxy_model: dict | None = None, proxy_train: dict | None = None, tokenizer: str = "byte",
                 finetune_train: dict | None = None, finetune_epochs: int = 1, seed: int = 0,
                 fitted: str | None = None, device: str = "cpu", batch_tokens: int = 1):
        if not tau >= 1:
            raise ConfigError(f"tau must be >= 1, got {tau}")
        if unit not in ("chunk", "document"):
            raise ConfigError(f"unit must be 'chunk' or 'document', got {unit!r}")
        if int(chunk_len) < 1 or int(finetune_epochs) < 1:
            raise ConfigError("chunk_len and finetune_epochs must be >= 1")
        super().__init__(tau=tau, unit=unit, chunk_len=int(chunk_len), prior=prior, proxy_model=proxy_model,
                         proxy_train=proxy_train, tokenizer=tokenizer, finetune_train=finetune_train,
                         finetune_epochs=int(finetune_epochs), seed=seed, fitted=fitted, device=device,
                         batch_tokens=batch_tokens)
        self._init_fitted(fitted)
        if prior is not None:
            self.needs_pool_sample = False

    @classmethod
    def from_models(cls, prior, conditional, **params) -> "ColorFilter":
        """A fitted selector from two loaded LMs (any ``LoadedLM``-like objects sharing a tokenizer)."""
        obj = cls(**params)
        obj.prior_, obj.conditional_ = prior, conditional
        return obj

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, target, pool_sample=None) -> "ColorFilter":
        if self._load_fitted():
            return self
        from lmsieve.features.proxy_lm import finetune, load_proxy, train_proxy

        p = self._params
        tgt = texts_of(target)
        if not tgt:
            raise InputError("CoLoR-Filter needs at least one target text", "target")
        if p["prior"] is not None:
            prior = load_proxy(p["prior"], device=p["device"])
        elif pool_sample is None:
            raise ConfigError("CoLoR-Filter needs a pool sample to train the prior (or prior=PATH)")
        else:
            m, t = model_cfgs(p["proxy_model"], p["proxy_train"], p["seed"])
            prior = train_proxy(texts_of(pool_sample), m, t, {"kind": p["tokenizer"]}, device=p["device"])
        prior.optimizer = None  # the conditional model's optimizer is reset; no need to copy moments
        cond = copy.deepcopy(prior)
        ft = {"seed": p["seed"], **(p["finetune_train"] or {})}
        finetune(cond, tgt, ft, epochs=p["finetune_epochs"], reset_optimizer=True)
        cond.optimizer = None
        self.prior_, self.conditional_ = prior, cond
        return self

    # -- scoring --------------------------------------------------------------------------------
    def _chunk_ce(self, lm, texts):
        from lmsieve.features.proxy_lm import chunk_losses

        return chunk_losses(lm, texts, chunk_len=self._params["chunk_len"], batch_tokens=self._params["batch_tokens"])

    def score_chunks(self, batch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per document: each chunk's score (L_prior − L_cond, float64) and its token count."""
        self.check_fitted()
        texts = texts_of(batch)
        ce_p, tok_p = self._chunk_ce(self.prior_, texts)
        ce_c, tok_c = self._chunk_ce(self.conditional_, texts)
        # The reference asserts both models scored the identical sequence list; so do we.
        if len(tok_p) != len(tok_c) or not all(np.array_equal(a, b) for a, b in zip(tok_p, tok_c)):
            raise RuntimeError("CoLoR-Filter: the prior and conditional models scored different chunk lists "
                               "(different tokenizers?)")
        return [a.astype(np.float64) - b.astype(np.float64) for a, b in zip(ce_p, ce_c)], tok_p

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        texts = texts_of(batch)
        if self._params["unit"] == "document":
            from lmsieve.features.proxy_lm import document_losses

            bt = self._params["batch_tokens"]
            lp = document_losses(self.prior_, texts, batch_tokens=bt)
            lc = document_losses(self.conditional_, texts, batch_tokens=bt)
            if not np.array_equal(lp.n_tokens, lc.n_tokens):
                raise RuntimeError("CoLoR-Filter: the two models scored different token counts")
            ok = lp.n_tokens > 0
            return np.where(ok, np.nan_to_num(lp.mean_ce - lc.mean_ce), 0.0), ok
        scores, toks = self.score_chunks(texts)
        out = np.zeros(len(texts))
        ok = np.array([t.sum() > 0 for t in toks], dtype=bool)
        for i, (s, t) in enumerate(zip(scores, toks)):
            if ok[i]:
                out[i] = float(np.dot(s, t) / t.sum())
        return out, ok

    def budget(self, n: int):
        """The reference's budget over ``n`` scored units: ``Budget(k=int(n / tau))``."""
        from lmsieve.sampling.select import Budget

        return Budget(k=int(n // self._params["tau"]))

    def select_chunks(self, batch) -> np.ndarray:
        """The reference's selection over chunks: rows ``(document, chunk)`` of the top ⌊N/τ⌋ chunk
        scores, best first (ties by position)."""
        scores, _ = self.score_chunks(batch)
        flat = np.concatenate(scores) if scores else np.zeros(0)
        where = np.array([(d, c) for d, s in enumerate(scores) for c in range(len(s))], dtype=np.int64).reshape(-1, 2)
        k = int(len(flat) // self._params["tau"])
        order = np.argsort(-flat, kind="stable")[:k]
        return where[order]

    # -- persistence ----------------------------------------------------------------------------
    def _save_files(self, path: Path) -> None:
        from lmsieve.features.proxy_lm import save_proxy

        for name, lm in (("prior", self.prior_), ("conditional", self.conditional_)):
            save_proxy(lm, path / name, optimizer=False)

    def _load_files(self, path: Path) -> None:
        from lmsieve.features.proxy_lm import load_proxy

        dev = self._params["device"]
        self.prior_ = load_proxy(path / "prior", device=dev)
        self.conditional_ = load_proxy(path / "conditional", device=dev)


__all__ = ["ColorFilter", "FittedDirMixin", "texts_of"]
