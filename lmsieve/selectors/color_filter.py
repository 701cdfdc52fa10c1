"""CoLoR-Filter: Conditional Loss Reduction filtering.

Brandfonbrener, Zhang, Kirsch, Schwarz, Kakade (NeurIPS 2024), "CoLoR-Filter: Conditional Loss
Reduction Filtering for Targeted Language Model Pre-training"; reference davidbrandfonbrener/
color-filter-olmo 7d26c7c (``olmo/score.py``, ``scripts/select_index_np.py``).

* prior: ``model=`` (a fetched model name such as ``smollm2-135m``, any local Hugging Face causal LM
  directory, or an lmsieve proxy), or else a Llama proxy trained on a random pool sample (``fit``'s
  ``pool_sample``; ``proxy_model``/``proxy_train``/``tokenizer``);
* conditional: the prior fine-tuned for ``finetune_epochs`` (default 1) epochs on the target, with
  the optimizer reset (``proxy_lm.finetune``), the reference's Books settings: AdamW lr 1e-3, 20
  warmup steps then cosine to 0.1x, weight decay 0, betas (0.9, 0.95), eps 1e-15, gradient clip 1.0,
  on ``chunk_len``-token sequences (512, the reference's sequence length; capped by the context).
  The reference's micro-batch is not stated for Books; we use 8 sequences (``finetune_train``);
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

Inference: ``device="auto"``, ``dtype="auto"`` (bf16 on CUDA, float32 on CPU); chunks are scored in
length-sorted padded micro-batches of ``batch_tokens`` tokens (default 8,192). Batched scores agree
with one-chunk-per-pass scores (``batch_tokens=1``) to float32 rounding (< 1e-4 nats per token,
asserted in the tests), not bit for bit; pass ``batch_tokens=1`` when runs with different batchings
must give bit-identical scores.

Fitting happens once: ``save(dir)`` writes the selector JSON plus ``prior/`` and ``conditional/``
Hugging Face directories (``save_pretrained``: safetensors, config, tokenizer, ``lmsieve.json``);
``ColorFilter.load(dir)`` or ``fitted=dir`` (what a Beam job's params name) restores them.
``fitted`` makes ``fit`` a load, so the selector needs no pool sample.
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


#: The reference's conditional fine-tune (Books): lr 1e-3, 20 warmup steps, cosine to 0.1x, wd 0,
#: betas (0.9, 0.95), eps 1e-15, clip 1.0 (color-filter-olmo configs); batch 8 sequences (not stated).
FINETUNE_REFERENCE = {"lr": 1e-3, "warmup_steps": 20, "min_lr_ratio": 0.1, "weight_decay": 0.0, "betas": (0.9, 0.95),
                      "eps": 1e-15, "grad_clip": 1.0, "batch_size": 8}


def model_cfgs(model: dict | None, train: dict | None, seed: int) -> tuple[dict, dict]:
    return dict(model or {}), {"seed": seed, **(train or {})}


@register
class ColorFilter(FittedDirMixin, Selector):
    """Score = prior loss − conditional loss (the conditional loss reduction); higher is better."""

    name = "color"
    default_ranking = "topk"
    needs_pool_sample = True
    execution_params = ("device", "dtype", "batch_tokens")
    fitted_attributes = ("prior_", "conditional_")

    def __init__(self, tau: float = 7, unit: str = "chunk", chunk_len: int = 512, model: str | None = None,
                 proxy_model: dict | None = None, proxy_train: dict | None = None, tokenizer: str = "byte",
                 finetune_train: dict | None = None, finetune_epochs: int = 1, seed: int = 0,
                 fitted: str | None = None, device: str = "auto", dtype: str = "auto", batch_tokens: int = 8192):
        if not tau >= 1:
            raise ConfigError(f"tau must be >= 1, got {tau}")
        if unit not in ("chunk", "document"):
            raise ConfigError(f"unit must be 'chunk' or 'document', got {unit!r}")
        if int(chunk_len) < 1 or int(finetune_epochs) < 1:
            raise ConfigError("chunk_len and finetune_epochs must be >= 1")
        super().__init__(tau=tau, unit=unit, chunk_len=int(chunk_len), model=None if model is None else str(model),
                         proxy_model=proxy_model, proxy_train=proxy_train, tokenizer=tokenizer,
                         finetune_train=finetune_train, finetune_epochs=int(finetune_epochs), seed=seed, fitted=fitted,
                         device=device, dtype=dtype, batch_tokens=int(batch_tokens))
        self._init_fitted(fitted)
        if model is not None:
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
        if p["model"] is not None:
            prior = load_proxy(p["model"], device=p["device"], dtype=p["dtype"])
        elif pool_sample is None:
            raise ConfigError("CoLoR-Filter needs a pool sample to train the prior (or model=NAME|DIR)")
        else:
            m, t = model_cfgs(p["proxy_model"], p["proxy_train"], p["seed"])
            prior = train_proxy(texts_of(pool_sample), m, t, {"kind": p["tokenizer"]}, device=p["device"])
        prior.optimizer = None  # the conditional model's optimizer is reset; no need to copy moments
        cond = copy.deepcopy(prior)
        ft = {**FINETUNE_REFERENCE, "seed": p["seed"], **(p["finetune_train"] or {})}
        finetune(cond, tgt, ft, epochs=p["finetune_epochs"], reset_optimizer=True, window=p["chunk_len"])
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
    def __getstate__(self):
        """Pickled (Beam workers) without the two models when they live in ``fitted``: reloaded from there."""
        st = dict(super().__getstate__())
        if self._params.get("fitted"):
            st.pop("prior_", None)
            st.pop("conditional_", None)
        return st

    def __setstate__(self, st):
        super().__setstate__(st)
        if self._params.get("fitted") and "prior_" not in self.__dict__:
            self._load_files(Path(self._params["fitted"]))

    def _save_files(self, path: Path) -> None:
        from lmsieve.features.proxy_lm import save_proxy

        for name, lm in (("prior", self.prior_), ("conditional", self.conditional_)):
            save_proxy(lm, path / name, optimizer=False)

    def _load_files(self, path: Path) -> None:
        from lmsieve.features.proxy_lm import load_proxy

        dev, dt = self._params["device"], self._params.get("dtype", "auto")
        self.prior_ = load_proxy(path / "prior", device=dev, dtype=dt)
        self.conditional_ = load_proxy(path / "conditional", device=dev, dtype=dt)


__all__ = ["ColorFilter", "FittedDirMixin", "texts_of"]
