"""Dataset releases: a selection directory in, sharded zstd Parquet + dataset card + manifest +
checksums out (:func:`make_release`), and :func:`verify_release` to re-check one.

Issue #9. Layout and guarantees: ``docs/release.md``.
"""
from lmsieve.release.source import SelectionDir, read_selection
from lmsieve.release.verify import Mismatch, ReleaseMismatch, verify_release
from lmsieve.release.writer import make_release

__all__ = ["Mismatch", "ReleaseMismatch", "SelectionDir", "make_release", "read_selection", "verify_release"]
