"""MONA: monosemantic activation matching (Ma et al. 2025, arXiv:2503.15573).

A document's representation is the **mean** over its tokens of TopK-SAE codes of one residual
layer of a causal LM (``lmsieve.features.sae.document_codes``; the paper: Llama-3-8B, the
penultimate layer, Eleuther ``sae-llama-3-8b-32x``, K = 192). The mean, not the sum: summed codes
grow with length, so selection would favour documents as long as the targets. A task prototype
p is the mean code of its target examples; a document x scores the generalised Jaccard

    J(x, p) = sum_k min(x_k, p_k) / sum_k max(x_k, p_k)
            = m / (sum x + sum p - m),  m = sum over x's non-zeros of min(x_k, p_k)

(codes are >= 0, and min + max = x + p), so only the document's sparse code and the dense
prototypes are needed: the pool is streamed once, every task scored, no dense code stored.
Keep the top ``keep_fraction`` (5%, the paper's best; exposed as ``default_keep``).

Several tasks (a list or dict of target tables): scores are (N, T) and ``run_selection`` splits the
budget evenly over tasks (``allocate``), masking what earlier tasks took. Choices where the paper
is silent: codes are exact (``store_k=0``: every non-zero of the mean code), ``<bos>`` is left
out of the mean, instruction rows use ``chat_template``; ``pooling="sum"`` exists only as the
ablation the length-bias test needs. An empty document scores 0.

Models: ``model`` is a fetched name (default ``smollm2-135m`` once ``lmsieve models fetch
smollm2-135m`` has run) or a local model directory; ``sae`` a sparsify-format SAE directory (e.g.
Eleuther's, with ``hookpoint``), or None: then MONA trains its own TopK SAE (AuxK, see
:mod:`lmsieve.features.sae`) on ``layer`` (default -2, the penultimate layer, as the paper) of that
model, once, and caches it under ``$LMSIEVE_HOME/sae/`` keyed by the model's content hash, the
layer and the SAE settings; later runs reuse it. Our choice for that default SAE (the paper used a
pretrained 32x SAE): ``sae_expansion`` 8 x d_model latents, K = ``sae_k`` 32, trained on the first
``sae_max_tokens`` 128 tokens of ``sae_docs`` 256 documents of lmsieve's bundled mixed-domain
sample (not the user's pool, so one cached SAE serves every pool), ``sae_steps`` 300 steps of 1,024
tokens: about 3 minutes on 2 CPU cores with SmolLM2-135M, seconds on a GPU.
"""
from __future__ import annotations

import numpy as np

from pathlib import Path

from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.chat_template import TEMPLATE_COLUMNS, template_texts
from lmsieve.selectors.fitted_dir import FittedDirMixin


def jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """Generalised Jaccard of two non-negative dense vectors (0 when both are zero)."""
    den = float(np.maximum(x, y).sum())
    return float(np.minimum(x, y).sum()) / den if den > 0 else 0.0


def sparse_jaccard(idx: np.ndarray, val: np.ndarray, protos: np.ndarray, proto_sums: np.ndarray) -> np.ndarray:
    """J of one sparse code (indices, values >= 0) against every prototype row: (T,)."""
    m = np.minimum(val[None, :].astype(np.float64), protos[:, idx]).sum(axis=1)
    den = float(val.sum(dtype=np.float64)) + proto_sums - m
    return np.where(den > 0, m / np.where(den > 0, den, 1.0), 0.0)


@register
class Mona(FittedDirMixin, Selector):
    """Score = generalised Jaccard between a document's mean SAE code and the task prototype."""

    name = "mona"
    input_columns = TEMPLATE_COLUMNS
    fitted_attributes = ("prototypes_",)
    execution_params = ("device", "batch_tokens")
    default_keep = 0.05

    def __init__(self, model: str | None = None, sae: str | None = None, hookpoint: str | None = None,
                 layer: int | None = None, max_tokens: int | None = None, pooling: str = "mean",
                 sae_expansion: int = 8, sae_k: int = 32, sae_docs: int = 256, sae_max_tokens: int = 128,
                 sae_steps: int = 300, device: str = "auto", batch_tokens: int = 8192, fitted: str | None = None):
        from lmsieve.selectors.rds import default_model_ref

        if model is None and fitted is None:
            model = default_model_ref(self.name)
        if pooling not in ("mean", "sum"):
            raise ConfigError(f"pooling: expected 'mean' (or the 'sum' ablation), got {pooling!r}")
        for name, v in (("sae_expansion", sae_expansion), ("sae_k", sae_k), ("sae_docs", sae_docs),
                        ("sae_max_tokens", sae_max_tokens), ("sae_steps", sae_steps)):
            if int(v) < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        super().__init__(model=None if model is None else str(model), sae=None if sae is None else str(sae),
                         hookpoint=hookpoint, layer=layer,
                         max_tokens=max_tokens, pooling=pooling, sae_expansion=int(sae_expansion), sae_k=int(sae_k),
                         sae_docs=int(sae_docs), sae_max_tokens=int(sae_max_tokens), sae_steps=int(sae_steps),
                         device=device, batch_tokens=int(batch_tokens), fitted=fitted)
        self._init_fitted(fitted)

    def __getstate__(self):
        """Pickled (Beam workers) without the loaded models: they reload lazily from ``model``."""
        st = dict(super().__getstate__())
        for a in ("_lm", "_sae"):
            st.pop(a, None)
        return st

    def _models(self):
        if getattr(self, "_lm", None) is None:
            from lmsieve.features.sae import load_sae
            from lmsieve.selectors.rds import load_lm

            p = self._params
            self._lm = load_lm(p["model"], device=p["device"])
            saved = Path(p["fitted"]) / "sae" if p.get("fitted") else None
            if saved is not None and (saved / "cfg.json").is_file():  # fitted=DIR carries its SAE
                self._sae = load_sae(saved)
            elif p["sae"] is None:
                self._sae = cached_sae(self._lm, -2 if p["layer"] is None else p["layer"], p)
            else:
                self._sae = load_sae(p["sae"], hookpoint=p["hookpoint"], layer=p["layer"])
            self._sae = self._sae.to(self._lm.device)
        return self._lm, self._sae

    def fingerprint_params(self) -> dict:
        """Parameters plus the LM's and the SAE's content hashes (stored scores go stale with them)."""
        from lmsieve.features.store import hash_files

        lm, sae = self._models()
        return {**super().fingerprint_params(), "model_hash": lm.model_hash(),
                "sae_hash": hash_files(sae.path, ["cfg.json", "sae.safetensors"])}

    def codes(self, batch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per document: (latent indices, pooled code values), sparse and exact."""
        from lmsieve.features.sae import document_codes

        lm, sae = self._models()
        texts = template_texts(batch)
        idx, val = document_codes(lm, sae, texts, store_k=0, max_tokens=self._params["max_tokens"],
                                  batch_tokens=self._params["batch_tokens"])
        if self._params["pooling"] == "sum":  # ablation: undo the mean (x number of coded tokens)
            from lmsieve.features.proxy_lm.pooling import truncated_sequences

            bos = lm.tokenizer.bos_id is not None
            n_tok = [max(len(s) - bos, 1) for s in truncated_sequences(lm, texts, self._params["max_tokens"])]
            val = [v * np.float32(n) for v, n in zip(val, n_tok)]
        return idx, val

    def fit(self, target, pool_sample=None) -> "Mona":
        if self._load_fitted():
            return self
        tasks = list(target.values()) if isinstance(target, dict) else \
            list(target) if isinstance(target, (list, tuple)) else [target]
        _, sae = self._models()
        protos = np.zeros((len(tasks), sae.num_latents), dtype=np.float64)
        for j, t in enumerate(tasks):
            idx, val = self.codes(t)
            if not idx:
                raise InputError("mona needs at least one target example per task", "target")
            for i, v in zip(idx, val):
                np.add.at(protos[j], i, v.astype(np.float64))
            protos[j] /= len(idx)
        self.prototypes_ = protos
        return self

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        idx, val = self.codes(batch)
        sums = self.prototypes_.sum(axis=1)
        s = np.array([sparse_jaccard(i, v, self.prototypes_, sums) for i, v in zip(idx, val)],
                     dtype=np.float64).reshape(len(idx), len(self.prototypes_))
        return (s[:, 0] if s.shape[1] == 1 else s), np.ones(len(idx), dtype=bool)

    def allocate(self, k: int) -> list[int]:
        """k split evenly over tasks (the first k mod T tasks get one more)."""
        t = len(self.prototypes_)
        return [k // t + (1 if j < k % t else 0) for j in range(t)]

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"prototypes_": np.asarray(self.prototypes_, dtype=np.float64)}

    def _save_files(self, path) -> None:
        """The SAE (small) goes into the fitted directory; the LM is referenced by ``model``."""
        from lmsieve.features.sae import save_sae

        _, sae = self._models()
        save_sae(sae, Path(path) / "sae")

    def _load_files(self, path) -> None:
        pass


def sae_cache_dir(lm, layer_index: int, p: dict):
    """``$LMSIEVE_HOME/sae/<model hash>-hs<layer>-<settings>``: one cached SAE per model, layer and settings."""
    import os

    key = (f"{lm.model_hash()[:16]}-hs{layer_index}-x{p['sae_expansion']}k{p['sae_k']}-"
           f"{p['sae_docs']}d{p['sae_max_tokens']}t{p['sae_steps']}s")
    root = os.environ.get("LMSIEVE_HOME")  # as lmsieve.models: $LMSIEVE_HOME, default ~/.cache/lmsieve
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "lmsieve") / "sae" / key


def cached_sae(lm, layer: int, p: dict):
    """MONA's default SAE for ``lm``: loaded from the cache, or trained once on the bundled sample and cached."""
    import logging
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from lmsieve.data import sample_path
    from lmsieve.features.proxy_lm.pooling import resolve_layer
    from lmsieve.features.sae import load_sae, train_sae_on_texts
    from lmsieve.sampling.hashing import stable_hash64

    idx = resolve_layer(lm, layer)
    out = sae_cache_dir(lm, idx, p)
    if (out / "cfg.json").is_file() and (out / "sae.safetensors").is_file():
        return load_sae(out)
    sample = pq.read_table(sample_path("pool.parquet"), columns=["id", "text"])
    pick = np.sort(np.argsort(stable_hash64(0, sample.column("id")), kind="stable")[: p["sae_docs"]])
    logging.getLogger(__name__).warning(
        "mona: training a TopK SAE on hidden_states[%d] of %s (once; cached in %s)", idx, p["model"], out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        train_sae_on_texts(lm, sample.take(pick), tmp / "sae", layer=idx, expansion=p["sae_expansion"], k=p["sae_k"],
                           max_tokens=p["sae_max_tokens"], steps=p["sae_steps"], seed=0, show_progress=True)
        if not out.exists():
            (tmp / "sae").rename(out)  # atomic: a concurrent run either finds the whole SAE or trains its own
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_sae(out)
