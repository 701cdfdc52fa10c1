"""Text normalisation and word splitting for decontamination (one definition, two implementations).

The rule (docs/decontamination.md), applied to evaluation items and pool documents alike:

1. Unicode NFKC (``unicodedata.normalize``: ligatures, full-width forms, compatibility digits fold);
2. lower case (Python's ``str.lower``, after NFKC);
3. words are maximal runs of letters, digits and combining marks (``[\\p{L}\\p{N}\\p{M}]+``);
   every other character (punctuation, symbols, underscore, whitespace, line breaks) separates
   words, so changed punctuation, spacing and line breaks do not change the word sequence.

Punctuation is a *separator* rather than deleted (GPT-3/NeMo delete it): "x,y" and "x, y" give
the same words either way, and "don't" becomes "don t" in both the item and the document, so
matching is unaffected; deleting would instead make "x,y" one word and "x, y" two.

:func:`normalise_text` / :func:`words` are the pure-Python reference; :func:`tokenize_words`
does a whole Arrow batch at once: pure-ASCII rows (most of a pool) are lowercased by Arrow (NFKC
is the identity on ASCII), the rest by Python's C routines, and words are split in numpy over the
UTF-8 bytes with the byte tokenizer the DSIR featurizer uses (:mod:`lmsieve.features.ngrams`),
given this module's character classes.
"""
from __future__ import annotations

import functools
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

from lmsieve.features.ngrams import _tokenize_native

WORD_RE = regex.compile(r"[\p{L}\p{N}\p{M}]+")
_SEP, _WORD = 0, 1


def normalise_text(text: str) -> str:
    """NFKC, lower case, words joined by one space (the reference normalisation)."""
    return " ".join(words(text))


def words(text: str) -> list[str]:
    """The normalised words of one text (reference implementation)."""
    return WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


@functools.lru_cache(maxsize=1)
def word_class_table() -> np.ndarray:
    """uint8 class of every code point: 1 for word characters (``[\\p{L}\\p{N}\\p{M}]``), else 0."""
    table = np.zeros(0x110000, dtype=np.uint8)
    allchars = "".join(map(chr, range(0xD800))) + "\x00" * 0x800 + "".join(map(chr, range(0xE000, 0x110000)))
    for m in WORD_RE.finditer(allchars):
        table[m.start():m.end()] = _WORD
    table[0xD800:0xE000] = _SEP
    return table


def lower_nfkc(texts: pa.Array) -> pa.Array:
    """NFKC then ``str.lower`` of every row; ASCII rows by Arrow, others by Python (exact)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = texts.cast(pa.string()) if texts.type != pa.string() else texts
    if len(texts) == 0:
        return texts
    ascii_rows = pc.fill_null(pc.string_is_ascii(texts), True).to_numpy(zero_copy_only=False)
    if ascii_rows.all():
        return pc.ascii_lower(texts)
    out = np.empty(len(texts), dtype=object)
    idx = np.flatnonzero(ascii_rows)
    out[idx] = pc.ascii_lower(texts.take(pa.array(idx))).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(~ascii_rows)
    out[other] = [unicodedata.normalize("NFKC", s).lower() for s in texts.take(pa.array(other)).to_pylist()]
    return pa.array(out, type=pa.string())


def tokenize_words(texts: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row of each word, words) of a batch of texts, in row then position order; null rows have
    no words."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    return _tokenize_native(lower_nfkc(texts), word_class_table())


__all__ = ["lower_nfkc", "normalise_text", "tokenize_words", "word_class_table", "words"]
