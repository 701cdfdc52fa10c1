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
"""
from __future__ import annotations

import numpy as np

from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, register
from lmsieve.selectors.chat_template import TEMPLATE_COLUMNS, template_texts


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
class Mona(Selector):
    """Score = generalised Jaccard between a document's mean SAE code and the task prototype."""

    name = "mona"
    input_columns = TEMPLATE_COLUMNS
    fitted_attributes = ("prototypes_",)
    execution_params = ("device", "batch_tokens")
    default_keep = 0.05

    def __init__(self, model: str | None = None, sae: str | None = None, hookpoint: str | None = None,
                 layer: int | None = None, max_tokens: int | None = None, pooling: str = "mean",
                 device: str = "cpu", batch_tokens: int = 8192):
        if model is None or sae is None:
            raise ConfigError("mona: give model=<proxy/HF LM directory> and sae=<sparsify-format SAE directory>")
        if pooling not in ("mean", "sum"):
            raise ConfigError(f"pooling: expected 'mean' (or the 'sum' ablation), got {pooling!r}")
        super().__init__(model=str(model), sae=str(sae), hookpoint=hookpoint, layer=layer, max_tokens=max_tokens,
                         pooling=pooling, device=device, batch_tokens=int(batch_tokens))

    def _models(self):
        if getattr(self, "_lm", None) is None:
            from lmsieve.features.proxy_lm import load_proxy
            from lmsieve.features.sae import load_sae

            p = self._params
            self._lm = load_proxy(p["model"], device=p["device"])
            self._sae = load_sae(p["sae"], hookpoint=p["hookpoint"], layer=p["layer"]).to(self._lm.device)
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
