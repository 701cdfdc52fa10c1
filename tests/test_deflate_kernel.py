"""The compiled deflate-length kernel equals Python's zlib, length for length, and is refused (one
warning, zlib fallback, the same ZIP-FIT scores) wherever it cannot be trusted."""
import random
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import pool_slice, target_set

import lmsieve.features as features_pkg
from lmsieve.features import compression
from lmsieve.selectors.zipfit import ZipFit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kernel():
    k = compression.deflate_kernel()
    assert k is not None, "the compiled kernel must be built and trusted on the test machine"
    return k


def kernel_lengths(kernel, xs, ts, level=1, threads=2):
    cx = np.empty(len(xs), dtype=np.int64)
    cxt = np.empty((len(xs), len(ts)), dtype=np.int64)
    kernel.pair_lengths(xs, ts, cx, cxt, level, threads)
    return cx, cxt


def assert_equal_to_zlib(kernel, xs, ts, level=1):
    cx, cxt = kernel_lengths(kernel, xs, ts, level)
    raw = compression.RAW_DEFLATE_WBITS
    assert cx.tolist() == [len(zlib.compress(x, level, raw)) for x in xs]
    want = np.array([[len(zlib.compress(x + t, level, raw)) for t in ts] for x in xs], dtype=np.int64)
    bad = np.argwhere(cxt != want)
    assert bad.size == 0, [(len(xs[i]), len(ts[j]), cxt[i, j], want[i, j]) for i, j in bad[:5]]
    return cxt.size


def _repo_text() -> bytes:
    """Real text that ships with the tests: this repository's sources and docs."""
    files = sorted(REPO.glob("lmsieve/**/*.py")) + sorted(REPO.glob("*.md"))
    return b"\n".join(f.read_bytes() for f in files)


def _small_inputs(seed: int, n: int, text: bytes) -> list[bytes]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 6
        size = r.choice([0, 1, 2, 3, 4, 7, 30, 100, 257, 258, 262, 300, 600])
        if kind == 0:
            out.append(bytes(r.randrange(256) for _ in range(size)))
        elif kind == 1:
            alpha = r.choice([1, 2, 3, 4, 16])
            out.append(bytes(97 + r.randrange(alpha) for _ in range(size)))
        elif kind in (2, 3):
            start = r.randrange(len(text) - 700)
            out.append(text[start : start + size])
        elif kind == 4:
            unit = text[r.randrange(len(text) - 40):][: r.randrange(1, 40)]
            out.append((unit * (size // max(1, len(unit)) + 1))[: size])
        else:
            a = bytes(r.randrange(256) for _ in range(size // 2))
            out.append(a + a[::-1])
    return out


def test_fuzz_100k_small_pairs(kernel):
    """100,200 pairs of short inputs (random bytes, small alphabets, real text, repeats, empty) at
    level 1, and a few thousand at levels 2 and 3."""
    text = _repo_text()
    xs, ts = _small_inputs(1, 1002, text), _small_inputs(2, 100, text)
    assert b"" in xs and b"" in ts
    assert assert_equal_to_zlib(kernel, xs, ts) == 100_200
    for level in (2, 3):
        assert_equal_to_zlib(kernel, xs[:60], ts, level)


def test_long_inputs_windows_and_block_boundaries(kernel):
    """Sources past the 32 KB window and the 64 KB buffer slide, incompressible (stored) blocks, and
    targets that straddle the 16,383-symbol block boundary."""
    text = _repo_text()
    r = random.Random(5)
    noise = bytes(r.randrange(256) for _ in range(140_000))
    xs = [
        noise[:16_380],  # literals only: the block boundary falls 3 symbols into the target
        noise[:16_383],
        noise[1:32_770],
        text[:33_000],
        text[:65_400],  # where the window first slides
        text[:65_536],
        text[7:140_000],
        noise[:40_000] + text[:30_000],
        (text[:3000] * 30)[:90_000],  # long matches
        b"",
    ]
    ts = [b"", b"a", noise[:5], noise[:600], text[1000:1500], text[:20_000], noise[:17_000], xs[4][-700:]]
    assert_equal_to_zlib(kernel, xs, ts)
    assert_equal_to_zlib(kernel, xs[:4], ts[:5], level=3)


@pytest.mark.slow
def test_fuzz_real_documents(kernel):
    """Real pool documents against real targets (shared data): 300 x 100 pairs plus long sources."""
    docs = [d.encode() for d in pool_slice(400).column("text").to_pylist()]
    targets = target_set("humaneval").column("text").to_pylist()[:50]
    targets += target_set("heldout_code_python").column("text").to_pylist()[:50]
    ts = [t.encode() for t in targets]
    assert_equal_to_zlib(kernel, docs[:300], ts)
    joined = b"\n".join(docs)
    assert_equal_to_zlib(kernel, [joined[:50_000], joined[-120_000:]], ts)


def test_preset_dictionary_lengths_equal_zlib_zdict(kernel):
    """dictionary_lengths equals zlib.compressobj(zdict=...) + compress + flush, for tiny, full and
    over-long (> 32 KB: zlib keeps the tail) dictionaries and documents up to past the window."""
    text = _repo_text()
    r = random.Random(9)
    noise = bytes(r.randrange(256) for _ in range(20_000))
    dicts = [b"a", b"ab", b"abc", text[:32_506], text[9_000:41_768], text[:50_000], noise[:3000], text[100:600]]
    xs = _small_inputs(3, 120, text) + [b"", b"a", b"ab", text[:70_000], text[5:33_000], noise]
    for level in (1, 2, 3):
        out = np.empty((len(xs), len(dicts)), dtype=np.int64)
        kernel.dictionary_lengths(dicts, xs, out, level, 2)
        assert out.tolist() == compression._zdict_lengths(xs, dicts, level).tolist(), level
    with pytest.raises(ValueError, match="empty"):
        kernel.dictionary_lengths([b""], [b"x"], np.empty((1, 1), dtype=np.int64))


def test_bad_arguments(kernel):
    cx = np.empty(1, dtype=np.int64)
    cxt = np.empty((1, 1), dtype=np.int64)
    with pytest.raises(TypeError, match="bytes"):
        kernel.pair_lengths(["str"], [b""], cx, cxt)
    with pytest.raises(ValueError, match="level"):
        kernel.pair_lengths([b""], [b""], cx, cxt, 4)
    with pytest.raises(ValueError, match="int64"):
        kernel.pair_lengths([b""], [b"", b""], cx, cxt)
    with pytest.raises(TypeError, match="int64"):
        kernel.pair_lengths([b""], [b""], cx, np.empty((1, 1)))


def _fallback_scores(monkeypatch, breakage: str):
    texts = ["def add(a, b):\n    return a + b\n" * 3, "The weather is warm.", ""]
    targets = ["def sub(a, b):\n    return a - b\n", "λ x, x"]
    exact = ZipFit(kernel="zlib").fit(targets).score(texts)
    if breakage == "version":
        monkeypatch.setattr(zlib, "ZLIB_RUNTIME_VERSION", "1.3.0.zlib-ng")
    elif breakage == "missing":
        monkeypatch.delattr(features_pkg, "_deflate_len", raising=False)
        monkeypatch.setitem(sys.modules, "lmsieve.features._deflate_len", None)
    else:  # a kernel that is off by one byte somewhere
        real = compression.deflate_kernel()

        class OffByOne:
            @staticmethod
            def pair_lengths(xs, ts, cx, cxt, level=1, threads=1):
                real.pair_lengths(xs, ts, cx, cxt, level, threads)
                cxt[-1] += 1

        monkeypatch.setattr(features_pkg, "_deflate_len", OffByOne, raising=False)
    compression.deflate_kernel.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            z = ZipFit().fit(targets)
            got = [z.score(texts), z.score(texts), ZipFit(n_jobs=2).fit(targets).score(texts)]
        assert compression.deflate_kernel() is None
    finally:
        compression.deflate_kernel.cache_clear()
    mine = [w for w in caught if "deflate-length kernel is off" in str(w.message)]
    assert len(mine) == 1, [str(w.message) for w in caught]  # exactly one warning per process
    for s in got:
        assert np.array_equal(s, exact)
    return str(mine[0].message)


@pytest.mark.parametrize("breakage,reason", [("version", "zlib-ng"), ("missing", "not built"),
                                             ("mismatch", "self-check")])
def test_fallback_when_kernel_cannot_be_trusted(monkeypatch, kernel, breakage, reason):
    assert reason in _fallback_scores(monkeypatch, breakage)
    monkeypatch.undo()
    assert compression.deflate_kernel() is kernel  # trusted again once the breakage is undone


def test_environment_switch_turns_the_kernel_off_quietly(monkeypatch, kernel):
    monkeypatch.setenv("LMSIEVE_DEFLATE_KERNEL", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compression.deflate_kernel() is None
        ts = ["def f(x):\n    return x\n", "λ"]
        assert np.array_equal(ZipFit().fit(ts).score(["def g(y): return y", ""]),
                              ZipFit(kernel="zlib").fit(ts).score(["def g(y): return y", ""]))
    monkeypatch.delenv("LMSIEVE_DEFLATE_KERNEL")
    assert compression.deflate_kernel() is kernel
