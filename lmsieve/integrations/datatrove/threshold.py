"""A keep-fraction as a score threshold, for streaming filters.

A datatrove filter sees one document at a time, so "keep the best 10%" has to become "keep every
document scoring at least t" before the pipeline runs. ``threshold_for_fraction`` scores a sample
of the pool (through the API, the same scoring code) and returns the score of the last document a
top-k selection of ``fraction`` of the sample would keep -- the same count rule as
``lmsieve select --keep-fraction`` (``floor(fraction × documents)``, eligible or not, ranked
among the eligible ones). On the whole pool the kept share is then ``fraction`` up to the sample's
sampling error (and ties at the threshold, which are all kept).
"""
from __future__ import annotations

import numpy as np

from lmsieve.schemas.errors import ConfigError
from lmsieve.selectors.base import Selector


def threshold_for_fraction(selector: Selector, sample, fraction: float) -> float:
    """The score threshold that keeps ``fraction`` of ``sample`` (a table, DataFrame, list of str or
    path) under a top-k ranking; raises if that keeps nothing."""
    from lmsieve.selection.inputs import load_pool
    from lmsieve.selection.sample import run_selection
    from lmsieve.sampling.select import Budget

    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    selector.check_fitted()
    table, _, _ = load_pool(sample, selector)
    if getattr(selector, "get_params", dict)().get("separate_targets"):
        raise ConfigError("a selector with separate targets gives several scores per document; "
                          "the datatrove steps need one")
    chosen = run_selection(selector, table, Budget(fraction=float(fraction)), ranking="topk")
    if len(chosen.indices) == 0:
        raise ConfigError(f"keeping {fraction} of a {table.num_rows}-document sample keeps nothing "
                          "eligible: use a larger sample or fraction")
    picked = chosen.scores[chosen.indices]
    return float(picked.min() if selector.higher_is_better else picked.max())


__all__ = ["threshold_for_fraction"]
