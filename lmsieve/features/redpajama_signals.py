"""The 11 RedPajama-V2 quality signals that Meta-rater rates with (Zhuang et al., arXiv 2504.14194).

Definitions follow RedPajama-Data v2 (togethercomputer/RedPajama-Data, ``app/src/core``:
``document.py``, ``quality_signals/{natural_language,lines,repetitions}.py``,
``utilities/text/normalization.py``), re-implemented here:

* *raw words*: NLTK ``WordPunctTokenizer`` tokens, i.e. the regex ``\\w+|[^\\w\\s]+``;
* *normalized text*: ``string.punctuation`` removed, lower-cased, stripped, whitespace runs -> one
  space, then Unicode NFD; *normalized words* = its whitespace split;
* *lines*: the regex ``[^\\n]*\\n|[^\\n]+$`` (a line keeps its newline; no trailing empty line);
  *normalized lines* = each raw line normalized.

Signals (document-level unless ``lines_``; line-level ones are a list per document in RedPajama
and are averaged over the lines here, as Meta-rater does with list-valued signals):

``doc_unigram_entropy`` (natural log, over normalized-word counts), ``doc_frac_no_alph_words``
(raw words without an ASCII letter), ``lines_uppercase_letter_fraction`` (``str.isupper`` chars /
line length, raw lines), ``doc_mean_word_length`` (normalized words), ``doc_frac_chars_top_2gram``
and ``_3gram`` (characters of the most common normalized word n-gram × its count / all word
characters; 0 when no n-gram repeats; ties go to the first-seen n-gram, as ``Counter.most_common``),
``doc_word_count`` (normalized words), ``doc_num_sentences`` (matches of ``\\b[^.!?]+[.!?]*``),
``lines_numerical_chars_fraction`` (``str.isnumeric`` chars / length, normalized lines; an empty
line counts 0), ``doc_frac_unique_words`` (normalized words), ``lines_ending_with_terminal_punctuation_mark``
(raw line, right-stripped, ends with ``. ! ? ”``).

Undefined values (RedPajama's ``None``: no words, no lines) are NaN; Meta-rater's scaling maps them
to 0. RedPajama rounds to 8 decimals; we do not. Character classes use per-codepoint lookup tables
over a document's UTF-32 code points (numpy), so a document costs a few numpy passes plus its word
split; per-line sums are ``np.add.reduceat`` over line starts.
"""
from __future__ import annotations

import functools
import math
import re
import string
import sys
import unicodedata
from collections import Counter

import numpy as np

from lmsieve.schemas.document import text_array

SIGNALS = (
    "doc_unigram_entropy", "doc_frac_no_alph_words", "lines_uppercase_letter_fraction", "doc_mean_word_length",
    "doc_frac_chars_top_2gram", "doc_word_count", "doc_frac_chars_top_3gram", "doc_num_sentences",
    "lines_numerical_chars_fraction", "doc_frac_unique_words", "lines_ending_with_terminal_punctuation_mark",
)  # the order of Meta-rater's pipeline/feature_order.json

_PUNCT = str.maketrans("", "", string.punctuation)
_WS = re.compile(r"\s+")
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")
# a maximal \w run holding an ASCII letter = a WordPunct token with one (punctuation tokens have none)
_ALPHA_WORD = re.compile(r"\w*[a-zA-Z]\w*")
_SENT = re.compile(r"\b[^.!?]+[.!?]*", flags=re.UNICODE)
_TERMINAL = (".", "!", "?", "\u201d")


def normalize(text: str) -> str:
    """RedPajama's ``normalize``: drop ASCII punctuation, lower-case, collapse whitespace, NFD."""
    text = _WS.sub(" ", text.translate(_PUNCT).lower().strip())
    return unicodedata.normalize("NFD", text)


@functools.lru_cache(maxsize=1)
def _luts() -> tuple[np.ndarray, np.ndarray]:
    """(isupper, isnumeric) per code point, as bool arrays indexed by code point."""
    cps = np.arange(sys.maxunicode + 1)
    chars = [chr(c) for c in cps]
    return (np.fromiter(map(str.isupper, chars), bool, len(chars)),
            np.fromiter(map(str.isnumeric, chars), bool, len(chars)))


def _codepoints(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _line_bounds(cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the raw lines: a line ends after its newline; no empty tail line."""
    ends = np.flatnonzero(cp == 10) + 1
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([ends, [len(cp)]])
    keep = stops > starts
    return starts[keep], stops[keep]


def _per_line(cp: np.ndarray, lut: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(lut[cp].astype(np.int64), starts)


def _top_ngram_frac(words: list, n: int, total_chars: int) -> float:
    if len(words) < n:
        return 0.0
    grams = Counter(zip(*(words[i:] for i in range(n))))
    gram, count = grams.most_common(1)[0]
    if count <= 1 or total_chars == 0:
        return 0.0
    return sum(map(len, gram)) * count / total_chars


def _normalized_line_lengths(text: str, n_lines: int) -> np.ndarray:
    """Length of each normalized raw line. Punctuation removal and lower-casing never touch a
    newline, so the i-th newline-split piece of the whole translated text is line i's."""
    pieces = text.translate(_PUNCT).lower().split("\n")[:n_lines]
    out = np.empty(n_lines, dtype=np.float64)
    for i, piece in enumerate(pieces):
        s = " ".join(piece.split())  # = strip + collapse \s+ (both use str.isspace)
        out[i] = len(s) if s.isascii() else len(unicodedata.normalize("NFD", s))
    return out


def document_signals(text: str) -> tuple:
    """The 11 signals of one document, in :data:`SIGNALS` order."""
    isupper, isnum = _luts()
    text = text or ""
    words = normalize(text).split()
    raw_words = _WORDPUNCT.findall(text)
    cp = _codepoints(text)
    starts, stops = _line_bounds(cp)
    nw, nraw = len(words), len(raw_words)
    total_chars = sum(map(len, words))
    if nw:
        counts = np.fromiter(Counter(words).values(), np.float64)
        p = counts / nw
        entropy = float(-(p * np.log(p)).sum())
        mean_len, uniq = total_chars / nw, len(counts) / nw
    else:
        entropy = mean_len = uniq = math.nan
    no_alph = 1.0 - len(_ALPHA_WORD.findall(text)) / nraw if nraw else math.nan
    term = (float(np.mean([text[a:b].rstrip().endswith(_TERMINAL) for a, b in zip(starts.tolist(), stops.tolist())]))
            if len(starts) else math.nan)
    if len(starts):
        upper = float(np.mean(_per_line(cp, isupper, starts) / (stops - starts)))
        # numeric counts survive normalization (checked over all code points: punctuation removal,
        # lower() and NFD neither add nor drop a str.isnumeric character); lengths do not
        nlen = _normalized_line_lengths(text, len(starts))
        num = _per_line(cp, isnum, starts)
        numeric = float(np.mean(np.where(nlen > 0, num / np.maximum(nlen, 1), 0.0)))
    else:
        upper = numeric = math.nan
    return (entropy, no_alph, upper, mean_len, _top_ngram_frac(words, 2, total_chars), float(nw),
            _top_ngram_frac(words, 3, total_chars), float(len(_SENT.findall(text))), numeric, uniq, term)


def redpajama_signals(batch) -> dict[str, np.ndarray]:
    """Signal name -> float64 array aligned with the batch (a table with ``text`` or a list of str)."""
    texts = text_array(batch).to_pylist()
    rows = np.array([document_signals(t) for t in texts], dtype=np.float64).reshape(len(texts), len(SIGNALS))
    return {name: rows[:, j] for j, name in enumerate(SIGNALS)}


__all__ = ["SIGNALS", "document_signals", "normalize", "redpajama_signals"]
