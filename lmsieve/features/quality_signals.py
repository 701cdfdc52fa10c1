"""Heuristic quality signals (Gopher/FineWeb kind) computed with datatrove's stats blocks.

Not Meta-rater's ratings: those are the 11 RedPajama-V2 signals of
:mod:`lmsieve.features.redpajama_signals` (datatrove's stats have no unigram entropy, top-n-gram
character fractions or sentence count). These stay available as extra user features.

We reuse ``datatrove.pipeline.stats`` ``WordStats``, ``LineStats`` and ``DocStats``
``extract_stats`` (per-document dicts) rather than re-writing the signals; the output folder those
blocks need for their histogram files is a throw-away temp dir that is never written to, since only
``extract_stats`` is called. Offline-unsafe blocks (language id, perplexity, C4 bad words,
hub tokenizers) are not used. Signal names are prefixed with the block (``word.``, ``line.``,
``doc.``).
"""
from __future__ import annotations

import functools
import tempfile

import numpy as np

from lmsieve.schemas.document import text_array


@functools.lru_cache(maxsize=1)
def _blocks():
    from datatrove.pipeline.stats import DocStats, LineStats, WordStats

    tmp = tempfile.mkdtemp(prefix="lmsieve-dt-")
    return (("word", WordStats(tmp)), ("line", LineStats(tmp)), ("doc", DocStats(tmp)))


def quality_signals(batch) -> dict[str, np.ndarray]:
    """Per-document heuristic signals: name -> float64 array aligned with the batch."""
    from datatrove.data import Document

    texts = text_array(batch).to_pylist()
    rows = []
    for i, t in enumerate(texts):
        doc = Document(text=t or "", id=str(i))
        row = {}
        for prefix, block in _blocks():
            row.update({f"{prefix}.{k}": float(v) for k, v in block.extract_stats(doc).items()})
        rows.append(row)
    names = sorted({k for r in rows for k in r})
    return {k: np.array([r.get(k, 0.0) for r in rows], dtype=np.float64) for k in names}
