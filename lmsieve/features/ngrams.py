"""Hashed n-gram features exactly as DSIR defines them (Xie et al., NeurIPS 2023).

Per document: lowercase (``str.lower``), tokenize with NLTK's WordPunct regex ``\\w+|[^\\w\\s]+``,
emit every unigram and, for n = 2..N, every n-gram joined by
one space, and hash each string as ``int(sha256(utf8(s)).hexdigest(), 16) % num_buckets``
(spec golden values: "alice" -> 6720, "alice went" -> 114 with 10,000 buckets).

Which ``\\w``: NLTK 3.10 (the version the reference package ``data-selection`` runs with here)
compiles its tokenizer patterns with the third-party ``regex`` engine, whose Unicode ``\\w`` also
matches combining marks (so "i̇" is one word), unlike the standard ``re``. We follow the reference
as installed: classes come from ``regex``; the tests compare with NLTK itself.

Why this is fast and still exact: the reference pays a regex, a Python string, a sha256 and a
numpy scalar update for every n-gram *occurrence*. Here a whole Arrow batch is lowercased by
Arrow, tokenised in numpy over the UTF-8 bytes (code points are decoded vectorised and classed
as word/space/other through a table built from the tokenizer's own regex engine, so the classes
are the reference's by construction), tokens are dictionary-encoded by Arrow, n-grams are identified as integer
tuples of token codes, and sha256 runs once per *distinct* n-gram in the batch. Documents holding a character whose Arrow lowercase differs from
``str.lower`` (a handful of code points, plus Greek capital sigma, whose final form is
context-dependent in Python) take the pure-Python path, which is also the slow reference used
by the tests.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import regex
import pyarrow.compute as pc

from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

WORDPUNCT = regex.compile(r"\w+|[^\w\s]+")
#: Code points whose Arrow (utf8proc) lowercase differs from Python 3.11's ``str.lower``, and
#: U+03A3 (Python lowercases a final capital sigma to U+03C2). Documents with any of them take the
#: Python path. ``tests/test_ngrams.py`` recomputes this set over all code points.
LOWER_MISMATCH = (
    "\u0130\u03a3\u1c89\ua7cb\ua7cc\ua7ce\ua7d2\ua7d4\ua7da\ua7dc"
    "\U00010d50-\U00010d65\U00016ea0-\U00016eb8"
)
_SPACE, _WORD, _OTHER = 0, 1, 2


@functools.lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    """uint8 class (space/word/other) of every code point, as the tokenizer's engine sees it."""
    table = np.full(0x110000, _OTHER, dtype=np.uint8)
    allchars = "".join(map(chr, range(0xD800))) + "\x00" * 0x800 + "".join(map(chr, range(0xE000, 0x110000)))
    for pattern, cls in ((r"\w+", _WORD), (r"\s+", _SPACE)):
        for m in regex.finditer(pattern, allchars):
            table[m.start():m.end()] = cls
    table[0xD800:0xE000] = _OTHER
    return table


def python_tokenize(text: str) -> list[str]:
    """The reference tokenizer: lowercase, then WordPunct (``\\w+|[^\\w\\s]+``)."""
    return WORDPUNCT.findall(text.lower())


def hash_bucket(s: str, num_buckets: int = 10000) -> int:
    """DSIR's bucket of one n-gram string."""
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest(), 16) % num_buckets


@dataclass
class NgramCounts:
    """Sparse per-document bucket counts in CSR layout, buckets ascending within a document.

    This canonical layout is what the features job stores (``list<int32>`` columns) and what
    every score is computed from, so scores are bit-identical in-process and in Beam, whatever
    the batching: sums run per document in bucket order.
    """

    indptr: np.ndarray  # int64, n_docs + 1
    indices: np.ndarray  # int32 bucket ids
    counts: np.ndarray  # int32
    num_buckets: int

    @property
    def n_docs(self) -> int:
        return len(self.indptr) - 1

    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_docs, dtype=np.int64), np.diff(self.indptr))

    def total_counts(self) -> np.ndarray:
        """Counts summed over documents (length num_buckets, int64)."""
        return np.bincount(self.indices, weights=self.counts, minlength=self.num_buckets).astype(np.int64)

    def per_doc(self) -> np.ndarray:
        """Number of n-gram features per document."""
        return np.bincount(self.row_ids(), weights=self.counts, minlength=self.n_docs).astype(np.int64)

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """counts @ weights per document (summed in bucket order)."""
        return np.bincount(self.row_ids(), weights=self.counts * weights[self.indices], minlength=self.n_docs)

    def to_scipy(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self.counts, self.indices, self.indptr), shape=(self.n_docs, self.num_buckets))

    def to_arrow(self) -> tuple[pa.ListArray, pa.ListArray]:
        """(buckets, counts) as list<int32> columns aligned with the documents."""
        off = pa.array(self.indptr.astype(np.int32) if self.indptr[-1] < 2**31 else self.indptr)
        mk = pa.ListArray.from_arrays if off.type == pa.int32() else pa.LargeListArray.from_arrays
        return mk(off, pa.array(self.indices, pa.int32())), mk(off, pa.array(self.counts, pa.int32()))

    @classmethod
    def from_arrow(cls, buckets, counts, num_buckets: int) -> "NgramCounts":
        """Inverse of :meth:`to_arrow` (columns may be chunked)."""
        if isinstance(buckets, pa.ChunkedArray):
            buckets, counts = buckets.combine_chunks(), counts.combine_chunks()
        lens = pc.list_value_length(buckets).to_numpy(zero_copy_only=False).astype(np.int64)
        indptr = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        return cls(indptr, pc.list_flatten(buckets).to_numpy(zero_copy_only=False).astype(np.int32),
                   pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.int32), num_buckets)

    @classmethod
    def concat(cls, parts: list["NgramCounts"], num_buckets: int) -> "NgramCounts":
        if not parts:
            return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), num_buckets)
        shifts = np.cumsum([0] + [p.indptr[-1] for p in parts[:-1]])
        indptr = np.concatenate([parts[0].indptr[:1]] + [p.indptr[1:] + s for p, s in zip(parts, shifts)])
        return cls(indptr, np.concatenate([p.indices for p in parts]), np.concatenate([p.counts for p in parts]),
                   num_buckets)

    @classmethod
    def from_occurrences(cls, doc: np.ndarray, bucket: np.ndarray, n_docs: int, num_buckets: int) -> "NgramCounts":
        key = doc * np.int64(num_buckets) + bucket
        if n_docs * num_buckets <= 1 << 24:  # dense counting: no sort
            dense = np.bincount(key, minlength=n_docs * num_buckets)
            nz = np.flatnonzero(dense)
            cnt = dense[nz]
        else:
            nz, cnt = np.unique(key, return_counts=True)
        rows = nz // num_buckets
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_docs), out=indptr[1:])
        return cls(indptr, (nz % num_buckets).astype(np.int32), cnt.astype(np.int32), num_buckets)


class HashedNgramFeaturizer:
    """Featurize batches of text into DSIR's hashed n-gram occurrences.

    ``ngrams``: largest n (2 = unigrams + bigrams, DSIR's default). ``num_buckets``: hash space
    (10,000 default). Distinct n-grams are hashed once per batch: larger batches hash less.
    """

    def __init__(self, num_buckets: int = 10000, ngrams: int = 2):
        if num_buckets < 1:
            raise ConfigError(f"num_buckets must be >= 1, got {num_buckets}")
        if ngrams < 1:
            raise ConfigError(f"ngrams must be >= 1, got {ngrams}")
        self.num_buckets = int(num_buckets)
        self.ngrams = int(ngrams)

    # -- public ---------------------------------------------------------------------------------
    #: Text bytes per internal sub-batch: large enough to share hashing of repeated n-grams,
    #: small enough to stay in cache (measured fastest around 1,000 pool documents).
    chunk_bytes = 4 << 20
    chunk_docs = 1024

    def transform(self, batch) -> NgramCounts:
        """Sparse bucket counts of every document of the batch."""
        texts = text_array(batch)
        parts, start, n = [], 0, len(texts)
        ends = np.cumsum(pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)) if n else []
        while start < n:
            stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + self.chunk_bytes)), start + 1)
            stop = min(stop, n, start + self.chunk_docs)
            tok_doc, tokens = tokenize_batch(texts.slice(start, stop - start))
            doc, bucket = self._hash(tok_doc, tokens)
            parts.append(NgramCounts.from_occurrences(doc, bucket, stop - start, self.num_buckets))
            start = stop
        return NgramCounts.concat(parts, self.num_buckets)

    def word_counts(self, occ: NgramCounts) -> np.ndarray:
        """Word count per document recovered from its feature count (DSIR's length metadata):
        (features + n(n−1)/2) // n, exact for every document with at least n−1 words."""
        n = self.ngrams
        return (occ.per_doc() + n * (n - 1) // 2) // n

    # -- hashing --------------------------------------------------------------------------------
    def _buckets_of(self, strings: pa.Array) -> np.ndarray:
        """Bucket of every (distinct) string: one sha256 each."""
        keys = strings.cast(pa.binary()).to_pylist()
        B, sha, from_bytes = self.num_buckets, hashlib.sha256, int.from_bytes
        return np.array([from_bytes(sha(k).digest(), "big") % B for k in keys], dtype=np.int64)

    def _hash(self, tok_doc: np.ndarray, tokens: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(document, bucket) of every n-gram occurrence."""
        enc = pc.dictionary_encode(tokens)
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniq = enc.dictionary
        docs = [tok_doc]
        buckets = [self._buckets_of(uniq)[codes]]
        # Order-m n-gram ids, built level by level: id_m(i) = factorize(id_{m-1}(i), code(i+m-1)).
        gram, n_uniq = codes, len(uniq)
        for m in range(2, self.ngrams + 1):
            n_pos = len(codes) - m + 1
            if n_pos <= 0:
                break
            same_doc = tok_doc[: n_pos] == tok_doc[m - 1 :]
            pos = np.flatnonzero(same_doc)
            if len(pos) == 0:
                break
            pair = gram[pos] * np.int64(len(uniq)) + codes[pos + m - 1]
            ids, first = _factorize(pair)
            # The n-gram string of each distinct id: join its m tokens at a representative position.
            rep = pos[first]
            parts = [uniq.take(pa.array(codes[rep + j])) for j in range(m)]
            strings = pc.binary_join_element_wise(*parts, " ")
            docs.append(tok_doc[pos])
            buckets.append(self._buckets_of(strings)[ids])
            # Next level keys over all positions (invalid ones are never used).
            nxt = np.full(len(codes), -1, dtype=np.int64)
            nxt[pos] = ids
            gram, n_uniq = nxt, len(first)
            if n_uniq * len(uniq) >= 2**62:
                raise ConfigError("too many distinct n-grams in one batch; use smaller batches")
        return np.concatenate(docs), np.concatenate(buckets)


def _factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense id per key, first index of each id) — a hash-based unique for int64 keys."""
    import pandas as pd

    ids, uniques = pd.factorize(keys, sort=False)
    first = np.full(len(uniques), len(keys), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(keys), dtype=np.int64))
    return ids.astype(np.int64), first


# -- tokenization ----------------------------------------------------------------------------------
_LOWER_MISMATCH_RE = "[" + LOWER_MISMATCH + "]"


def tokenize_batch(texts: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(document row of each token, tokens) for a batch, in document then position order."""
    n = len(texts)
    slow = pc.match_substring_regex(texts, _LOWER_MISMATCH_RE).to_numpy(zero_copy_only=False)
    if not slow.any():
        return _tokenize_native(pc.utf8_lower(texts))
    fast_rows = np.flatnonzero(~slow)
    slow_rows = np.flatnonzero(slow)
    d_fast, t_fast = _tokenize_native(pc.utf8_lower(texts.take(pa.array(fast_rows))))
    lists = [python_tokenize(s) for s in texts.take(pa.array(slow_rows)).to_pylist()]
    t_slow = pa.array([t for toks in lists for t in toks], type=pa.string())
    d_slow = np.repeat(slow_rows, [len(t) for t in lists]).astype(np.int64)
    return (np.concatenate([fast_rows[d_fast], d_slow]) if n else d_slow,
            pa.concat_arrays([t_fast, t_slow]))


def _tokenize_native(low: pa.Array, table: np.ndarray | None = None) -> tuple[np.ndarray, pa.Array]:
    """Vectorised WordPunct over an (already lowercased) string array, in byte space.

    ``table``: the uint8 class of every code point (default: WordPunct's; decontamination passes
    its own, where every non-word character is a separator).

    Every byte gets its character's class (ASCII through a 256-entry table; multi-byte
    characters are decoded, only they, and the class copied to their continuation bytes).
    Tokens are maximal runs of one non-space class inside one document.
    """
    if isinstance(low, pa.ChunkedArray):
        low = low.combine_chunks()
    low = low.cast(pa.large_string()) if not pa.types.is_large_string(low.type) else low
    offs_all = np.frombuffer(low.buffers()[1], dtype=np.int64)[low.offset : low.offset + len(low) + 1]
    data_buf = low.buffers()[2]
    raw = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    b = raw[offs_all[0] : offs_all[-1]]
    doc_start = offs_all[:-1] - offs_all[0]
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64), pa.array([], type=pa.string())
    table = _class_table() if table is None else table
    cls = table[:256][b]  # right for ASCII bytes; multi-byte characters are fixed below
    lead = np.flatnonzero(b >= 0xC0)
    if len(lead):
        lb = b[lead].astype(np.int32)
        nb = 2 + (lb >= 0xE0) + (lb >= 0xF0)
        cp = np.where(lb < 0xE0, lb & 0x1F, np.where(lb < 0xF0, lb & 0x0F, lb & 0x07))
        for k in (1, 2, 3):
            m = np.flatnonzero(nb > k) if k > 1 else slice(None)
            cp[m] = (cp[m] << 6) | (b[lead[m] + k] & 0x3F)
        c = table[np.minimum(cp, 0x10FFFF)]
        for k in (0, 1, 2, 3):
            m = np.flatnonzero(nb > k) if k > 1 else slice(None)
            cls[lead[m] + k] = c[m]
    nonspace = cls != _SPACE
    boundary = np.empty(len(b), dtype=bool)
    boundary[0] = True
    np.not_equal(cls[1:], cls[:-1], out=boundary[1:])
    boundary[doc_start[doc_start < len(b)]] = True
    tok_start = np.flatnonzero(boundary & nonspace)
    compact = b[nonspace]
    kept_before = np.cumsum(nonspace, dtype=np.int64)  # kept bytes up to and including i
    offsets = np.empty(len(tok_start) + 1, dtype=np.int64)
    offsets[:-1] = kept_before[tok_start] - 1
    offsets[-1] = len(compact)
    tokens = pa.LargeStringArray.from_buffers(len(tok_start), pa.py_buffer(offsets), pa.py_buffer(compact))
    tok_doc = np.searchsorted(doc_start, tok_start, side="right") - 1
    return tok_doc.astype(np.int64), tokens.cast(pa.string())
