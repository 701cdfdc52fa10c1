"""Fuzzing the text paths (issue #9): random Unicode with control characters, escaped surrogates,
invalid UTF-8 bytes (replaced, or passed as raw binary) and a few huge documents, through the
n-gram and compression features and the DSIR and ZIP-FIT selectors: no crash, finite scores.

Hypothesis runs derandomized (the same examples every run) with modest example counts.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmsieve
from lmsieve.features.compression import compressed_lengths
from lmsieve.features.ngrams import HashedNgramFeaturizer
from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import Quarantine
from lmsieve.selectors.dsir import DSIR
from lmsieve.selectors.zipfit import ZipFit

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTROL = "".join(map(chr, [*range(0, 32), 127, *range(0x80, 0xA0), 0x200B, 0x200E, 0x2028, 0x2029, 0xFEFF]))
TARGET = ["def f(x):\n    return x + 1\n", "import numpy as np\nprint(np.zeros(3))", "naïve café – 東京 🚀"]

unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)
control_text = st.text(alphabet=st.sampled_from(CONTROL + "ab \t\n"), max_size=200)
replaced_bytes = st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace"))
# invalid bytes -> lone surrogates (surrogateescape) -> escaped so the text is valid UTF-8 again
escaped_surrogates = st.binary(max_size=300).map(
    lambda b: b.decode("utf-8", errors="surrogateescape").encode("utf-8", errors="backslashreplace").decode("utf-8"))
any_text = st.one_of(unicode_text, control_text, replaced_bytes, escaped_surrogates)
batches = st.lists(any_text, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def fitted():
    pool = ["the quick brown fox jumps over the lazy dog " * 20, "lorem ipsum dolor sit amet " * 30, ""] + TARGET
    return HashedNgramFeaturizer(), DSIR().fit(TARGET, pool), ZipFit().fit(TARGET)


def check_all(texts: list[str], fitted) -> None:
    featurizer, dsir, zipfit = fitted
    occ = featurizer.transform(texts)
    per_doc = occ.per_doc()
    assert len(per_doc) == len(texts) and (per_doc >= 0).all()
    lengths = compressed_lengths(texts)
    assert lengths.shape == (len(texts),) and (lengths > 0).all()
    for sel in (dsir, zipfit):
        s, e = sel.score_and_mask(texts)
        assert s.shape == (len(texts),) and e.shape == (len(texts),), sel.name
        assert np.isfinite(s).all(), (sel.name, texts, s)


@FUZZ
@given(batches)
def test_fuzzed_texts_give_finite_scores(fitted, texts):
    check_all(texts, fitted)


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_fuzzed_texts_fit_dsir_and_zipfit(texts):
    """The fuzzed texts as target and pool sample: fitting never crashes (a target without a single
    word is a clear ConfigError), scores stay finite."""
    if HashedNgramFeaturizer().transform(texts).per_doc().sum() == 0:
        with pytest.raises(ConfigError, match="target set has no n-gram features"):
            DSIR().fit(texts, texts + TARGET)
    else:
        s, e = DSIR().fit(texts, texts + TARGET).score_and_mask(texts)
        assert np.isfinite(s).all()
    if any(texts):
        assert np.isfinite(ZipFit().fit(texts).score_and_mask(TARGET)[0]).all()


@FUZZ
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=8))
def test_raw_bytes_as_binary_column(fitted, raw):
    """Arbitrary bytes in a binary ``text`` column: the rows that are not UTF-8 (by Python's strict
    decoder) are exactly the ones quarantined; every other row gets a finite score."""
    def is_utf8(b: bytes) -> bool:
        try:
            b.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    table = pa.table({"id": [f"r{i}" for i in range(len(raw))], "text": pa.array(raw, pa.binary())})
    expected_bad = [i for i, b in enumerate(raw) if not is_utf8(b)]
    if len(expected_bad) == len(raw):
        return  # nothing valid left to score
    q = Quarantine("quarantine")
    s = lmsieve.score(table, "zipfit", TARGET, on_invalid=q)
    assert q.table().column("row").to_pylist() == expected_bad
    assert set(q.counts()) <= {"invalid UTF-8 in text"}
    good = np.setdiff1d(np.arange(len(raw)), expected_bad)
    assert np.isfinite(s[good]).all() and np.isnan(s[expected_bad]).all()
    check_all([raw[i].decode("utf-8") for i in good], fitted)


def test_huge_documents(fitted):
    """Three documents over 1 MB (random code points with controls, one repeated character, a
    replaced random-byte blob) plus an empty one, in one batch."""
    rng = np.random.default_rng(9)
    points = rng.integers(0, 0x3000, size=600_000)
    points = points[(points < 0xD800) | (points > 0xDFFF)]
    random_unicode = "".join(map(chr, points.tolist()))  # ~1.2 MB in UTF-8
    blob = rng.integers(0, 256, size=1_200_000, dtype=np.uint8).tobytes().decode("utf-8", errors="replace")
    texts = [random_unicode, "a" * 1_500_000, blob, ""]
    assert all(len(t.encode()) > 1_000_000 for t in texts[:3])
    check_all(texts, fitted)
