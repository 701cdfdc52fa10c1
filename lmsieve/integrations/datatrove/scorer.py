"""``LmsieveScorer``: a datatrove step that scores documents with a fitted lmsieve selector.

The step batches the document stream (``batch_size`` documents, default 1,000) into an Arrow table
with ``id``, ``text`` and any other columns the selector reads (taken from ``doc.metadata``), calls
the selector's own ``score_and_mask`` -- the same method the API, the CLI and the Beam jobs call,
so a document gets the same score everywhere -- and writes ``doc.metadata[score_key]`` (float) and
``doc.metadata[eligible_key]`` (bool). Every document is passed on; filtering is
:class:`~lmsieve.integrations.datatrove.filter.LmsieveFilter`'s job.

Which selector: e.g. DSIR (Xie et al., *Data Selection for Language Models via Importance
Resampling*, NeurIPS 2023) fitted with ``lmsieve.selection.scoring.fit_selector`` and saved with
``Selector.save``; pass the object or the saved directory.
"""
from __future__ import annotations

import os

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from lmsieve.integrations.datatrove.documents import docs_to_table
from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector

DEFAULT_SCORE_KEY = "lmsieve_score"
DEFAULT_ELIGIBLE_KEY = "lmsieve_eligible"


def as_fitted_selector(selector: Selector | str | os.PathLike) -> Selector:
    """A fitted selector from an object or a directory written by ``Selector.save``."""
    if isinstance(selector, (str, os.PathLike)):
        selector = Selector.load(selector)
    if not isinstance(selector, Selector):
        raise ConfigError(f"selector must be a fitted lmsieve Selector or a saved selector directory, "
                          f"got {type(selector).__name__}")
    selector.check_fitted()
    return selector


def score_documents(selector: Selector, docs: list, score_key: str, eligible_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Score one batch of documents in place (metadata) and return (scores, eligible)."""
    scores, eligible = selector.score_and_mask(docs_to_table(docs, selector.input_columns))
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ConfigError(f"{selector.name} gives {scores.shape[1]} scores per document (separate targets); "
                          "the datatrove steps need one: fit it with separate_targets=False")
    eligible = np.asarray(eligible, dtype=bool)
    for doc, s, e in zip(docs, scores.tolist(), eligible.tolist()):
        doc.metadata[score_key] = s
        doc.metadata[eligible_key] = e
    return scores, eligible


class LmsieveScorer(PipelineStep):
    """Adds ``metadata[score_key]`` and ``metadata[eligible_key]`` to every document.

    Stats: ``scored`` (documents), ``ineligible`` (documents the method does not rank, e.g. DSIR's
    under-100-word ones), ``batches``.
    """

    type = "🔢 - SCORER"

    def __init__(self, selector: Selector | str | os.PathLike, score_key: str = DEFAULT_SCORE_KEY,
                 eligible_key: str = DEFAULT_ELIGIBLE_KEY, batch_size: int = 1000):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.selector = as_fitted_selector(selector)
        self.name = f"lmsieve {self.selector.name}"
        self.stats.name = str(self)
        self.score_key = score_key
        self.eligible_key = eligible_key
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                _, eligible = score_documents(self.selector, batch, self.score_key, self.eligible_key)
            self.stat_update("batches")
            self.stat_update("scored", value=len(batch))
            self.stat_update("ineligible", value=int((~eligible).sum()))
            yield from batch
