"""Compressed lengths: C(s) = byte length of compress(utf8(s)), the feature behind ZIP-FIT.

Codecs, each equal byte for byte in length to the call named (the tests check it):

* ``gzip``: ``len(gzip.compress(b, compresslevel=level))``;
* ``zlib``: ``len(zlib.compress(b, level))``;
* ``lz4``: ``len(lz4.frame.compress(b, compression_level=level))`` (level 0 = lz4's default fast
  mode; negative = lz4's "fast acceleration");
* ``zstd``: ``len(zstandard.ZstdCompressor(level=level).compress(b))`` (level 0 = zstd's default).

gzip and zlib wrap one raw deflate stream in a fixed-size header and trailer (gzip 10 + 8 bytes,
zlib 2 + 4), so we compress raw deflate (``wbits=-15``) and add the wrapper size: same length,
no checksum pass. gzip/zlib level 0 is rejected: it is stored mode (no compression), C(s) is then
len(s) plus a constant and every compression-based score is a function of length only.

:func:`deflate_kernel` is the compiled exact-length kernel (``_deflate_len.c``, built by the package
install): raw deflate lengths of zlib levels 1-3 for a source and many targets, computed without
compressing (see the C file). It is used only where it provably agrees with the zlib Python links:
zlib 1.2.13 (the version it was written and fuzzed against) and a self-check on first use; anything
else (another zlib, zlib-ng, no compiler at install) gives one warning and ``None``, and callers
use zlib itself (same lengths, slower).
"""
from __future__ import annotations

import functools
import os
import threading
import warnings
import zlib
from typing import Callable

import numpy as np
import pyarrow as pa

from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError

CODECS = ("gzip", "zlib", "lz4", "zstd")
#: Header + trailer bytes around the raw deflate stream.
DEFLATE_WRAPPER = {"gzip": 18, "zlib": 6}
RAW_DEFLATE_WBITS = -15


def check_codec(codec: str, level: int) -> None:
    """Raise :class:`ConfigError` for an unknown codec or a level it does not take."""
    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}; got {codec!r}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise ConfigError(f"level must be an int, got {level!r}")
    if codec in DEFLATE_WRAPPER:
        if level == 0:
            raise ConfigError(
                f"{codec} level 0 is stored mode (no compression): C(s) = len(s) + a constant, which "
                "makes compression scores a function of document length only; use level 1-9 "
                "(ZIP-FIT's first release used gzip level 1)"
            )
        if not 1 <= level <= 9:
            raise ConfigError(f"{codec} level must be in 1..9, got {level}")
    elif codec == "lz4" and level > 16:
        raise ConfigError(f"lz4 level must be <= 16 (negative = fast acceleration), got {level}")
    elif codec == "zstd":
        import zstandard

        if level > zstandard.MAX_COMPRESSION_LEVEL:
            raise ConfigError(f"zstd level must be <= {zstandard.MAX_COMPRESSION_LEVEL}, got {level}")


def length_function(codec: str = "gzip", level: int = 1) -> Callable[[bytes], int]:
    """A function bytes -> C(bytes) for the codec (validated)."""
    check_codec(codec, level)
    level = int(level)
    if codec in DEFLATE_WRAPPER:
        wrapper, compress = DEFLATE_WRAPPER[codec], zlib.compress
        return lambda b: wrapper + len(compress(b, level, RAW_DEFLATE_WBITS))
    if codec == "lz4":
        import lz4.frame

        compress = lz4.frame.compress
        return lambda b: len(compress(b, compression_level=level))
    import zstandard

    compress = zstandard.ZstdCompressor(level=level).compress
    return lambda b: len(compress(b))


#: zlib builds whose levels 1-3 the kernel reproduces (fuzzed against in tests/test_deflate_kernel.py).
KERNEL_ZLIB_VERSIONS = ("1.2.13",)


def _kernel_self_check(kernel) -> bool:
    """The kernel's lengths equal this zlib's on a few inputs chosen to hit every block kind."""
    text = bytes(range(32, 127)) * 40 + b"".join(b"%d %x;" % (i, i * i) for i in range(9000))
    noise = bytes((i * 2654435761 >> 13) & 255 for i in range(20_000))  # stored blocks
    xs = [b"", b"abcabc", text[:700], text[:17_000], noise[:16_390], text[-70_000:], noise + text[:9_000]]
    ts = [b"", b"abcabcabc", text[3000:3400], noise[:300]]
    for level in (1, 2, 3):
        xs = xs if level == 1 else xs[:4]  # the long inputs at level 1 only: ~50 ms in all
        cx = np.empty(len(xs), dtype=np.int64)
        cxt = np.empty((len(xs), len(ts)), dtype=np.int64)
        kernel.pair_lengths(xs, ts, cx, cxt, level, 1)
        if cx.tolist() != [len(zlib.compress(x, level, RAW_DEFLATE_WBITS)) for x in xs]:
            return False
        if cxt.tolist() != [[len(zlib.compress(x + t, level, RAW_DEFLATE_WBITS)) for t in ts] for x in xs]:
            return False
    dicts = [b"ab", text[:5000], text[-32_000:]]
    out = np.empty((len(ts), len(dicts)), dtype=np.int64)
    kernel.dictionary_lengths(dicts, ts, out, 1, 1)
    return out.tolist() == _zdict_lengths(ts, dicts, 1).tolist()


_KERNEL_LOCK = threading.Lock()


def deflate_kernel():
    """The compiled exact deflate-length kernel, or ``None`` (with one warning per process) when it
    is missing or cannot be trusted to equal this process's zlib. ``LMSIEVE_DEFLATE_KERNEL=0``
    turns it off without a warning. Thread-safe: scoring threads share one check."""
    if os.environ.get("LMSIEVE_DEFLATE_KERNEL", "1") == "0":
        return None
    with _KERNEL_LOCK:
        return _checked_kernel()


@functools.lru_cache(maxsize=None)
def _checked_kernel():
    try:
        from lmsieve.features import _deflate_len as kernel
    except ImportError as e:
        reason = f"it is not built ({e}; reinstall lmsieve with a C compiler)"
    else:
        version = zlib.ZLIB_RUNTIME_VERSION
        if version not in KERNEL_ZLIB_VERSIONS or "ng" in version.lower():
            reason = f"it was checked against zlib {', '.join(KERNEL_ZLIB_VERSIONS)}, this Python links zlib {version}"
        elif not _kernel_self_check(kernel):
            reason = f"its self-check against zlib {version} failed"
        else:
            return kernel
    warnings.warn(f"lmsieve: the compiled deflate-length kernel is off: {reason}. ZIP-FIT computes its "
                  "lengths with zlib instead (the same scores, slower).", RuntimeWarning, stacklevel=3)
    return None


deflate_kernel.cache_clear = _checked_kernel.cache_clear  # tests re-check after patching zlib


#: Bytes of target text per preset dictionary: deflate's matches reach back at most 32 KB - 262.
DICTIONARY_BYTES = 32 * 1024 - 262


def pack_dictionaries(texts: list[bytes], size: int = DICTIONARY_BYTES) -> tuple[list[bytes], list[int]]:
    """Targets packed in order into preset dictionaries of at most ``size`` bytes, and how many
    targets each holds. A target that does not fit the current dictionary starts the next one; a
    target longer than ``size`` keeps its first ``size`` bytes (the rest is out of deflate's reach)."""
    dicts: list[bytes] = []
    counts: list[int] = []
    cur: list[bytes] = []
    used = 0
    for t in texts:
        t = t[:size]
        if cur and used + len(t) > size:
            dicts.append(b"".join(cur)), counts.append(len(cur))
            cur, used = [], 0
        cur.append(t)
        used += len(t)
    if cur:
        dicts.append(b"".join(cur)), counts.append(len(cur))
    return dicts, counts


def dictionary_lengths(xs: list[bytes], dicts: list[bytes], level: int, kernel: str = "auto") -> np.ndarray:
    """(N, n_dicts) raw deflate length of each x compressed with each preset dictionary (zlib
    ``zdict``; an empty dictionary is none): the compiled kernel for levels 1-3 (one pass over
    each dictionary, then each x continues from it), else one primed zlib compressor per
    dictionary, copied per document. ``kernel="zlib"`` forces the latter."""
    k = deflate_kernel() if kernel == "auto" and level <= 3 and all(dicts) else None
    if k is None:
        return _zdict_lengths(xs, dicts, level)
    out = np.empty((len(xs), len(dicts)), dtype=np.int64)
    k.dictionary_lengths(dicts, xs, out, level, 1)
    return out


def _zdict_lengths(xs: list[bytes], dicts: list[bytes], level: int) -> np.ndarray:
    out = np.empty((len(xs), len(dicts)), dtype=np.int64)
    for k, d in enumerate(dicts):
        primed = zlib.compressobj(level, zlib.DEFLATED, RAW_DEFLATE_WBITS, zdict=d) if d else None
        for i, x in enumerate(xs):
            if primed is None:
                out[i, k] = len(zlib.compress(x, level, RAW_DEFLATE_WBITS))
                continue
            c = primed.copy()
            out[i, k] = len(c.compress(x)) + len(c.flush())
    return out


def utf8(texts) -> list[bytes]:
    """The UTF-8 bytes of each text in a batch (anything ``text_array`` accepts)."""
    return text_array(texts).cast(pa.binary()).to_pylist()


def compressed_lengths(texts, codec: str = "gzip", level: int = 1) -> np.ndarray:
    """C(s) for each text: int64 byte lengths of the compressed UTF-8."""
    f = length_function(codec, level)
    return np.fromiter((f(b) for b in utf8(texts)), dtype=np.int64)
