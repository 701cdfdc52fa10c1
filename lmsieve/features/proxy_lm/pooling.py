"""Pooled hidden states per document (RDS+): position-weighted mean, plain mean, or last token.

RDS+ (Ivison et al. 2025) pools the **last layer** (``hidden_states[-1]``, after the final norm)
with SGPT's position-weighted mean: the t-th valid token (t = 1..T, counted over valid tokens
only, so left or right padding changes nothing) gets weight ``t / sum_{s<=T} s``; the result is
L2-normalised and compared by dot product. ``mean`` weighs valid tokens equally; ``last`` takes the
last valid token's state. A document is ``[<bos>] + tokens``, right-truncated to ``max_tokens``
(default: the model context; RDS+ truncates at 2048), and ``<bos>`` counts as position 1. A document with no tokens at all (empty text, and a model
without a start token) gets a zero vector.

:func:`hidden_batches` (also used by the sparse autoencoder) yields right-padded micro-batches
of one layer's states in float32; layer indices follow the Hugging Face convention.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from lmsieve.features.proxy_lm.checkpoint import LoadedLM
from lmsieve.features.proxy_lm.losses import with_bos
from lmsieve.features.store import Extractor, FeatureColumn
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

MODES = ("weighted", "mean", "last")


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "weighted", normalize: bool = True) -> torch.Tensor:
    """Pool ``(B, T, D)`` states over the valid tokens of ``mask`` ``(B, T)``; float32 ``(B, D)``."""
    if mode not in MODES:
        raise ConfigError(f"pooling mode: expected one of {', '.join(MODES)}, got {mode!r}")
    h = hidden.float()
    m = mask.to(h.device).bool()
    pos = torch.cumsum(m.long(), dim=1) * m  # 1..T over valid tokens, 0 on padding
    if mode == "last":
        idx = torch.argmax(pos, dim=1)
        out = h[torch.arange(h.shape[0], device=h.device), idx]
    else:
        w = pos.double() if mode == "weighted" else m.double()
        w = (w / w.sum(dim=1, keepdim=True).clamp_min(1)).to(h.dtype)
        out = torch.einsum("bt,btd->bd", w, h)
    if normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out


def truncated_sequences(lm: LoadedLM, batch, max_tokens: int | None = None) -> list[np.ndarray]:
    limit = int(max_tokens or lm.context)
    if limit > lm.context:
        raise ConfigError(f"max_tokens ({limit}) exceeds the model context ({lm.context})")
    return [with_bos(lm, ids)[:limit] for ids in lm.tokenizer.encode_batch(text_array(batch))]


def resolve_layer(lm: LoadedLM, layer: int) -> int:
    n = lm.num_layers()
    idx = layer + n + 1 if layer < 0 else layer
    if not 0 <= idx <= n:
        raise ConfigError(f"layer {layer} out of range for a model with {n} layers (hidden_states 0..{n})")
    return idx


def hidden_batches(lm: LoadedLM, seqs: list[np.ndarray], layer: int = -1, batch_tokens: int = 8192):
    """Yield ``(doc indices, states (B, T, D) float32, mask (B, T) bool)``, sorted by length."""
    idx_layer = resolve_layer(lm, layer)
    upto = idx_layer if idx_layer < lm.num_layers() else None
    pad = lm.tokenizer.pad_id or 0
    order = sorted((i for i in range(len(seqs)) if len(seqs[i])), key=lambda i: -len(seqs[i]))
    start = 0
    while start < len(order):
        width = len(seqs[order[start]])
        group = order[start:start + max(1, batch_tokens // width)]
        start += len(group)
        ids = np.full((len(group), width), pad, np.int64)
        for r, i in enumerate(group):
            ids[r, :len(seqs[i])] = seqs[i]
        lengths = torch.tensor([len(seqs[i]) for i in group])
        mask = torch.arange(width)[None, :] < lengths[:, None]
        with torch.inference_mode():
            _, states = lm.run(torch.from_numpy(ids).to(lm.device), mask.to(lm.device), hidden=True,
                               logits=False, upto=upto)
        yield np.array(group), states[idx_layer].float(), mask


def pooled_states(lm: LoadedLM, batch, *, mode: str = "weighted", layer: int = -1, max_tokens: int | None = None,
                  batch_tokens: int = 8192) -> np.ndarray:
    """float32 ``(n, d_model)`` pooled, L2-normalised states, in the batch's row order."""
    seqs = truncated_sequences(lm, batch, max_tokens)
    out = None
    for idx, h, mask in hidden_batches(lm, seqs, layer, batch_tokens):
        pooled = pool_hidden(h, mask, mode).cpu().numpy()
        if out is None:
            out = np.zeros((len(seqs), pooled.shape[1]), np.float32)
        out[idx] = pooled
    return out if out is not None else np.zeros((len(seqs), lm.hidden_size()), np.float32)


class PooledStates(Extractor):
    """Column ``<name>``: fixed_size_list<float16|float32>[d_model] of pooled, normalised states."""

    kind = "proxy_pooled"
    doc_batch = 256

    def __init__(self, lm: LoadedLM, *, name: str = "pooled", mode: str = "weighted", layer: int = -1,
                 max_tokens: int | None = None, store_dtype: str = "float16", batch_tokens: int = 8192):
        if mode not in MODES or store_dtype not in ("float16", "float32"):
            raise ConfigError(f"mode must be one of {MODES} and store_dtype float16/float32")
        self.lm, self.name, self.mode, self.store_dtype, self.batch_tokens = lm, name, mode, store_dtype, batch_tokens
        self.layer = resolve_layer(lm, layer)
        self.max_tokens = int(max_tokens or lm.context)
        self.dim = lm.hidden_size()

    def columns(self):
        typ = pa.float16() if self.store_dtype == "float16" else pa.float32()
        return [FeatureColumn(self.name, pa.list_(typ, self.dim), (self.dim,))]

    def params(self):
        return {"mode": self.mode, "layer": self.layer, "max_tokens": self.max_tokens, "store_dtype": self.store_dtype}

    def model_hash(self):
        return self.lm.model_hash()

    def __call__(self, batch):
        v = pooled_states(self.lm, batch, mode=self.mode, layer=self.layer, max_tokens=self.max_tokens,
                          batch_tokens=self.batch_tokens)
        return {self.name: pa.FixedSizeListArray.from_arrays(pa.array(v.astype(self.store_dtype).ravel()), self.dim)}
