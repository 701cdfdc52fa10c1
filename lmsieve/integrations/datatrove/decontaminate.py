"""``DecontaminationFilter``: drop documents that contain evaluation items, in a datatrove pipeline.

The same flags as ``lmsieve select --decontaminate`` and the Beam features job
(:func:`lmsieve.features.decontam.flag_texts`, per document, so batching does not change them).
Dropped documents are counted by datatrove's ``BaseFilter`` as ``dropped`` and
``dropped_contaminated`` (the drop reason), and once per evaluation set that contaminates them as
``contaminated.<set>``; ``doc.metadata["contaminated_by"]`` names those sets (also on documents
kept in ``report`` mode, where nothing is dropped and ``contaminated`` counts them).
"""
from __future__ import annotations

from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from lmsieve.features.decontam import CONTAMINATED, MODES
from lmsieve.schemas.errors import ConfigError

METADATA_KEY = "contaminated_by"


class DecontaminationFilter(BaseFilter):
    """``index``: a saved index directory, evaluation files, or a ``DecontamIndex``."""

    name = "lmsieve decontaminate"

    def __init__(self, index, mode: str = "remove", min_overlap: int = 1, min_fraction: float | None = None,
                 batch_size: int = 1000, exclusion_writer: DiskWriter | None = None):
        from lmsieve.features.decontam.apply import Decontaminator

        if mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.decon = Decontaminator.from_spec(index, mode, min_overlap, min_fraction)

    def filter_batch(self, batch: list) -> list:
        f = self.decon.flags([d.text for d in batch])
        names = self.decon.index.set_names
        out = []
        for doc, flagged, sets in zip(batch, f.flagged.tolist(), f.sets.tolist()):
            if not flagged:
                out.append(True)
                continue
            hit = [n for s, n in enumerate(names) if (sets >> s) & 1]
            doc.metadata[METADATA_KEY] = hit
            for n in hit:
                self.stat_update(f"{CONTAMINATED}.{n}")
            if self.decon.mode == "report":
                self.stat_update(CONTAMINATED)
                out.append(True)
            else:
                out.append((False, CONTAMINATED))
        return out

    def filter(self, doc) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]


__all__ = ["DecontaminationFilter", "METADATA_KEY"]
