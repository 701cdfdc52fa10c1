"""The overlap index of evaluation sets: hashed word n-grams with their items.

Built from evaluation items (one or more fields each: by default ``text``, ``prompt`` and
``answer``, those present). Each field of ``k`` normalised words contributes

* ``k >= n``: the hashes of all its word n-grams (default n = 13, GPT-3 / NeMo Curator);
* ``min_words <= k < n``: one hash of the whole field (the *whole-item rule*: the field's
  normalised text must appear in a document as consecutive words);
* ``k < min_words`` (default 8, NeMo's ``min_ngram_size``): nothing; the field is counted as too
  short (a 3-word answer such as "239" would match half a pool).

Exact storage (default): ``hashes``, the sorted distinct uint64 hashes; ``post_ptr``/``post_item``,
for each hash the items holding it (CSR); ``item_set``, ``item_ngrams`` (distinct hashes per item),
``item_ids``. Bloom storage (``bloom_fpr``): one ``rbloom.Bloom`` per evaluation set sized for its
hashes at that false-positive rate per lookup; items are then not recoverable from a match.

On disk an index is a directory: ``index.json`` (parameters, per-set statistics) and
``index.npz`` (arrays; Bloom filters as their bytes), read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.features.decontam.hashing import HASH_VERSION, chain_levels, word_hashes
from lmsieve.features.decontam.normalise import tokenize_words
from lmsieve.schemas.errors import ConfigError, InputError

DEFAULT_N = 13
DEFAULT_MIN_WORDS = 8
DEFAULT_COLUMNS = ("text", "prompt", "answer")
INDEX_JSON, INDEX_NPZ = "index.json", "index.npz"
FORMAT = "lmsieve-decontam-index/1"
MAX_SETS = 64
_MUL = 0x4F1BBCDCBFA53E0B  # odd, < 2**63: x * _MUL < 2**127 for any 64-bit x


def _bloom_hash(x: int) -> int:
    """rbloom needs an int in [-2**127, 2**127); spread the 64-bit hash over 127 bits."""
    return x * _MUL


def _make_bloom(n_items: int, fpr: float):
    from rbloom import Bloom

    return Bloom(max(1, int(n_items)), float(fpr), _bloom_hash)


@dataclass
class DecontamIndex:
    n: int = DEFAULT_N
    min_words: int = DEFAULT_MIN_WORDS
    sets: list[dict] = field(default_factory=list)  # name, files, items, fields, ngrams, whole_items, too_short
    item_set: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, "U1"))
    item_ngrams: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    post_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    post_item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    short_levels: tuple = ()
    bloom_fpr: float | None = None
    blooms: list = field(default_factory=list)
    prefilter: np.ndarray | None = None  # Bloom storage: see :meth:`bloom_candidates`

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, eval_sets: dict[str, pa.Table], *, n: int = DEFAULT_N, min_words: int = DEFAULT_MIN_WORDS,
              columns=None, bloom_fpr: float | None = None, files: dict | None = None) -> "DecontamIndex":
        """Index ``{set name: table}`` (each table with an ``id`` and the text fields)."""
        if n < 1 or not 1 <= min_words <= n:
            raise ConfigError(f"decontamination: need n >= 1 and 1 <= min_words <= n, got n={n}, min_words={min_words}")
        if bloom_fpr is not None and not 0 < bloom_fpr < 1:
            raise ConfigError(f"--bloom: the false-positive rate must be in (0, 1), got {bloom_fpr}")
        if len(eval_sets) > MAX_SETS:
            raise ConfigError(f"decontamination: at most {MAX_SETS} evaluation sets per index, got {len(eval_sets)}")
        cols = tuple(columns) if columns else DEFAULT_COLUMNS
        all_h, all_item, item_set, item_ids, sets, levels = [], [], [], [], [], set()
        base = 0
        for s, (name, table) in enumerate(eval_sets.items()):
            present = [c for c in cols if c in table.column_names]
            if not present:
                where = ", ".join((files or {}).get(name, [])) or name
                raise InputError(f"evaluation set has none of the columns {', '.join(cols)} "
                                 f"(columns: {', '.join(table.column_names)})", where)
            stats = {"name": name, "files": list((files or {}).get(name, [])), "items": table.num_rows,
                     "columns": present, "fields": 0, "whole_items": 0, "too_short": 0}
            set_levels = set()
            for c in present:
                h, item, st = _field_hashes(table.column(c), n, min_words)
                all_h.append(h)
                all_item.append(item + base)
                set_levels.update(st.pop("levels"))
                for k, v in st.items():
                    stats[k] += v
            stats["whole_item_lengths"] = sorted(set_levels)
            levels |= set_levels
            item_set.append(np.full(table.num_rows, s, np.int32))
            item_ids.append(np.asarray(table.column("id").to_pylist(), dtype=str))
            sets.append(stats)
            base += table.num_rows
        h = np.concatenate(all_h) if all_h else np.zeros(0, np.uint64)
        item = np.concatenate(all_item).astype(np.int32) if all_item else np.zeros(0, np.int32)
        # distinct (hash, item) pairs, sorted by hash then item
        order = np.lexsort((item, h))
        h, item = h[order], item[order]
        keep = np.ones(len(h), bool)
        keep[1:] = (h[1:] != h[:-1]) | (item[1:] != item[:-1])
        h, item = h[keep], item[keep]
        item_set_a = np.concatenate(item_set) if item_set else np.zeros(0, np.int32)
        idx = cls(n=n, min_words=min_words, sets=sets, item_set=item_set_a,
                  item_ids=np.concatenate(item_ids) if item_ids else np.zeros(0, "U1"),
                  item_ngrams=np.bincount(item, minlength=base).astype(np.int32), short_levels=tuple(sorted(levels)))
        for st, s in zip(sets, range(len(sets))):
            st["ngrams"] = int(len(np.unique(h[item_set_a[item] == s]))) if len(h) else 0
        if bloom_fpr is None:
            first = np.ones(len(h), bool)
            first[1:] = h[1:] != h[:-1]
            idx.hashes = h[first]
            idx.post_ptr = np.append(np.flatnonzero(first), len(h)).astype(np.int64)
            idx.post_item = item
        else:
            idx.bloom_fpr = float(bloom_fpr)
            idx.prefilter = top_bits_bitmap(np.unique(h), 8)[0]
            for s in range(len(sets)):
                hs = np.unique(h[item_set_a[item] == s])
                b = _make_bloom(len(hs), bloom_fpr)
                b.update(hs.tolist())
                idx.blooms.append(b)
        return idx

    # -- lookup --------------------------------------------------------------------------------
    def lookup(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions found, their entry in ``hashes``) for a uint64 array of queries.

        A bitmap over the top bits of the hashes (about 16 bits per indexed hash, built once and
        cached, never saved) rejects almost every query with one gather; only candidates go to
        ``searchsorted``, which is what makes a lookup cheap next to hashing."""
        H = self.hashes
        if not len(H) or not len(h):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cand = np.flatnonzero(in_bitmap(*self._bitmap(), h))
        pos = np.searchsorted(H, h[cand])
        pos[pos == len(H)] = 0
        hit = H[pos] == h[cand]
        return cand[hit], pos[hit]

    def _bitmap(self):
        if getattr(self, "_bm", None) is None:
            self._bm = top_bits_bitmap(self.hashes, 16)
        return self._bm

    def bloom_candidates(self, h: np.ndarray) -> np.ndarray:
        """Bloom storage: which queries pass the saved prefilter (a one-hash Bloom filter over all
        sets, 8 bits per hash, in numpy: rejects ~88% of non-members before the per-set filters,
        never a member)."""
        if self.prefilter is None or not len(self.prefilter):
            return np.ones(len(h), bool)
        shift = np.uint64(64 - int(np.log2(len(self.prefilter) * 64)))
        return in_bitmap(self.prefilter, shift, h)

    # -- properties ----------------------------------------------------------------------------
    @property
    def set_names(self) -> list[str]:
        return [s["name"] for s in self.sets]

    @property
    def levels(self) -> tuple:
        """Chain lengths looked up in documents: whole-item lengths of short fields, then n."""
        return tuple(sorted(set(self.short_levels) | {self.n}))

    def params(self) -> dict:
        return {"n": self.n, "min_words": self.min_words, "bloom_fpr": self.bloom_fpr, "hash": HASH_VERSION}

    def summary(self) -> dict:
        """What the manifest and release card state: parameters and per-set statistics."""
        return {**self.params(), "sets": [dict(s) for s in self.sets]}

    def fingerprint(self) -> str:
        import hashlib

        hsh = hashlib.sha256(json.dumps(self.summary(), sort_keys=True).encode())
        for a in (self.hashes, self.post_ptr, self.post_item, self.item_set):
            hsh.update(np.ascontiguousarray(a).tobytes())
        for b in self.blooms:
            hsh.update(b.save_bytes())
        return hsh.hexdigest()[:16]

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str) -> str:
        os.makedirs(path, exist_ok=True)
        arrays = {"item_set": self.item_set, "item_ids": self.item_ids, "item_ngrams": self.item_ngrams,
                  "hashes": self.hashes, "post_ptr": self.post_ptr, "post_item": self.post_item}
        if self.prefilter is not None:
            arrays["prefilter"] = self.prefilter
        for s, b in enumerate(self.blooms):
            arrays[f"bloom_{s}"] = np.frombuffer(b.save_bytes(), dtype=np.uint8)
        np.savez(os.path.join(path, INDEX_NPZ), **arrays)
        meta = {"format": FORMAT, **self.params(), "short_levels": list(self.short_levels), "sets": self.sets}
        with open(os.path.join(path, INDEX_JSON), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        return path

    def to_bytes(self) -> bytes:
        """The saved form (``index.json`` + ``index.npz``) in one byte string, to ship to workers."""
        import io
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            self.save(d)
            parts = [open(os.path.join(d, f), "rb").read() for f in (INDEX_JSON, INDEX_NPZ)]
        buf = io.BytesIO()
        np.savez(buf, json=np.frombuffer(parts[0], np.uint8), npz=np.frombuffer(parts[1], np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "DecontamIndex":
        import io
        import tempfile

        z = np.load(io.BytesIO(data), allow_pickle=False)
        with tempfile.TemporaryDirectory() as d:
            for f, k in ((INDEX_JSON, "json"), (INDEX_NPZ, "npz")):
                with open(os.path.join(d, f), "wb") as fh:
                    fh.write(z[k].tobytes())
            return cls.load(d)

    @classmethod
    def load(cls, path: str) -> "DecontamIndex":
        try:
            with open(os.path.join(path, INDEX_JSON)) as f:
                meta = json.load(f)
            z = np.load(os.path.join(path, INDEX_NPZ), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable decontamination index ({exc})", path) from None
        if meta.get("format") != FORMAT or meta.get("hash") != HASH_VERSION:
            raise InputError(f"not a {FORMAT} index with hash {HASH_VERSION}", path)
        idx = cls(n=meta["n"], min_words=meta["min_words"], sets=meta["sets"], item_set=z["item_set"],
                  item_ids=z["item_ids"], item_ngrams=z["item_ngrams"], hashes=z["hashes"], post_ptr=z["post_ptr"],
                  post_item=z["post_item"], short_levels=tuple(meta["short_levels"]), bloom_fpr=meta["bloom_fpr"])
        if idx.bloom_fpr is not None:
            from rbloom import Bloom

            idx.prefilter = z["prefilter"] if "prefilter" in z.files else None
            idx.blooms = [Bloom.load_bytes(z[f"bloom_{s}"].tobytes(), _bloom_hash) for s in range(len(idx.sets))]
        return idx


def top_bits_bitmap(hashes: np.ndarray, bits_per_hash: int) -> tuple[np.ndarray, np.uint64]:
    """(bitmap as uint64 words, shift): bit ``h >> shift`` is set for every hash (sizes a power of
    two near ``bits_per_hash`` per hash, 4 KiB to 128 MiB)."""
    bits = int(min(30, max(12, np.ceil(np.log2(max(1, bits_per_hash * len(hashes)))))))
    shift = np.uint64(64 - bits)
    key = np.unique(hashes >> shift)  # sorted, so words come in runs
    word = key >> np.uint64(6)
    starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]]) if len(key) else np.zeros(0, np.int64)
    bm = np.zeros(1 << (bits - 6), np.uint64)
    if len(key):
        bm[word[starts]] = np.bitwise_or.reduceat(np.uint64(1) << (key & np.uint64(63)), starts)
    return bm, shift


def in_bitmap(bm: np.ndarray, shift: np.uint64, h: np.ndarray) -> np.ndarray:
    key = h >> shift
    return ((bm[key >> np.uint64(6)] >> (key & np.uint64(63))) & np.uint64(1)).astype(bool)


def _field_hashes(col, n: int, min_words: int):
    """(hashes, item row of each, stats) of one text column: n-grams of long fields, whole-field
    hashes of short ones."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    row, toks = tokenize_words(arr)
    wh = word_hashes(toks)
    nw = np.bincount(row, minlength=len(arr)) if len(row) else np.zeros(len(arr), np.int64)
    first = np.searchsorted(row, np.arange(len(arr)))  # first word position of every row
    short = (nw >= min_words) & (nw < n)
    levels = sorted(set(nw[short].tolist()))
    hs, items = [], []
    for k, start, h in chain_levels(row, wh, levels + [n]):
        r = row[start]
        if k == n:
            ok = nw[r] >= n
        else:
            ok = (nw[r] == k) & (start == first[r])
        hs.append(h[ok])
        items.append(r[ok])
    valid = ~pc.is_null(arr).to_numpy(zero_copy_only=False)
    stats = {"fields": int((valid & (nw > 0)).sum()), "whole_items": int(short.sum()),
             "too_short": int((valid & (nw > 0) & (nw < min_words)).sum()), "levels": levels}
    return (np.concatenate(hs) if hs else np.zeros(0, np.uint64),
            np.concatenate(items).astype(np.int64) if items else np.zeros(0, np.int64), stats)


__all__ = ["DEFAULT_COLUMNS", "DEFAULT_MIN_WORDS", "DEFAULT_N", "DecontamIndex"]
