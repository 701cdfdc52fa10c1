"""Random baseline: a uniform sample without replacement, from the stable (seed, id) hash.

Scores are U(0, 1) draws keyed by (seed, document id), so "top-k" of them is a uniform random
sample that does not depend on input order or sharding. Every selection study needs this baseline.
"""
from __future__ import annotations

import numpy as np

from lmsieve.sampling.hashing import stable_uniform
from lmsieve.schemas.document import ID
from lmsieve.schemas.errors import InputError
from lmsieve.selectors.base import Selector, register


@register
class RandomSelector(Selector):
    name = "random"
    input_columns = (ID,)
    fitted_attributes = ()

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)

    def fit(self, target=None, pool_sample=None) -> "RandomSelector":
        return self

    def score_and_mask(self, batch) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(batch, "column") or ID not in batch.schema.names:
            raise InputError("the random selector needs an 'id' column")
        u = stable_uniform(self._params["seed"], batch.column(ID))
        return u, np.ones(len(u), dtype=bool)
