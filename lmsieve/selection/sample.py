"""Cutting scores to a budget: :class:`Selection` and :func:`run_selection` over the shared sampling primitives."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.sampling.select import Budget, select as select_indices
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import ConfigError
from lmsieve.selection.scoring import score_table
from lmsieve.selectors.base import Selector


def make_budget(keep=None, keep_chars_fraction: float | None = None, threshold: float | None = None) -> Budget:
    """``keep``: an int (documents), a float in (0, 1] (fraction of documents) or a Budget."""
    if isinstance(keep, Budget):
        return keep
    given = [x is not None for x in (keep, keep_chars_fraction, threshold)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of keep (count or fraction), keep_chars_fraction, threshold")
    if keep_chars_fraction is not None:
        return Budget(length_fraction=float(keep_chars_fraction))
    if threshold is not None:
        return Budget(threshold=float(threshold))
    if isinstance(keep, (bool, np.bool_)):
        raise ConfigError("keep must be a count or a fraction")
    if isinstance(keep, (int, np.integer)):
        return Budget(k=int(keep))
    keep = float(keep)
    if not 0 < keep <= 1:
        raise ConfigError(f"a fractional keep must be in (0, 1], got {keep}")
    return Budget(fraction=keep)


def _target_seed(seed: int, j: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{j}".encode(), digest_size=8).digest(), "little")


@dataclass
class Selection:
    """A selection over one table: indices in rank order, with the scores it was made from."""

    table: pa.Table
    indices: np.ndarray
    scores: np.ndarray
    eligible: np.ndarray
    budget: Budget
    ranking: str
    seed: int
    details: dict = field(default_factory=dict)

    @property
    def selected(self) -> pa.Table:
        """The selected rows, all columns, in input order."""
        return self.table.take(pa.array(np.sort(self.indices), type=pa.int64()))


def run_selection(selector: Selector, table: pa.Table, budget: Budget, *, seed: int = 0,
                  ranking: str | None = None, temperature: float | None = None,
                  scores: np.ndarray | None = None, eligible: np.ndarray | None = None,
                  progress: bool = False) -> Selection:
    """Score (unless scores are given) and cut to the budget with the shared primitives."""
    ranking = ranking or selector.default_ranking
    temperature = selector.default_temperature if temperature is None else temperature
    if scores is None:
        scores, eligible = score_table(selector, table, progress=progress)
    ids = table.column(ID)
    lengths = None
    if budget.length_fraction is not None:
        lengths = pc.utf8_length(table.column(TEXT)).to_numpy(zero_copy_only=False).astype(np.int64)
    kw = dict(ranking=ranking, temperature=temperature, higher_is_better=selector.higher_is_better, lengths=lengths)
    if scores.ndim == 2:  # DSIR with separate targets: allocate k, mask what earlier targets took
        n_elig = int(eligible.sum())
        k = budget.k if budget.k is not None else int(np.floor(budget.fraction * len(scores) + 1e-9)) if budget.fraction is not None else None
        if k is None:
            raise ConfigError("separate targets take a document budget (keep N or a fraction)")
        taken = np.zeros(len(scores), dtype=bool)
        picked = []
        for j, kj in enumerate(selector.allocate(min(k, n_elig))):
            idx = select_indices(scores[:, j], ids, Budget(k=kj), seed=_target_seed(seed, j),
                                 eligible=eligible & ~taken, **kw)
            taken[idx] = True
            picked.append(idx)
        indices = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    else:
        indices = select_indices(scores, ids, budget, seed=seed, eligible=eligible, **kw)
    if budget.k is not None and len(indices) < budget.k:
        import logging

        n_inel = int((~np.asarray(eligible, dtype=bool)).sum()) if eligible is not None else 0
        why = f" ({n_inel} not eligible for {selector.name}{_INELIGIBLE.get(selector.name, '')})" if n_inel else ""
        logging.getLogger("lmsieve").warning("asked to keep %d documents but the pool has %d%s: selected %d",
                                             budget.k, table.num_rows, why, len(indices))
    return Selection(table, indices, scores, eligible, budget, ranking, seed)


_INELIGIBLE = {"dsir": ": under min_example_length words"}

