"""The 11 RedPajama-V2 signals against a slow, literal re-reading of RedPajama-Data v2's definitions
(NLTK's WordPunctTokenizer, per-character loops, ``Counter.most_common``) on 50 documents."""
import math
import re
import string
import unicodedata
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from lmsieve.data import sample_path
from lmsieve.features.redpajama_signals import SIGNALS, redpajama_signals


def _norm(text):
    text = text.translate(str.maketrans("", "", string.punctuation)).lower().strip()
    text = re.sub(r"\s+", " ", text)
    return unicodedata.normalize("NFD", text)


def slow_signals(text):
    from nltk.tokenize import WordPunctTokenizer

    raw_words = WordPunctTokenizer().tokenize(text)
    words = _norm(text).split()
    lines = [m.group(0) for m in re.finditer(r"([^\n]*\n|[^\n]+$)", text)]
    out = {}
    if words:
        c = Counter(words)
        out["doc_unigram_entropy"] = sum(-x / len(words) * math.log(x / len(words)) for x in c.values())
        out["doc_mean_word_length"] = sum(len(w) for w in words) / len(words)
        out["doc_frac_unique_words"] = len(set(words)) / len(words)
    else:
        out["doc_unigram_entropy"] = out["doc_mean_word_length"] = out["doc_frac_unique_words"] = None
    out["doc_word_count"] = len(words)
    out["doc_frac_no_alph_words"] = (1 - sum(re.search("[a-zA-Z]", w) is not None for w in raw_words) / len(raw_words)
                                     if raw_words else None)
    out["doc_num_sentences"] = len(re.findall(r"\b[^.!?]+[.!?]*", text))
    for n in (2, 3):
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        top = Counter(grams).most_common(1)
        if not top or top[0][1] <= 1:
            out[f"doc_frac_chars_top_{n}gram"] = 0.0
        else:
            out[f"doc_frac_chars_top_{n}gram"] = sum(len(w) for w in top[0][0]) * top[0][1] / sum(len(w) for w in words)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    out["lines_uppercase_letter_fraction"] = mean([sum(ch.isupper() for ch in ln) / len(ln) for ln in lines])
    out["lines_numerical_chars_fraction"] = mean(
        [sum(ch.isnumeric() for ch in _norm(ln)) / len(_norm(ln)) if _norm(ln) else 0.0 for ln in lines])
    out["lines_ending_with_terminal_punctuation_mark"] = mean(
        [float(ln.rstrip().endswith((".", "!", "?", "\u201d"))) for ln in lines])
    return out


EDGE = [
    "",  # empty
    "One line without a newline, but with an Uppercase Word and 42 digits",
    "Привет, мир! Это тест.\nΚαλημέρα κόσμε; ٣٤٥ and ½ are numerals.\n\n日本語の文章です。 東京 東京 東京 東京\n",
    "the the the the cat sat sat on the the mat mat.\n  \n\u201cQuoted.\u201d\n...\n!!!",
]


def test_signals_match_the_slow_reference_on_50_documents():
    pool = pq.read_table(sample_path("pool.parquet"))
    # a spread of real documents: every 26th row, so all domains (code, math, legal, literature...) appear
    texts = EDGE + pool.column("text").to_pylist()[::26][:46]
    assert len(texts) == 50
    got = redpajama_signals(texts)
    assert list(got) == list(SIGNALS)
    for i, t in enumerate(texts):
        ref = slow_signals(t)
        for name in SIGNALS:
            want = ref[name]
            if want is None:
                assert math.isnan(got[name][i]), (i, name)
            else:
                assert got[name][i] == pytest.approx(want, rel=1e-12, abs=1e-12), (i, name, got[name][i], want)


def test_signals_on_hand_checked_documents():
    s = redpajama_signals(["Hello World.\nfoo bar foo bar", "", "12 ab"])
    assert s["doc_word_count"].tolist() == [6.0, 0.0, 2.0]
    assert s["doc_num_sentences"][0] == 2.0
    # lines "Hello World.\n" (2 upper of 13 chars) and "foo bar foo bar" (0 of 15)
    assert s["lines_uppercase_letter_fraction"][0] == pytest.approx((2 / 13 + 0) / 2)
    assert s["lines_ending_with_terminal_punctuation_mark"][0] == 0.5
    # top 2-gram "foo bar" twice: 6 chars x 2 / (5+5+3+3+3+3) word chars
    assert s["doc_frac_chars_top_2gram"][0] == pytest.approx(12 / 22)
    assert s["doc_frac_no_alph_words"][2] == 0.5
    assert np.isnan(s["doc_unigram_entropy"][1]) and np.isnan(s["lines_uppercase_letter_fraction"][1])
