"""ZIP-FIT: the spec's worked example, exactness of the fast scorer against the naive formula,
mean (not max), agreement with the zip-fit package, targeted selection on real data, save/load."""
import gzip
import json
import zlib

import numpy as np
import pyarrow as pa
import pytest
from conftest import pool_slice, target_set
from hypothesis import given, settings
from hypothesis import strategies as st

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector, get_selector_class
import lmsieve.selectors.zipfit as zipfit_module
from lmsieve.selectors.zipfit import ZipFit

LEAN_T = "theorem add_comm (a b : nat) : a + b = b + a := by simp"
LEAN_X1 = "theorem add_zero (a : Nat) : a + 0 = a := by simp"
WEATHER_X2 = "The weather is warm and sunny with a high of 25 degrees."


def gz(s: str, level: int = 1) -> int:
    return len(gzip.compress(s.encode("utf-8"), compresslevel=level))


def naive_scores(xs, ts, level=1):
    """The formula as written, one gzip.compress per pair; similarities averaged like the reference."""
    out = []
    for x in xs:
        cx = gz(x, level)
        sims = []
        for t in ts:
            ct = gz(t, level)
            sims.append(1 - (gz(x + t, level) - min(cx, ct)) / max(cx, ct))
        out.append(np.mean(sims))
    return np.array(out)


def test_spec_worked_example():
    z = ZipFit().fit([LEAN_T])
    cx, cxt = z.pair_lengths([LEAN_X1, WEATHER_X2])
    # C(x), C(t), C(x+t) from the spec: 66/68/89 and 75/68/114.
    assert z.target_lengths_.tolist() == [68]
    assert cx.tolist() == [66, 75]
    assert cxt[:, 0].tolist() == [89, 114]
    s = z.score([LEAN_X1, WEATHER_X2])
    assert round(s[0], 3) == 0.662 and round(s[1], 3) == 0.387
    assert s[0] == 1 - (89 - 66) / 68 and s[1] == 1 - (114 - 68) / 75
    assert s[0] > s[1]


def _exactness_inputs():
    pool = pool_slice(3000)
    h = stable_hash64(11, pool.column("id"))
    picked = pool.take(np.argsort(h)[:40]).column("text").to_pylist()
    noise = stable_hash64(3, [str(i) for i in range(3000)]).tobytes().decode("latin-1")  # high entropy
    long_src = "\n".join(picked)  # real text well past 64 KB
    xs = picked + [
        "",
        "ℕ → ℕ 数学の定理 🙂 Übung " * 30,
        long_src[:33_000],  # past deflate's 32 KB window
        long_src[:65_400],  # about 64 KB: where the sliding window first moves
        long_src[:100_000],
        noise,  # stored (incompressible) blocks
        long_src[:30_000] + noise,
    ]
    code = target_set("heldout_code_python").column("text").to_pylist()
    ts = code[:4] + target_set("humaneval").column("text").to_pylist()[:3] + ["", "λ x, x ∘ y ≠ z", noise[:500]]
    return xs, ts


@pytest.mark.parametrize("kernel", ["auto", "zlib"])
def test_fast_scorer_equals_naive_formula_exactly(monkeypatch, kernel):
    """Both fast paths (the compiled kernel, zlib's copied state) equal the naive formula."""
    monkeypatch.setattr(zipfit_module, "BLOCK_ROWS", 8)  # several blocks, so n_jobs=2 really threads
    xs, ts = _exactness_inputs()
    assert any(len(x.encode()) > 65_536 for x in xs) and "" in xs and "" in ts
    assert zipfit_module.streaming_is_exact()  # the fast path is the one under test here
    assert zipfit_module.deflate_kernel() is not None  # the kernel is built and trusted here
    calls = []
    monkeypatch.setattr(zipfit_module, "_kernel_block", lambda *a, f=zipfit_module._kernel_block: calls.append(1) or f(*a))
    z = ZipFit(kernel=kernel).fit(ts)
    cx, cxt = z.pair_lengths(xs)
    assert cx.tolist() == [gz(x) for x in xs]
    assert z.target_lengths_.tolist() == [gz(t) for t in ts]
    assert cxt.tolist() == [[gz(x + t) for t in ts] for x in xs]  # 470 pairs, integer-exact
    scores, eligible = z.score_and_mask(xs)
    assert eligible.all() and np.isfinite(scores).all()
    assert np.array_equal(scores, naive_scores(xs, ts))  # bit-identical floats
    assert np.array_equal(ZipFit(n_jobs=2, kernel=kernel).fit(ts).score(xs), scores)
    assert bool(calls) == (kernel == "auto")


def test_fallback_path_gives_the_same_scores(monkeypatch):
    xs, ts = _exactness_inputs()
    xs, ts = xs[:10] + xs[-4:], ts[:3] + ts[-3:]
    fast = ZipFit().fit(ts).score(xs)
    monkeypatch.setattr(zipfit_module, "streaming_is_exact", lambda: False)
    assert np.array_equal(ZipFit(kernel="zlib").fit(ts).score(xs), fast)  # one compression per pair


@pytest.mark.parametrize("codec,level", [("gzip", 6), ("gzip", 9), ("zlib", 1), ("lz4", 0), ("zstd", 3)])
def test_other_codecs_equal_their_naive_lengths(codec, level):
    import lz4.frame
    import zstandard

    one_shot = {
        "gzip": lambda b: len(gzip.compress(b, compresslevel=level)),
        "zlib": lambda b: len(zlib.compress(b, level)),
        "lz4": lambda b: len(lz4.frame.compress(b, compression_level=level)),
        "zstd": lambda b: len(zstandard.ZstdCompressor(level=level).compress(b)),
    }[codec]
    xs, ts = _exactness_inputs()
    xs, ts = xs[:8] + xs[-5:], ts[:2] + ts[-3:]
    cx, cxt = ZipFit(codec=codec, level=level).fit(ts).pair_lengths(xs)
    assert cx.tolist() == [one_shot(x.encode()) for x in xs]
    assert cxt.tolist() == [[one_shot((x + t).encode()) for t in ts] for x in xs]


@settings(max_examples=150, deadline=None)
@given(x=st.text(max_size=600), t=st.text(max_size=600), rep=st.integers(1, 60))
def test_streamed_pair_length_property(x, t, rep):
    x = x * rep  # long, repetitive sources exercise long matches across the x|t boundary
    cx, cxt = ZipFit().fit([t]).pair_lengths([x])
    assert (cx[0], cxt[0, 0]) == (gz(x), gz(x + t))


def test_aggregation_is_mean_not_max():
    ts = [
        LEAN_T,
        "The weather is warm and sunny with a light breeze from the west and clear skies.",
        "Tomorrow the weather will be cloudy and mild, with light rain in the evening.",
        "The weather this weekend will be sunny and warm, with a breeze in the afternoon.",
    ]
    xa = LEAN_T  # a copy of one target: best single match, poor with the rest
    xb = "The weather this week is sunny and mild, with light winds and a breeze in the evening."
    z = ZipFit().fit(ts)
    cx, cxt = z.pair_lengths([xa, xb])
    ct = z.target_lengths_
    sims = 1 - (cxt - np.minimum(cx[:, None], ct)) / np.maximum(cx[:, None], ct)
    by_mean, by_max = sims.mean(axis=1), sims.max(axis=1)
    assert by_max[0] > by_max[1] and by_mean[0] < by_mean[1]  # the case discriminates
    s = z.score([xa, xb])
    assert s[0] < s[1]
    np.testing.assert_allclose(s, naive_scores([xa, xb], ts), rtol=0, atol=0)


def test_degenerate_settings_refused():
    with pytest.raises(ConfigError, match="level 0 is stored mode"):
        ZipFit(level=0)
    with pytest.raises(ConfigError, match="level 0 is stored mode"):
        ZipFit(codec="zlib", level=0)
    ZipFit(codec="lz4", level=0)  # lz4's level 0 is its default fast mode
    with pytest.raises(ConfigError):
        ZipFit(codec="lzma")
    with pytest.raises(ConfigError):
        ZipFit(n_jobs=0)
    assert gz("a" * 1000) < 50  # the default compressor really compresses


def test_fit_inputs_and_edge_cases():
    with pytest.raises(InputError, match="at least one target"):
        ZipFit().fit([])
    table = pa.table({"id": ["a", "b"], "text": [LEAN_T, ""]})
    pooled = ZipFit().fit([table, pa.table({"id": ["c"], "text": [WEATHER_X2]})])
    assert pooled.targets_ == [LEAN_T, "", WEATHER_X2]
    assert pooled.get_params() == {"codec": "gzip", "level": 1, "n_jobs": 1, "mode": "exact", "kernel": "auto"}
    assert pooled.fingerprint_params() == {"codec": "gzip", "level": 1, "mode": "exact"}
    s, e = pooled.score_and_mask(["", LEAN_X1])
    assert e.tolist() == [True, True] and np.isfinite(s).all()
    assert pooled.score([]).shape == (0,)
    assert get_selector_class("zipfit") is ZipFit


@pytest.mark.parametrize("target,domain", [("heldout_code_python", "code_python"), ("heldout_legal", "legal")])
def test_against_reference_package_and_real_targets(target, domain):
    """Scores and top 5% equal the zip-fit package's (gzip level 1) on a 600-document subset; on
    6,000 documents our top 5% is >= 3x the domain's base rate."""
    zipfit_pkg = pytest.importorskip("zip_fit.zipfit")
    pool = pool_slice(6000)
    ts = target_set(target).column("text").to_pylist()[:60]
    ours = ZipFit(n_jobs=2).fit(ts)

    sub = pool.column("text").to_pylist()[:600]
    ref = zipfit_pkg.ZIPFIT("unused", "unused", k=len(sub), compression_algorithm="gzip", compress_level=1)
    ref_score = dict(ref.rank_sequences_by_alignment(sub, ts))
    ref_s = np.array([ref_score[x] for x in sub])
    our_s = ours.score(sub)
    np.testing.assert_allclose(our_s, ref_s, rtol=0, atol=1e-12)  # only summation order may differ
    k = len(sub) // 20
    cut = np.sort(ref_s)[::-1][k - 1]
    clear = np.abs(ref_s - cut) > 1e-9  # ties at the cut aside
    top_ref = set(np.flatnonzero((ref_s >= cut) & clear))
    top_ours = set(np.argsort(-our_s, kind="stable")[:k]) & set(np.flatnonzero(clear))
    assert top_ours == top_ref and len(top_ref) >= k - 2

    scores = ours.score(pool)
    domains = np.array(pool.column("domain").to_pylist())
    k = len(pool) // 20
    precision = np.mean(domains[np.argsort(-scores, kind="stable")[:k]] == domain)
    base = np.mean(domains == domain)
    assert precision >= 3 * base, (precision, base)


def test_save_load_round_trip(tmp_path):
    ts = target_set("humaneval").column("text").to_pylist()[:10] + ["", "ℕ 🙂"]
    docs = pool_slice(200)
    z = ZipFit(level=6).fit(ts)
    z.save(tmp_path / "zf")
    for loaded in (ZipFit.load(tmp_path / "zf"), Selector.load(tmp_path / "zf")):
        assert isinstance(loaded, ZipFit) and loaded.get_params() == z.get_params()
        assert loaded.targets_ == ts
        assert np.array_equal(loaded.score(docs), z.score(docs))
    with np.load(tmp_path / "zf" / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["target_lengths_"].tolist() == [gz(t, 6) for t in ts]
    doc = json.loads((tmp_path / "zf" / "selector.json").read_text())
    assert doc["method"] == "zipfit" and doc["state"]["targets_"] == ts


def test_load_warns_when_compressor_lengths_differ(tmp_path):
    z = ZipFit().fit([LEAN_T, WEATHER_X2])
    z.save(tmp_path / "zf")
    np.savez(tmp_path / "zf" / "arrays.npz", target_lengths_=np.array([1, 2], dtype=np.int64))
    with pytest.warns(UserWarning, match="other C\\(t\\)"):
        loaded = ZipFit.load(tmp_path / "zf")
    assert loaded.target_lengths_.tolist() == [68, 75]


@pytest.mark.slow
def test_kernel_scores_bit_identical_on_shared_pool():
    """The compiled kernel's scores equal the zlib path's bit for bit on real pool documents, for
    three target sets (short code, long code, legal prose)."""
    docs = pool_slice(1200)
    for name, n in (("humaneval", 20), ("heldout_code_python", 8), ("heldout_legal", 8)):
        ts = target_set(name).column("text").to_pylist()[:n]
        fast = ZipFit(n_jobs=2).fit(ts).score(docs)
        slow = ZipFit(kernel="zlib", n_jobs=2).fit(ts).score(docs)
        assert np.array_equal(fast, slow), name


def test_dictionary_mode_settings_and_packing():
    from lmsieve.features.compression import DICTIONARY_BYTES, pack_dictionaries

    with pytest.raises(ConfigError, match="deflate codec"):
        ZipFit(codec="lz4", level=0, mode="dictionary")
    with pytest.raises(ConfigError, match="mode must be"):
        ZipFit(mode="window-ish")
    with pytest.raises(ConfigError, match="kernel must be"):
        ZipFit(kernel="gpu")
    ts = [b"a" * 20_000, b"b" * 15_000, b"c" * 100, b"d" * 40_000, b""]
    dicts, counts = pack_dictionaries(ts)
    # in order; a target that does not fit starts the next dictionary; a long one keeps its head
    assert counts == [1, 2, 2] and dicts[0] == ts[0] and dicts[1] == ts[1] + ts[2]
    assert dicts[2] == ts[3][:DICTIONARY_BYTES] and all(len(d) <= DICTIONARY_BYTES for d in dicts)


def test_dictionary_mode_scores_formula():
    """Score = target-weighted mean over dictionaries of 1 - C_D(x)/C(x), C_D with zlib's zdict
    (checked with fresh compressors, one per pair)."""
    code = target_set("humaneval").column("text").to_pylist()
    ts = code[:70] + ["", "λ x, x"]
    xs = code[70:76] + [LEAN_T, WEATHER_X2, "", "def f(x):\n    return x\n" * 200, code[3]]
    z = ZipFit(mode="dictionary").fit(ts)
    assert len(z._dictionaries) >= 2  # the targets need more than one 32 KB window
    s = z.score(xs)
    w = np.array([c / len(ts) for c in
                  __import__("lmsieve.features.compression", fromlist=["x"]).pack_dictionaries(
                      [t.encode() for t in ts])[1]])

    def naive(x: bytes) -> float:
        cx = len(zlib.compress(x, 1, -15)) + 18
        sims = []
        for d in z._dictionaries:
            c = zlib.compressobj(1, zlib.DEFLATED, -15, zdict=d)
            sims.append(1 - (len(c.compress(x)) + len(c.flush()) + 18) / cx)
        return float(np.dot(sims, w))

    assert np.allclose(s, [naive(x.encode()) for x in xs], rtol=0, atol=1e-15)
    assert s[10] > 0.5 and s[10] > 2 * s[:10].max()  # a copy of a target is almost free to compress
    assert s[8] == 0.0  # the empty document gains nothing
    assert np.array_equal(ZipFit(mode="dictionary", n_jobs=2).fit(ts).score(xs), s)


def test_dictionary_mode_selects_target_domain_and_round_trips(tmp_path):
    pool = pool_slice(4000)
    ts = target_set("heldout_code_python").column("text").to_pylist()[:30]
    z = ZipFit(mode="dictionary", n_jobs=2).fit(ts)
    scores = z.score(pool)
    domains = np.array(pool.column("domain").to_pylist())
    k = len(pool) // 20
    precision = np.mean(domains[np.argsort(-scores, kind="stable")[:k]] == "code_python")
    assert precision >= 3 * np.mean(domains == "code_python"), precision
    z.save(tmp_path / "zd")
    loaded = ZipFit.load(tmp_path / "zd")
    assert loaded.get_params()["mode"] == "dictionary"
    assert np.array_equal(loaded.score(pool.slice(0, 300)), scores[:300])
