"""Hashed n-gram features: golden values, exact agreement with NLTK/the reference featurizer."""
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import pool_slice

from lmsieve.features.ngrams import (
    LOWER_MISMATCH,
    HashedNgramFeaturizer,
    hash_bucket,
    tokenize_batch,
)

TRICKY = [
    "",
    "   \n\t ",
    "Alice went to the store",
    "Hello, World!! foo.bar(baz) -> x_1 == 3.14; ¿qué? «citation» — dash",
    "İstanbul ΣΟΦΟΣ σοφός ΟΔΟΣ",  # capital dotted I and final sigma: Python's lower is special
    "i̇ combining: e\u0301te naïve cafe\u0301",  # combining marks are \w in the `regex` engine
    "emoji 🙂🙂 ok 👍🏽 astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐵐",
    "CJK 漢字かなカナ한국어 mixed123abc",
    "ctl\x1c\x1d\x1e\x1fsep\x85nel\u2028ls\u00a0nbsp\u200bzwsp\x0bvt",
    "tabs\tand\r\nnewlines\n\n",
    "ǅungla ﬁ ﬂ ẞ straße",
]


def nltk_tokens(text):
    from nltk.tokenize import WordPunctTokenizer

    return WordPunctTokenizer().tokenize(text.lower())


def reference_counts(text, n=2, num_buckets=10000):
    """The data-selection package's own featurizer (sha256 per occurrence)."""
    from data_selection.hashed_ngram_dsir import get_ngram_counts

    return get_ngram_counts(text, n=n, num_buckets=num_buckets)


def test_golden_buckets():
    assert hash_bucket("alice") == 6720
    assert hash_bucket("alice went") == 114
    # independent of our helper: the spec's definition
    assert int(hashlib.sha256(b"alice").hexdigest(), 16) % 10000 == 6720


def test_golden_feature_count():
    occ = HashedNgramFeaturizer().transform(["Alice went to the store"])
    assert occ.counts.sum() == 9  # 5 unigrams + 4 bigrams
    c = occ.to_scipy().toarray()[0]
    assert c[6720] >= 1 and c[114] >= 1
    assert c.sum() == 9


@pytest.mark.parametrize("text", TRICKY)
def test_tokenizer_matches_nltk_on_tricky_text(text):
    doc, toks = tokenize_batch(pa.array([text]))
    assert toks.to_pylist() == nltk_tokens(text)


def test_tokenizer_matches_nltk_on_real_documents():
    texts = pool_slice(600, ("text",)).column("text")
    doc, toks = tokenize_batch(texts.combine_chunks())
    toks = toks.to_pylist()
    got = [[] for _ in range(len(texts))]
    for d, t in zip(doc.tolist(), toks):
        got[d].append(t)
    for i, t in enumerate(texts.to_pylist()):
        assert got[i] == nltk_tokens(t), f"row {i}"


def test_counts_equal_reference_featurizer():
    texts = pool_slice(250, ("text",)).column("text").to_pylist() + TRICKY
    occ = HashedNgramFeaturizer().transform(texts)
    ours = occ.to_scipy().toarray()
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(ours[i], reference_counts(t), err_msg=f"doc {i}")


def test_trigrams_and_bucket_count_equal_reference():
    texts = pool_slice(40, ("text",)).column("text").to_pylist() + TRICKY
    occ = HashedNgramFeaturizer(num_buckets=4096, ngrams=3).transform(texts)
    ours = occ.to_scipy().toarray()
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(ours[i], reference_counts(t, n=3, num_buckets=4096))


def test_sub_batching_does_not_change_features():
    texts = pool_slice(120, ("text",)).column("text")
    whole = HashedNgramFeaturizer().transform(texts).to_scipy().toarray()
    small = HashedNgramFeaturizer()
    small.chunk_bytes = 5000  # forces many internal sub-batches, some of one document
    np.testing.assert_array_equal(small.transform(texts).to_scipy().toarray(), whole)


def test_arrow_round_trip_and_sorted_rows():
    from lmsieve.features.ngrams import NgramCounts

    texts = pool_slice(50, ("text",)).column("text").to_pylist() + ["", "x"]
    c = HashedNgramFeaturizer().transform(texts)
    for i in range(c.n_docs):
        row = c.indices[c.indptr[i]:c.indptr[i + 1]]
        assert np.all(np.diff(row) > 0)
    b, n = c.to_arrow()
    back = NgramCounts.from_arrow(b, n, 10000)
    np.testing.assert_array_equal(back.to_scipy().toarray(), c.to_scipy().toarray())
    w = np.random.default_rng(0).normal(size=10000)
    assert np.array_equal(back.dot(w), c.dot(w))  # bit-identical


def test_word_count_round_trip():
    texts = pool_slice(200, ("text",)).column("text").to_pylist() + [t for t in TRICKY if t.strip()]
    f = HashedNgramFeaturizer()
    words = f.word_counts(f.transform(texts))
    expected = [len(nltk_tokens(t)) for t in texts]
    np.testing.assert_array_equal(words, expected)
    assert f.word_counts(f.transform([""]))[0] == 0


def test_lower_mismatch_list_is_complete():
    """Every code point whose Arrow lowercase differs from str.lower is routed to Python."""
    import regex

    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    chars = [chr(c) for c in cps]
    arrow_lower = pc.utf8_lower(pa.array(chars)).to_pylist()
    mismatch = regex.compile("[" + LOWER_MISMATCH + "]")
    missed = [hex(cps[i]) for i in range(len(cps)) if arrow_lower[i] != chars[i].lower() and not mismatch.match(chars[i])]
    assert missed == []


_ALPHABET = "aZ9_ .,;!?-\t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u2028\u3000İΣσςßǅé\u0301\u0307ı漢🙂𝔘𐵐\ua7cb\u200b"


def test_fuzz_tokenizer_and_counts_match_reference():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    texts = st.text(alphabet=st.one_of(st.sampled_from(_ALPHABET), st.characters(codec="utf-8")), max_size=60)

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.lists(texts, min_size=1, max_size=6))
    def check(batch):
        doc, toks = tokenize_batch(pa.array(batch, pa.string()))
        got = [[] for _ in batch]
        for d, t in zip(doc.tolist(), toks.to_pylist()):
            got[d].append(t)
        assert got == [nltk_tokens(t) for t in batch]
        counts = HashedNgramFeaturizer(num_buckets=997).transform(batch).to_scipy().toarray()
        for i, t in enumerate(batch):
            np.testing.assert_array_equal(counts[i], reference_counts(t, num_buckets=997))

    check()
