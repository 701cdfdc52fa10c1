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
"""
from __future__ import annotations

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


def utf8(texts) -> list[bytes]:
    """The UTF-8 bytes of each text in a batch (anything ``text_array`` accepts)."""
    return text_array(texts).cast(pa.binary()).to_pylist()


def compressed_lengths(texts, codec: str = "gzip", level: int = 1) -> np.ndarray:
    """C(s) for each text: int64 byte lengths of the compressed UTF-8."""
    f = length_function(codec, level)
    return np.fromiter((f(b) for b in utf8(texts)), dtype=np.int64)
