"""A slow per-document pure-Python reference of decontamination flags (no hashing at all).

Items and documents are normalised with :func:`words` (NFKC, ``str.lower``, ``[\\p{L}\\p{N}\\p{M}]+``),
n-grams are tuples of word strings held in dicts, and every document is scanned on its own.
"""
from __future__ import annotations

import unicodedata
from collections import defaultdict

import regex

_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+")


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def build(eval_sets: dict, n: int = 13, min_words: int = 8, columns=("text", "prompt", "answer")):
    """(n-gram -> items, whole field -> items, items' n-gram counts, item -> set name)."""
    grams, whole, count, item_set = defaultdict(set), defaultdict(set), defaultdict(set), {}
    for name, table in eval_sets.items():
        cols = [c for c in columns if c in table.column_names]
        for row in table.select(["id"] + cols).to_pylist():
            item = (name, row["id"])
            item_set[item] = name
            for c in cols:
                if row[c] is None:
                    continue
                w = words(row[c])
                if len(w) >= n:
                    for i in range(len(w) - n + 1):
                        g = tuple(w[i:i + n])
                        grams[g].add(item)
                        count[item].add(("g", g))
                elif len(w) >= min_words:
                    whole[tuple(w)].add(item)
                    count[item].add(("w", tuple(w)))
    return grams, whole, {k: len(v) for k, v in count.items()}, item_set


def flag(ref, text: str, n: int = 13, min_overlap: int = 1) -> set:
    """The evaluation set names contaminating one document."""
    grams, whole, count, item_set = ref
    w = words(text)
    matched = defaultdict(set)  # item -> distinct shared n-grams
    for i in range(len(w) - n + 1):
        g = tuple(w[i:i + n])
        for item in grams.get(g, ()):
            matched[item].add(g)
    sets = {item_set[item] for item, gs in matched.items() if len(gs) >= min(min_overlap, count[item])}
    for k in {len(key) for key in whole}:
        for i in range(len(w) - k + 1):
            for item in whole.get(tuple(w[i:i + k]), ()):
                sets.add(item_set[item])
    return sets
