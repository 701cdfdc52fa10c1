"""Window mode (``unit="window"``): cutting, reduction, and what it changes for DSIR and ZIP-FIT.

Golden facts checked here, none produced by the code under test: every byte of every document
lies in some window and each window is the document's bytes at its offsets (slow reference:
Python slicing); the max / mean-of-top-k reduction equals a per-document Python loop; the auto
window is the median target length; a long document holding one near-copy of a target example
beats a short unrelated one in window mode and loses to it in paper mode (DSIR and ZIP-FIT).
"""
import random

import numpy as np
import pyarrow as pa
import pytest

from lmsieve.api import fit_and_score, fit_selector
from lmsieve.features.windows import auto_window, cut_windows, reduce_windows
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector, get_selector_class
from lmsieve.selectors.windows import WindowSelector

WORDS = ("the of and to in that it was his her with had for you not but at on be are this they have which "
         "from by all one there were when an so would their what said been if more she who will no my then "
         "some into them could him out these time only little very upon man any about our like great most").split()
TARGETS = [
    "def add_numbers(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n",
    "def is_palindrome(text):\n    \"\"\"Check whether text reads the same backwards.\"\"\"\n    return text == text[::-1]\n",
    "def count_vowels(s):\n    \"\"\"Count the vowels in s.\"\"\"\n    return sum(1 for c in s if c in 'aeiou')\n",
    "def fizz(n):\n    \"\"\"Return Fizz for multiples of three.\"\"\"\n    return 'Fizz' if n % 3 == 0 else str(n)\n",
]


def prose(rng: random.Random, n_bytes: int) -> str:
    lines, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def test_windows_cover_every_byte_and_match_slices():
    rng = random.Random(3)
    docs = ["", "x", "é" * 700, "a" * 1500, "line\n" * 400, "\n\n\n", "🙂 ünï\ncode\n" * 90]
    docs += [prose(rng, rng.randint(10, 5000)) for _ in range(40)]
    docs += ["".join(rng.choice("ab\né🙂 ") for _ in range(rng.randint(0, 3000))) for _ in range(40)]
    for window, overlap in ((64, 0.5), (100, 0.0), (333, 0.75), (10_000, 0.5)):
        w = cut_windows(docs, window, overlap)
        texts = w.texts.to_pylist()
        assert np.all(np.diff(w.doc) >= 0) and len(w.first) == len(docs)
        for i, d in enumerate(docs):
            b = d.encode()
            mine = np.flatnonzero(w.doc == i)
            assert len(mine) >= 1 and mine[0] == w.first[i]
            covered = np.zeros(len(b), dtype=bool)
            for j in mine:
                s, e = int(w.start[j]), int(w.end[j])
                assert b[s:e].decode() == texts[j]  # whole characters, the document's own bytes
                assert e - s <= 2 * window + 3  # line snapping widens by at most window/2 per side
                covered[s:e] = True
            assert covered.all(), (window, i)
        if window == 64:  # a long document really is cut, about 1/(1-overlap) windows per window length
            long = int(np.flatnonzero([len(d) == 1500 for d in docs])[0])
            assert 1500 / 64 * 2 - 2 <= (w.doc == long).sum() <= 1500 / 64 * 2 + 2


def test_line_aligned_windows_start_at_line_starts():
    text = "".join(f"line number {i:03d} of the file\n" for i in range(100))  # 29-byte lines
    w = cut_windows([text], 200, 0.5)
    b = text.encode()
    for s, e in zip(w.start, w.end):
        assert s == 0 or b[s - 1] == 10
        assert e == len(b) or b[e - 1] == 10


def test_reduce_max_and_mean_topk_equal_a_python_loop():
    rng = np.random.default_rng(0)
    docs = ["a" * int(n) for n in rng.integers(0, 900, 50)]
    w = cut_windows(docs, 50, 0.5)
    s = rng.normal(size=len(w.doc))
    usable = rng.random(len(w.doc)) > 0.3
    for reduce, k in (("max", 1), ("mean_topk", 3), ("mean_topk", 1)):
        got, has = reduce_windows(s, w, reduce, k, usable)
        for i in range(len(docs)):
            mine = np.flatnonzero(w.doc == i)
            use = mine[usable[mine]] if usable[mine].any() else mine
            ref = np.max(s[use]) if reduce == "max" else np.mean(np.sort(s[use])[::-1][:k])
            assert got[i] == pytest.approx(ref, abs=1e-12) and has[i] == usable[mine].any()


def test_auto_window_follows_the_target_length():
    short = [t for t in TARGETS]
    longer = [t * 5 for t in TARGETS]
    assert auto_window(short) == int(np.median([len(t.encode()) for t in short]))
    a = fit_selector("zipfit", pa.table({"id": ["a", "b", "c", "d"], "text": short}), unit="window")
    b = fit_selector("zipfit", pa.table({"id": ["a", "b", "c", "d"], "text": longer}), unit="window")
    assert isinstance(a, WindowSelector) and a.window_ == auto_window(short)
    assert b.window_ == int(np.median([len(t.encode()) for t in longer])) and b.window_ > 4 * a.window_
    assert b.get_params()["window"] == "auto" and b.get_params()["unit"] == "window"


def _pool(rng):
    near = TARGETS[1].replace("text", "word").replace("same", "identical")  # a near-copy of one example
    long_doc = prose(rng, 6000) + near + prose(rng, 6000)
    short_doc = prose(rng, 500)
    others = [prose(rng, rng.randint(300, 4000)) for _ in range(30)]
    texts = [long_doc, short_doc] + others
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


@pytest.mark.parametrize("method,params", [("dsir", {"num_buckets": 4096}), ("dsir", {"num_buckets": 4096, "per_ngram": True}),
                                           ("zipfit", {})])
def test_near_copy_in_a_long_document_wins_only_in_window_mode(method, params):
    pool = _pool(random.Random(7))
    target = pa.table({"id": [f"t{i}" for i in range(len(TARGETS))], "text": TARGETS})
    if not params.get("per_ngram"):  # paper mode (per_ngram is a window-mode option)
        _, s, _ = fit_and_score(method, target, pool, **params)
        assert s[0] < s[1], "paper mode: the short unrelated document ranks above the long one"
    _, s, e = fit_and_score(method, target, pool, unit="window", **params)
    assert e[0] and s[0] > s[1] and s[0] == s.max(), "window mode: the near-copy's window wins"


def periodic(rng, middle: str, stride: int) -> str:
    """Prose + ``middle`` + prose, whole lines, padded to a multiple of ``stride`` bytes."""
    text = prose(rng, 3 * stride) + middle + prose(rng, 2 * stride)
    pad = -len(text.encode()) % stride
    return text[:-1] + " " * pad + "\n"


@pytest.mark.parametrize("method,params", [("dsir", {"num_buckets": 4096}), ("dsir", {"num_buckets": 4096, "per_ngram": True}),
                                           ("zipfit", {})])
def test_window_scores_are_invariant_to_repeating_the_content(method, params):
    """X repeated three times scores exactly as X: with line-aligned cut points every window of X
    is a window of XXX (X holds whole lines and a multiple of the stride), and the windows that
    straddle two copies (prose only) do not beat the one holding the target-like function."""
    rng = random.Random(11)
    target = pa.table({"id": [f"t{i}" for i in range(len(TARGETS))], "text": TARGETS})
    base = [periodic(rng, TARGETS[i % 4].replace("a", "e", 1), 200) for i in range(6)]
    assert all(len(d.encode()) % 200 == 0 for d in base)
    pool = pa.table({"id": [f"p{i}" for i in range(12)], "text": base + [d * 3 for d in base]})
    sel = fit_selector(method, target, pool, unit="window", window=400, window_overlap=0.5, **params)
    s = sel.score(pool)
    assert len(set(s[:6].round(9))) > 1  # the documents do differ
    if method == "dsir" and not params.get("per_ngram"):
        # the unnormalised sum favours the shortest, least negative window: a prose-only window
        # straddling two copies can beat the function's window, so repeating never lowers the score
        assert np.all(s[6:] >= s[:6]) and np.mean(s[6:] == s[:6]) >= 0.5
    else:
        np.testing.assert_array_equal(s[6:], s[:6])
    if method == "dsir" and not params.get("per_ngram"):  # paper mode sums over the document: about x3
        paper = fit_selector(method, target, pool, **params).score(pool)
        np.testing.assert_allclose(paper[6:], 3 * paper[:6], rtol=0.05)


def test_window_mode_routing_params_and_save_load(tmp_path):
    target = pa.table({"id": [f"t{i}" for i in range(len(TARGETS))], "text": TARGETS})
    pool = _pool(random.Random(5))
    cls = get_selector_class("dsir")
    assert type(cls(unit="doc")) is cls and cls(unit="doc").get_params() == cls().get_params()
    with pytest.raises(ConfigError):
        cls(unit="page")
    with pytest.raises(ConfigError):
        cls(unit="window", window=0)
    with pytest.raises(ConfigError):
        cls(unit="window", window_reduce="median")
    sel = fit_selector("dsir", target, pool, unit="window", window=300, window_reduce="mean_topk", window_top_k=2,
                       num_buckets=2048)
    assert sel.get_params()["min_example_length"] == 0  # the window-mode default (module doc)
    d = sel.save(tmp_path / "fit")
    for back in (Selector.load(d), cls.load(d), cls(fitted=str(d)).fit(None)):
        assert isinstance(back, WindowSelector) and back.window_ == 300
        np.testing.assert_array_equal(back.score(pool), sel.score(pool))
    assert not cls(fitted=str(d)).needs_pool_sample


def test_per_ngram_dsir_ranks_top_k_by_default(tmp_path):
    """DSIR's per-n-gram score is a mean log ratio, not a log importance weight: no Gumbel noise by
    default (paper DSIR keeps its importance resampling); the choice survives save/load and the
    API selection with the default ranking is the deterministic top-k."""
    import lmsieve

    cls = get_selector_class("dsir")
    assert cls().default_ranking == "gumbel" and cls(unit="window").default_ranking == "gumbel"
    assert cls(per_ngram=True).default_ranking == "topk" and cls(unit="window", per_ngram=True).default_ranking == "topk"
    target = pa.table({"id": [f"t{i}" for i in range(len(TARGETS))], "text": TARGETS})
    pool = _pool(random.Random(7))
    sel = fit_selector("dsir", target, pool, unit="window", window=300, per_ngram=True, num_buckets=2048)
    assert Selector.load(sel.save(tmp_path / "fit")).default_ranking == "topk"
    picked = lmsieve.select(pool, "dsir", target, keep=5, unit="window", window=300, per_ngram=True,
                            num_buckets=2048).column("id").to_pylist()
    s = sel.score(pool)
    order = np.lexsort((np.arange(len(s)), -s))[:5]
    assert sorted(picked) == sorted(pool.column("id").take(pa.array(order)).to_pylist())
    for seed in (1, 2):  # deterministic: the seed only breaks ties
        assert lmsieve.select(pool, "dsir", target, keep=5, seed=seed, unit="window", window=300, per_ngram=True,
                              num_buckets=2048).column("id").to_pylist() == picked


@pytest.mark.parametrize("method,params", [("dsir", {"num_buckets": 2048, "per_ngram": True}), ("zipfit", {})])
def test_window_mode_api_equals_beam_through_fitted_dir(method, params, tmp_path):
    """Fitted once in-process and saved; the Beam features job scores per unit from ``fitted=DIR``
    (for DSIR the stored-score path, not the n-gram counts path) and selects the API's ids."""
    from _beam_fitted import beam_select_fitted

    from lmsieve.api import run_selection
    from lmsieve.sampling.select import Budget

    rng = random.Random(2)
    texts = [prose(rng, rng.randint(200, 2500)) + (TARGETS[i % 4] if i % 5 == 0 else "") for i in range(40)]
    pool = pa.table({"id": [f"d{i:02d}" for i in range(40)], "text": texts})
    target = pa.table({"id": [f"t{i}" for i in range(len(TARGETS))], "text": TARGETS})
    sel = fit_selector(method, target, pool, unit="window", window=300, **params)
    d = sel.save(tmp_path / "fit")
    ref = run_selection(sel, pool, Budget(k=8), seed=1).selected.column("id").to_pylist()
    ids = beam_select_fitted(tmp_path, method, str(d), pool, target, 25, Budget(k=8), 1)
    assert len(ref) == 8 and ids == ref


def test_select_help_says_which_method_when(capsys):
    from lmsieve.cli.main import main

    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    for needle in ("Which method when", "dsir, zipfit --", "--param unit=window", "classifier --", "knn --",
                   "top-2% precision", "humaneval            classifier"):
        assert needle in out, needle
