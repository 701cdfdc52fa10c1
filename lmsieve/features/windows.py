"""Cut documents into overlapping, line-aligned windows (vectorised over a batch), and reduce
per-window scores back to one score per document.

Sizes are in UTF-8 bytes (= characters for ASCII text), which lets the cutting work on the
Arrow string buffer directly: one ``np.flatnonzero`` for the newlines of the whole batch,
``np.searchsorted`` to snap cut points to them, one gather to build the windows' string array.

Cutting a document of L bytes with window W and overlap o (stride S = max(1, round(W·(1-o)))):

* nominal windows start at 0, S, 2S, ... ; the last one is moved to end exactly at L, so
  ``1 + ceil(max(0, L - W) / S)`` windows (one window, the whole document, when L <= W; an
  empty document has one empty window);
* each start moves back to the beginning of its line and each end forward to the end of its
  line (after the newline) when that is at most W/2 bytes away, so windows hold whole lines
  unless a line is very long; cut points are then moved back off UTF-8 continuation bytes.

Consecutive nominal windows overlap (S <= W) and cover [0, L); snapping only widens a window,
so **every byte of every document lies in at least one window** (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

REDUCERS = ("max", "mean_topk")


@dataclass
class Windows:
    """The windows of a batch: ``texts`` (string array), ``doc`` (window -> document row, sorted),
    ``start``/``end`` (byte offsets inside the document), ``first`` (each document's first window)."""

    texts: pa.Array
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    first: np.ndarray
    n_docs: int

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.start


def check_window_params(window, overlap: float) -> None:
    if not (window == "auto" or (isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window >= 1)):
        raise ConfigError(f"window: expected 'auto' or a positive int (bytes), got {window!r}")
    if not 0 <= float(overlap) < 1:
        raise ConfigError(f"window_overlap must be in [0, 1), got {overlap!r}")


def auto_window(target, minimum: int = 64) -> int:
    """``window="auto"``: the median UTF-8 length of the target examples (at least ``minimum``)."""
    arr = text_array(target)
    if len(arr) == 0:
        raise ConfigError("window='auto' needs at least one target example")
    lengths = np.asarray(pa.compute.binary_length(arr.cast(pa.binary())).to_numpy(zero_copy_only=False))
    return max(int(minimum), int(np.median(lengths)))


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets (n+1,), uint8 data) of a string array, without copying the data."""
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(0, np.uint8)
    return offs, data


def cut_windows(batch, window: int, overlap: float = 0.5) -> Windows:
    """The windows of every document of a batch (see the module doc)."""
    check_window_params(int(window), overlap)
    W = int(window)
    S = max(1, int(round(W * (1.0 - float(overlap)))))
    arr = text_array(batch)
    if arr.type == pa.large_string():
        arr = arr.cast(pa.string())
    offs, data = _buffers(arr)
    n = len(arr)
    L = np.diff(offs)
    nwin = 1 + np.ceil(np.maximum(0, L - W) / S).astype(np.int64)
    doc = np.repeat(np.arange(n, dtype=np.int64), nwin)
    first = np.concatenate([[0], np.cumsum(nwin)[:-1]]).astype(np.int64)
    j = np.arange(len(doc), dtype=np.int64) - first[doc]
    Ld = L[doc]
    start = np.minimum(j * S, np.maximum(Ld - W, 0))
    end = np.minimum(start + W, Ld)
    base = offs[:-1][doc]
    a, b = base + start, base + end  # absolute byte offsets in ``data``
    lo, hi = base, base + Ld
    # snap to lines: start after the last newline before it, end after the next newline at/after it
    nl = np.flatnonzero(data == 10).astype(np.int64)
    half = W // 2
    if len(nl):
        k = np.searchsorted(nl, a, side="left") - 1  # last newline strictly before a
        line_start = np.where(k >= 0, nl[np.maximum(k, 0)] + 1, 0)
        line_start = np.maximum(line_start, lo)
        a = np.where(a - line_start <= half, line_start, a)
        k2 = np.searchsorted(nl, b - 1, side="left")  # first newline at or after b-1
        line_end = np.where(k2 < len(nl), nl[np.minimum(k2, len(nl) - 1)] + 1, hi)
        line_end = np.minimum(line_end, hi)
        b = np.where((b > a) & (line_end - b <= half), np.maximum(b, line_end), b)
    # never cut inside a UTF-8 sequence: move starts back, ends forward, off continuation bytes
    if len(data):
        for _ in range(3):
            cont = (a < hi) & (a > lo) & ((data[np.minimum(a, len(data) - 1)] & 0xC0) == 0x80)
            a = a - cont
            cont = (b < hi) & ((data[np.minimum(b, len(data) - 1)] & 0xC0) == 0x80)
            b = b + cont
    lens = b - a
    total = int(lens.sum())
    woffs = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=woffs[1:])
    if total:
        idx = np.arange(total, dtype=np.int64) - np.repeat(woffs[:-1] - a, lens)
        wdata = data[idx]
    else:
        wdata = np.zeros(0, np.uint8)
    otype, otyp = (np.int32, pa.string()) if total < 2**31 else (np.int64, pa.large_string())
    texts = pa.Array.from_buffers(otyp, len(lens), [None, pa.py_buffer(woffs.astype(otype)), pa.py_buffer(wdata)])
    return Windows(texts, doc, a - base, b - base, first, n)


def reduce_windows(scores: np.ndarray, w: Windows, reduce: str = "max", top_k: int = 3,
                   usable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(document score, document has a usable window) from per-window scores.

    ``max``: the best window; ``mean_topk``: the mean of the document's ``top_k`` best windows
    (all of them when it has fewer). Windows where ``usable`` is false are ignored; a document
    without a usable window gets the reduction over all its windows and ``False``."""
    s = np.asarray(scores, dtype=np.float64)
    if reduce not in REDUCERS:
        raise ConfigError(f"window_reduce: expected one of {', '.join(REDUCERS)}, got {reduce!r}")
    if len(s) == 0:
        return np.zeros(w.n_docs), np.zeros(w.n_docs, dtype=bool)
    ok = np.ones(len(s), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    has = np.bitwise_or.reduceat(ok, w.first) if len(w.first) else np.zeros(0, bool)
    # a document without a usable window falls back to all of its windows
    ok = ok | ~has[w.doc]
    masked = np.where(ok, s, -np.inf)
    if reduce == "max":
        return np.maximum.reduceat(masked, w.first), has
    order = np.lexsort((-masked, w.doc))  # by document, best window first
    rank = np.arange(len(s)) - w.first[w.doc[order]]
    take = order[(rank < int(top_k)) & ok[order]]
    total = np.bincount(w.doc[take], weights=s[take], minlength=w.n_docs)
    count = np.bincount(w.doc[take], minlength=w.n_docs)
    return total / np.maximum(count, 1), has


__all__ = ["REDUCERS", "Windows", "auto_window", "check_window_params", "cut_windows", "reduce_windows"]
