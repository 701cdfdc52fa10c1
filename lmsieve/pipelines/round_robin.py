"""RDS+ round-robin over queries (``rds-rr``) in the Beam jobs, never the query x pool matrix.

The in-process selector (:mod:`lmsieve.selectors.rds`) keeps each query's top ``per_query_k``
documents over the whole pool, runs the round-robin over those lists and turns the pick order
into scores. Here the same computation is split over the two jobs:

* features job, :class:`QueryTopKFeature` (one side file per shard, ``<shard>.rds-rr.parquet``):
  ``score`` = the document's max similarity over the queries (the fallback for documents the
  round-robin never reaches), ``eligible``, and ``topk_queries`` / ``topk_sims``: the queries whose
  top-``per_query_k`` **within the unit** the document is in, and its similarity to each. A
  document in a query's global top-k is in that query's top-k of its own unit, so these lists hold
  every global candidate; at most Q x k entries per unit.
* selection job, :class:`QueryRoundRobin`: per unit, the stored entries as (Q, k) candidate
  arrays keyed by the global row (shard row offset + row; the in-process API's row index when no
  row is invalid); a ``CombineGlobally`` of :class:`TopKPerQuery` keeps only each query's top k
  (``knn.merge_topk``: similarity descending, row ascending, so the merge order does not matter);
  one step runs ``round_robin_order`` and hands :class:`RoundRobinRanks` (the picks' rows and
  positions, at most Q x k) to the scoring step as a singleton side input, which scores every
  document with ``rds.positions_to_scores``: the in-process scores, so the same selection.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import apache_beam as beam
from lmsieve.features.knn import merge_topk
from lmsieve.pipelines.features import ScoreFeature
from lmsieve.schemas.document import ID

QUERY_IDS = "topk_queries"
QUERY_SIMS = "topk_sims"


def is_round_robin(selector) -> bool:
    return bool(getattr(selector, "round_robin", False))


def stored_feature(selector, target_hash: str) -> ScoreFeature:
    """The side-file feature that stores a selector's per-document score for the selection job."""
    return QueryTopKFeature(selector, target_hash) if is_round_robin(selector) else ScoreFeature(selector, target_hash)


class QueryTopKFeature(ScoreFeature):
    """``score``/``eligible`` plus each document's unit-local per-query top-k memberships."""

    def params(self) -> dict:
        return {**super().params(), "stored": "query_topk"}

    def fields(self) -> list[pa.Field]:
        return super().fields() + [pa.field(QUERY_IDS, pa.list_(pa.int32())), pa.field(QUERY_SIMS, pa.list_(pa.float32()))]

    def compute(self, docs: pa.Table) -> dict[str, pa.Array]:
        sel = self.selector
        cols = [c for c in docs.column_names if c in sel.input_columns or c == ID]
        fallback, (sims, rows) = sel.query_topk(docs.select(cols))
        n = docs.num_rows
        q = np.broadcast_to(np.arange(sims.shape[0])[:, None], rows.shape)
        ok = rows >= 0
        r, q, v = rows[ok], q[ok], sims[ok]
        order = np.lexsort((q, r))  # by document, then query
        offsets = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))]).astype(np.int32)
        return {
            "score": pa.array(np.asarray(fallback, dtype=np.float64)), "eligible": pa.array(np.ones(n, dtype=bool)),
            QUERY_IDS: pa.ListArray.from_arrays(pa.array(offsets), pa.array(q[order].astype(np.int32))),
            QUERY_SIMS: pa.ListArray.from_arrays(pa.array(offsets), pa.array(v[order].astype(np.float32))),
        }


def unit_candidates(table: pa.Table, row0: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(sims (Q', k'), global rows (Q', k'), -1 padded) of one unit's stored entries; row ``i`` of
    the unit is global row ``row0 + i``. None when the unit has no entry."""
    qa, sa = table.column(QUERY_IDS).combine_chunks(), table.column(QUERY_SIMS).combine_chunks()
    if len(pc.list_flatten(qa)) == 0:
        return None
    doc = pc.list_parent_indices(qa).to_numpy().astype(np.int64)
    q = pc.list_flatten(qa).to_numpy().astype(np.int64)
    s = pc.list_flatten(sa).to_numpy().astype(np.float32)
    order = np.lexsort((doc, q))
    q, s, doc = q[order], s[order], doc[order]
    counts = np.bincount(q)
    col = np.arange(len(q)) - np.repeat(np.cumsum(counts) - counts, counts)
    sims = np.full((len(counts), int(counts.max())), -np.inf, dtype=np.float32)
    rows = np.full(sims.shape, -1, dtype=np.int64)
    sims[q, col], rows[q, col] = s, doc + row0
    return sims, rows


def _pad(s: np.ndarray, r: np.ndarray, n_q: int) -> tuple[np.ndarray, np.ndarray]:
    if len(s) >= n_q:
        return s, r
    extra = n_q - len(s)
    return (np.vstack([s, np.full((extra, s.shape[1]), -np.inf, np.float32)]),
            np.vstack([r, np.full((extra, r.shape[1]), -1, np.int64)]))


class TopKPerQuery(beam.CombineFn):
    """Each query's top ``k`` (similarity desc, global row asc) over (sims, rows) candidate arrays."""

    def __init__(self, k: int):
        self.k = int(k)

    def create_accumulator(self):
        return None

    def add_input(self, acc, cand):
        return self.merge_accumulators([acc, cand])

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is None:
                continue
            if out is None:
                out = a
                continue
            n_q = max(len(out[0]), len(a[0]))
            (s1, r1), (s2, r2) = _pad(*out, n_q), _pad(*a, n_q)
            out = merge_topk(s1, r1, s2, r2, self.k)
        return out

    def extract_output(self, acc):
        return acc


class RoundRobinRanks:
    """The round-robin picks (global rows in pick order) and how to score a unit's documents."""

    def __init__(self, order: np.ndarray):
        self.n_order = len(order)
        by_row = np.argsort(order, kind="stable")
        self.rows, self.pos = np.asarray(order, np.int64)[by_row], by_row.astype(np.int64)

    def positions(self, global_rows: np.ndarray) -> np.ndarray:
        """Pick position per row (-1 for rows the round-robin never reached)."""
        if not len(self.rows):
            return np.full(len(global_rows), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.rows, global_rows), len(self.rows) - 1)
        return np.where(self.rows[i] == global_rows, self.pos[i], -1)

    def scores(self, row0: int, rows_valid: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Scores of a unit's valid documents; ``row0``: the pool-wide row of the unit's first row."""
        from lmsieve.selectors.rds import positions_to_scores

        g = int(row0) + np.asarray(rows_valid, dtype=np.int64)
        return positions_to_scores(self.positions(g), self.n_order, fallback)


def _ranks(best) -> RoundRobinRanks:
    from lmsieve.selectors.rds import round_robin_order

    order = np.zeros(0, np.int64) if best is None else round_robin_order([row[row >= 0] for row in best[1]])
    return RoundRobinRanks(order)


def _read_candidates(task, feature: str):
    from lmsieve.pipelines.selection_job import read_side_unit

    t = read_side_unit(task.files[feature], task.unit, [QUERY_IDS, QUERY_SIMS])
    c = unit_candidates(t, task.row0)
    return [] if c is None else [c]


class QueryRoundRobin(beam.PTransform):
    """units (``UnitTask``s, a task-list file) -> a singleton :class:`RoundRobinRanks` (see the module doc)."""

    def __init__(self, units_path: str, feature: str, k: int):
        super().__init__()
        self.units_path, self.feature, self.k = units_path, feature, int(k)

    def expand(self, p):
        from lmsieve.pipelines.features_job import ReadTasks

        return (p
                | "Units" >> ReadTasks(self.units_path)
                | "Candidates" >> beam.FlatMap(_read_candidates, self.feature)
                | "TopKPerQuery" >> beam.CombineGlobally(TopKPerQuery(self.k))
                | "Order" >> beam.Map(_ranks))


__all__ = ["QUERY_IDS", "QUERY_SIMS", "QueryRoundRobin", "QueryTopKFeature", "RoundRobinRanks", "TopKPerQuery",
           "is_round_robin", "stored_feature", "unit_candidates"]
