"""Flagging documents that contain evaluation items (n-gram containment, GPT-3 / NeMo Curator).

A document is *contaminated* by an evaluation item when

* it contains one of the item's short fields whole (whole-item rule, see :mod:`.index`), or
* it shares at least ``min(min_overlap, item n-grams)`` distinct word n-grams with the item
  (default ``min_overlap`` 1: one shared 13-gram), and, when ``min_fraction`` is given, at least
  that fraction of the item's distinct n-grams.

A document is flagged when any item contaminates it; its ``sets`` bit mask says which evaluation
sets (bit s = set s of the index). Every document is decided from its own words alone, so flags
do not depend on batching or sharding. The work per batch is numpy over all word positions:
tokenise, hash (:mod:`.hashing`), ``searchsorted`` into the sorted index, and group the hits
by (document, item) with ``np.unique``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.features.decontam.hashing import chain_levels, word_hashes
from lmsieve.features.decontam.index import DecontamIndex
from lmsieve.features.decontam.normalise import tokenize_words
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

CHUNK_DOCS = 1024
CHUNK_BYTES = 4 << 20


@dataclass
class Flags:
    """Per-document result, aligned with the input."""

    flagged: np.ndarray  # bool
    sets: np.ndarray  # uint64 bit mask of the evaluation sets that contaminate the document
    matches: np.ndarray  # int32: distinct matched hashes of the best item (Bloom: of the best set)
    item: np.ndarray  # int64: the best contaminating item (-1: none, or a Bloom index)
    ids: list | None = None  # the documents' ids, where the caller keeps them
    ignored: int = 0  # n-grams ignored as too common (``max_matches``)

    def __len__(self) -> int:
        return len(self.flagged)

    @classmethod
    def concat(cls, parts: list["Flags"]) -> "Flags":
        if not parts:
            return cls(np.zeros(0, bool), np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int64))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("flagged", "sets", "matches", "item")))  # noqa: E501

    def set_counts(self, names: list[str], mask: np.ndarray | None = None) -> dict[str, int]:
        """Flagged documents per evaluation set (a document may count under several sets)."""
        sets = self.sets if mask is None else self.sets[mask]
        return {name: int(((sets >> np.uint64(s)) & np.uint64(1)).astype(bool).sum()) for s, name in enumerate(names)}


def check_rule(min_overlap: int, min_fraction: float | None) -> None:
    if int(min_overlap) < 1:
        raise ConfigError(f"min_overlap must be >= 1, got {min_overlap}")
    if min_fraction is not None and not 0 < float(min_fraction) <= 1:
        raise ConfigError(f"min_fraction must be in (0, 1], got {min_fraction}")


def flag_texts(index: DecontamIndex, batch, *, min_overlap: int = 1, min_fraction: float | None = None,
               max_matches: int | None = None, progress=None) -> Flags:
    """Flags of every document of ``batch`` (anything :func:`text_array` reads).

    ``max_matches`` (NeMo Curator's rule, exact index only): an indexed n-gram found in more than
    this many documents *of this batch* is boilerplate (licence headers, generated tables) and is
    ignored; ``Flags.ignored`` counts them. It makes a document's flag depend on the whole batch,
    so the in-process paths offer it and the sharded ones (Beam, datatrove) do not. ``progress``:
    called with the number of documents of each finished chunk (a tqdm ``update``)."""
    check_rule(min_overlap, min_fraction)
    if index.bloom_fpr is not None and (min_fraction is not None or max_matches is not None):
        raise ConfigError("min_fraction and max_matches need the exact index (a Bloom filter does not know items)")
    texts = text_array(batch)
    n = len(texts)
    parts, start = [], 0
    ends = np.cumsum(pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)) if n else []
    while start < n:
        stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + CHUNK_BYTES)), start + 1)
        stop = min(stop, n, start + CHUNK_DOCS)
        chunk = texts.slice(start, stop - start)
        if index.bloom_fpr is not None:
            row, toks = tokenize_words(chunk)
            parts.append(_flag_bloom(index, len(chunk), row, word_hashes(toks), int(min_overlap)))
        else:
            d, e, w = _chunk_hits(index, chunk)
            parts.append((d + start, e, w))
        if progress is not None:
            progress(stop - start)
        start = stop
    if index.bloom_fpr is not None:
        return Flags.concat(parts)
    d, e, w = (np.concatenate(x) for x in zip(*parts)) if parts else (np.zeros(0, np.int64),) * 3
    ignored = 0
    if max_matches is not None and len(e):
        df = np.bincount(e, minlength=len(index.hashes))  # hits are distinct per (document, hash)
        common = df > int(max_matches)
        ignored = int(common.sum())
        keep = ~common[e]
        d, e, w = d[keep], e[keep], w[keep]
    out = _flags_from_hits(index, n, d, e, w.astype(bool), int(min_overlap), min_fraction)
    out.ignored = ignored
    return out


def _chunk_hits(index: DecontamIndex, texts: pa.Array):
    """(document, index entry, whole-item hit) of every distinct (document, hash) match of a chunk."""
    row, toks = tokenize_words(texts)
    wh = word_hashes(toks)
    H = index.hashes
    docs, entries, whole = [], [], []
    if len(H):
        for k, start, h in chain_levels(row, wh, index.levels):
            q, pos = index.lookup(h)
            docs.append(row[start[q]])
            entries.append(pos)
            whole.append(np.full(len(q), k < index.n))
    if not docs or not sum(len(x) for x in docs):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    d, e, w = np.concatenate(docs), np.concatenate(entries), np.concatenate(whole)
    key, first = np.unique(d * np.int64(len(H)) + e, return_index=True)  # distinct (doc, hash)
    return key // len(H), key % len(H), w[first]


def _flags_from_hits(index: DecontamIndex, n_docs: int, d, e, w, min_overlap: int, min_fraction) -> Flags:
    out = Flags(np.zeros(n_docs, bool), np.zeros(n_docs, np.uint64), np.zeros(n_docs, np.int32),
                np.full(n_docs, -1, np.int64))
    if not len(d):
        return out
    # expand each matched hash to the items holding it
    lo, hi = index.post_ptr[e], index.post_ptr[e + 1]
    cnt = hi - lo
    rep = np.repeat(np.arange(len(e)), cnt)
    items = index.post_item[np.repeat(lo, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))]
    n_items = np.int64(max(1, len(index.item_set)))
    pair, inv = np.unique(d[rep] * n_items + items, return_inverse=True)
    count = np.bincount(inv, minlength=len(pair))
    whole_hit = np.bincount(inv, weights=w[rep], minlength=len(pair)) > 0
    pd, pi = pair // n_items, pair % n_items
    need = np.minimum(min_overlap, index.item_ngrams[pi])
    ok = whole_hit | (count >= need)
    if min_fraction is not None:
        ok &= whole_hit | (count >= min_fraction * index.item_ngrams[pi])
    pd, pi, count = pd[ok], pi[ok], count[ok]
    out.flagged[pd] = True
    np.bitwise_or.at(out.sets, pd, np.uint64(1) << index.item_set[pi].astype(np.uint64))
    # best item per document: most matched hashes, then the lowest item index
    order = np.lexsort((pi, -count, pd))
    pd, pi, count = pd[order], pi[order], count[order]
    firsts = np.ones(len(pd), bool)
    firsts[1:] = pd[1:] != pd[:-1]
    out.item[pd[firsts]] = pi[firsts]
    out.matches[pd[firsts]] = count[firsts]
    return out


def _flag_bloom(index: DecontamIndex, n_docs: int, row, wh, min_overlap: int) -> Flags:
    out = Flags(np.zeros(n_docs, bool), np.zeros(n_docs, np.uint64), np.zeros(n_docs, np.int32),
                np.full(n_docs, -1, np.int64))
    for k, start, h in chain_levels(row, wh, index.levels):
        cand = np.flatnonzero(index.bloom_candidates(h))  # numpy prefilter: never drops a member
        if not len(cand):
            continue
        d, h = row[start[cand]], h[cand]
        uh, inv = np.unique(h, return_inverse=True)
        hl = uh.tolist()
        for s, bloom in enumerate(index.blooms):
            if k < index.n and k not in index.sets[s]["whole_item_lengths"]:
                continue
            hit = np.fromiter(map(bloom.__contains__, hl), dtype=bool, count=len(hl))[inv]
            dd, hh = d[hit], h[hit]
            order = np.lexsort((hh, dd))
            dd, hh = dd[order], hh[order]
            first = np.ones(len(dd), bool)
            first[1:] = (dd[1:] != dd[:-1]) | (hh[1:] != hh[:-1])  # distinct (document, hash)
            c = np.bincount(dd[first], minlength=n_docs)
            ok = c > 0 if k < index.n else c >= min_overlap
            out.flagged |= ok
            out.sets[ok] |= np.uint64(1) << np.uint64(s)
            out.matches = np.maximum(out.matches, np.where(ok, c, 0).astype(np.int32))
    return out


def matched_spans(index: DecontamIndex, text: str, item: int, max_words: int = 60) -> str:
    """The normalised span of ``text`` that ``item`` matched (first to last matched word, cut to
    ``max_words``), for audits; exact index only."""
    row, toks = tokenize_words(pa.array([text], pa.string()))
    wh = word_hashes(toks)
    entries = np.flatnonzero(index.post_item == item)
    own = index.hashes[np.searchsorted(index.post_ptr, entries, side="right") - 1]
    lo_hi = []
    for k, start, h in chain_levels(row, wh, index.levels):
        for s in start[np.isin(h, own)]:
            lo_hi.append((int(s), int(s) + k))
    if not lo_hi:
        return ""
    lo, hi = min(a for a, _ in lo_hi), max(b for _, b in lo_hi)
    words = toks.slice(lo, min(hi - lo, max_words)).to_pylist()
    return " ".join(words) + (" ..." if hi - lo > max_words else "")


__all__ = ["Flags", "check_rule", "flag_texts", "matched_spans"]
