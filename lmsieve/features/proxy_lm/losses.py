"""Per-document language-model losses: total NLL, mean token cross-entropy, bits per character.

A document is scored as ``[<bos>] + tokens`` (see the tokenizer module), so every token is
predicted. Documents longer than the window are scored with a sliding window: windows of ``window``
input tokens start every ``stride`` tokens, and each window scores only the targets no earlier
window scored (the strided-perplexity scheme PreSelect uses with 1900/512), so **every token is
scored exactly once**, with at least ``window - stride`` tokens of context after the first window.
Unlike PreSelect's code, the tail after the last full window is scored too, and context never
crosses a document boundary.

Chunk mode (CoLoR-Filter) cuts each document's tokens into ``chunk_len``-token chunks (the last
one shorter), scores each chunk on its own as ``[<bos>] + chunk``, and returns the mean CE per
chunk: ``ceil(tokens / chunk_len)`` numbers per document.

Windows from all documents of a batch are sorted by length and packed into right-padded
micro-batches of at most ``batch_tokens`` tokens (one window alone when it is longer) with an
attention mask; padding is masked out of the loss and, the model being causal, never changes a real
token's prediction. Sums run in float64. Batched and unbatched (``batch_tokens=1``) scores agree to
float32 rounding, not bit for bit (matmul shapes differ): measured below 1e-5 nats per token on
CPU in float32 (``tests/test_model_stack.py`` asserts 1e-4); in bf16 on a GPU expect ~1e-2.
BPC = total NLL / (characters * ln 2) and nats per byte = total NLL / UTF-8 bytes
(:attr:`LossResult.nats_per_byte`, comparable across tokenizers); a document without tokens gets
NaN mean CE and BPC.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from lmsieve.features.proxy_lm.checkpoint import LoadedLM
from lmsieve.features.store import Extractor, FeatureColumn
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError


@dataclass
class LossResult:
    total_nll: np.ndarray  # float64 nats per document
    n_tokens: np.ndarray  # int64 scored tokens
    n_chars: np.ndarray  # int64 characters (code points)
    n_bytes: np.ndarray | None = None  # int64 UTF-8 bytes

    @property
    def nats_per_byte(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_bytes > 0, self.total_nll / np.maximum(self.n_bytes, 1), np.nan)

    @property
    def mean_ce(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_tokens > 0, self.total_nll / np.maximum(self.n_tokens, 1), np.nan)

    @property
    def bpc(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_chars > 0, self.total_nll / (np.maximum(self.n_chars, 1) * math.log(2)), np.nan)


def with_bos(lm: LoadedLM, ids: np.ndarray) -> np.ndarray:
    bos = lm.tokenizer.bos_id
    return ids if bos is None else np.concatenate([np.array([bos], np.int32), ids])


def plan_windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, inputs, new)`` per window over a sequence of ``n`` tokens (``n - 1`` targets).

    The window feeds tokens ``[begin, begin + inputs)`` and scores its last ``new`` targets.
    """
    if not 1 <= stride <= window:
        raise ConfigError(f"stride must be in [1, window]; got stride={stride}, window={window}")
    out, begin, done = [], 0, 0
    while done < n - 1:
        length = min(window, n - 1 - begin)
        end = begin + length
        out.append((begin, length, end - done))
        done = end
        begin += stride
    return out


def _nll(lm, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) float32 NLL of ``x[:, 1:]``; any object with ``run`` (e.g. a count-based stand-in) works."""
    if hasattr(lm, "token_nll"):
        return lm.token_nll(x, mask)
    logits, _ = lm.run(x[:, :-1], mask)
    b, t, v = logits.shape  # (B*T, V) rows: 4x faster than a transposed (B, V, T) view on CPU
    return F.cross_entropy(logits.float().reshape(b * t, v), x[:, 1:].reshape(-1), reduction="none").view(b, t)


def total_bytes(arr: pa.Array) -> np.ndarray:
    return pc.binary_length(pc.cast(arr, pa.binary())).to_numpy(zero_copy_only=False).astype(np.int64)


def score_sequences(lm: LoadedLM, seqs: list[np.ndarray], window: int, stride: int,
                    batch_tokens: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(total NLL float64, scored-token count) of each id sequence, windows batched by length."""
    if window > lm.context:
        raise ConfigError(f"window ({window}) exceeds the model context ({lm.context})")
    jobs = [(i, b, L, new) for i, s in enumerate(seqs) for b, L, new in plan_windows(len(s), window, stride)]
    jobs.sort(key=lambda j: -j[2])
    totals = np.zeros(len(seqs), np.float64)
    counts = np.zeros(len(seqs), np.int64)
    pad = lm.tokenizer.pad_id or 0
    start = 0
    while start < len(jobs):
        width = jobs[start][2]
        rows = max(1, batch_tokens // width)
        group = jobs[start:start + rows]
        start += len(group)
        ids = np.full((len(group), width + 1), pad, np.int64)
        weight = np.zeros((len(group), width), np.float32)
        for r, (i, b, L, new) in enumerate(group):
            ids[r, :L + 1] = seqs[i][b:b + L + 1]
            weight[r, L - new:L] = 1.0
        x = torch.from_numpy(ids).to(lm.device)
        mask = torch.from_numpy(np.arange(width)[None, :] < np.array([g[2] for g in group])[:, None])
        with torch.inference_mode():
            nll = _nll(lm, x, mask.to(lm.device))
        sums = (nll.double().cpu().numpy() * weight).sum(axis=1)
        idx = np.array([g[0] for g in group])
        np.add.at(totals, idx, sums)
        np.add.at(counts, idx, np.array([g[3] for g in group], np.int64))
    return totals, counts


def document_losses(lm: LoadedLM, batch, *, window: int | None = None, stride: int | None = None,
                    batch_tokens: int = 8192) -> LossResult:
    """Whole-document losses; ``window`` defaults to the model context, ``stride`` to half of it."""
    arr = text_array(batch)
    window = int(window or lm.context)
    stride = int(stride or max(1, window // 2))
    seqs = [with_bos(lm, t) for t in lm.tokenizer.encode_batch(arr)]
    totals, counts = score_sequences(lm, seqs, window, stride, batch_tokens)
    chars = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    return LossResult(totals, counts, chars, total_bytes(arr))


def chunk_losses(lm: LoadedLM, batch, *, chunk_len: int = 512, window: int | None = None,
                 stride: int | None = None, batch_tokens: int = 8192) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per document: mean CE of each ``chunk_len``-token chunk, and each chunk's token count."""
    if chunk_len < 1:
        raise ConfigError("chunk_len must be >= 1")
    window = int(window or min(lm.context, chunk_len))
    stride = int(stride or max(1, window // 2))
    owner, seqs = [], []
    docs = lm.tokenizer.encode_batch(text_array(batch))
    for d, ids in enumerate(docs):
        for s in range(0, len(ids), chunk_len):
            owner.append(d)
            seqs.append(with_bos(lm, ids[s:s + chunk_len]))
    totals, counts = score_sequences(lm, seqs, window, stride, batch_tokens)
    bounds = np.cumsum([0] + [math.ceil(len(ids) / chunk_len) for ids in docs])
    ce = [(totals[a:b] / np.maximum(counts[a:b], 1)).astype(np.float32) for a, b in zip(bounds[:-1], bounds[1:])]
    return ce, [counts[a:b].astype(np.int32) for a, b in zip(bounds[:-1], bounds[1:])]


class ProxyLoss(Extractor):
    """Columns ``<name>_mean_ce`` (float32), ``<name>_nll`` (float64 nats), ``<name>_bpc``, ``<name>_tokens``."""

    kind = "proxy_loss"
    doc_batch = 256

    def __init__(self, lm: LoadedLM, *, name: str = "proxy", window: int | None = None, stride: int | None = None,
                 batch_tokens: int = 8192):
        self.lm, self.name = lm, name
        self.window = int(window or lm.context)
        self.stride = int(stride or max(1, self.window // 2))
        self.batch_tokens = batch_tokens

    def columns(self):
        n = self.name
        return [FeatureColumn(f"{n}_mean_ce", pa.float32()), FeatureColumn(f"{n}_nll", pa.float64()),
                FeatureColumn(f"{n}_bpc", pa.float32()), FeatureColumn(f"{n}_tokens", pa.int32())]

    def params(self):
        return {"window": self.window, "stride": self.stride}

    def model_hash(self):
        return self.lm.model_hash()

    def __call__(self, batch):
        r = document_losses(self.lm, batch, window=self.window, stride=self.stride, batch_tokens=self.batch_tokens)
        n = self.name
        return {f"{n}_mean_ce": pa.array(r.mean_ce.astype(np.float32)), f"{n}_nll": pa.array(r.total_nll),
                f"{n}_bpc": pa.array(r.bpc.astype(np.float32)), f"{n}_tokens": pa.array(r.n_tokens.astype(np.int32))}


class ProxyChunkLoss(Extractor):
    """Columns ``<name>_ce`` (list<float32>: mean CE per chunk) and ``<name>_tokens`` (list<int32>)."""

    kind = "proxy_chunk_loss"
    doc_batch = 256

    def __init__(self, lm: LoadedLM, *, name: str = "proxy_chunks", chunk_len: int = 512, batch_tokens: int = 8192):
        self.lm, self.name, self.chunk_len, self.batch_tokens = lm, name, int(chunk_len), batch_tokens
        self.window = min(lm.context, self.chunk_len)

    def columns(self):
        return [FeatureColumn(f"{self.name}_ce", pa.list_(pa.float32()), (None,)),
                FeatureColumn(f"{self.name}_tokens", pa.list_(pa.int32()), (None,))]

    def params(self):
        return {"chunk_len": self.chunk_len, "window": self.window, "stride": max(1, self.window // 2)}

    def model_hash(self):
        return self.lm.model_hash()

    def __call__(self, batch):
        ce, tok = chunk_losses(self.lm, batch, chunk_len=self.chunk_len, batch_tokens=self.batch_tokens)
        return {f"{self.name}_ce": pa.array([c.tolist() for c in ce], pa.list_(pa.float32())),
                f"{self.name}_tokens": pa.array([t.tolist() for t in tok], pa.list_(pa.int32()))}
