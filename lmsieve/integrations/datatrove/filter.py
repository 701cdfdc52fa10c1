"""``LmsieveFilter``: keep the documents whose lmsieve score passes a threshold.

The same rule as ``lmsieve select --threshold`` (``lmsieve.sampling.select.take_budget``): a
document is kept when it is eligible and ``score >= threshold`` (``<=`` for a selector whose
lower scores are better). Dropped documents are counted by datatrove's ``BaseFilter`` as
``dropped`` plus one stat per reason:

* ``dropped_ineligible``      -- the method does not rank the document (DSIR: under 100 words);
* ``dropped_nonfinite_score`` -- NaN or ±inf score (the API quarantines these; a filter drops them);
* ``dropped_below_threshold`` -- the rest.

So ``total = forwarded + dropped`` and ``dropped`` is the sum of the three reasons.

The score is read from ``doc.metadata[score_key]`` (put there by
:class:`~lmsieve.integrations.datatrove.scorer.LmsieveScorer`), or, with ``selector=``, computed
here in batches by the same scoring function. A keep-*fraction* needs the whole pool's scores, which
a streaming filter never sees: compute the threshold beforehand from a scored sample with
:func:`~lmsieve.integrations.datatrove.threshold.threshold_for_fraction`. The threshold rule is
deterministic top-scores selection; DSIR's default Gumbel-top-k sampling needs the global ranking
and stays in ``lmsieve select`` / the Beam selection job.
"""
from __future__ import annotations

import math
import os

from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from lmsieve.integrations.datatrove.scorer import (
    DEFAULT_ELIGIBLE_KEY,
    DEFAULT_SCORE_KEY,
    as_fitted_selector,
    score_documents,
)
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.selectors.base import Selector

BELOW_THRESHOLD = "below_threshold"
INELIGIBLE = "ineligible"
NONFINITE = "nonfinite_score"


class LmsieveFilter(BaseFilter):
    """Keeps eligible documents with ``score >= threshold`` (``<=`` if ``higher_is_better=False``).

    ``selector``: a fitted selector (or saved directory) to score with; without one, the score and
    eligibility are read from metadata. ``higher_is_better`` defaults to the selector's, else True.
    """

    name = "lmsieve threshold"

    def __init__(self, threshold: float, score_key: str = DEFAULT_SCORE_KEY,
                 eligible_key: str = DEFAULT_ELIGIBLE_KEY, selector: Selector | str | os.PathLike | None = None,
                 higher_is_better: bool | None = None, batch_size: int = 1000,
                 exclusion_writer: DiskWriter | None = None):
        threshold = float(threshold)
        if math.isnan(threshold):
            raise ConfigError("threshold must be a number, got NaN")
        self.selector = None if selector is None else as_fitted_selector(selector)
        super().__init__(exclusion_writer, batch_size=batch_size if self.selector is not None else 1)
        self.threshold = threshold
        self.score_key = score_key
        self.eligible_key = eligible_key
        if higher_is_better is None:
            higher_is_better = True if self.selector is None else self.selector.higher_is_better
        self.higher_is_better = bool(higher_is_better)

    def filter_batch(self, batch: list) -> list:
        if self.selector is not None:
            score_documents(self.selector, batch, self.score_key, self.eligible_key)
        return [self.filter(doc) for doc in batch]

    def filter(self, doc) -> bool | tuple[bool, str]:
        try:
            score = doc.metadata[self.score_key]
        except KeyError:
            raise InputError(f"document {doc.id!r} has no metadata {self.score_key!r}: put an LmsieveScorer "
                             f"before the filter or pass selector=", doc.metadata.get("file_path")) from None
        if not doc.metadata.get(self.eligible_key, True):
            return False, INELIGIBLE
        score = float(score)
        if not math.isfinite(score):
            return False, NONFINITE
        ok = score >= self.threshold if self.higher_is_better else score <= self.threshold
        return True if ok else (False, BELOW_THRESHOLD)
