"""Global statistics as Beam combines: numpy vector sums and DSIR's raw/target fit.

DSIR needs two bucket-count vectors over the whole corpus: the raw pool's (up to the fit budget,
in input order) and the target's. Each is a ``CombineGlobally`` of per-unit ``np.bincount`` vectors
with a numpy accumulator (combiner lifting keeps the shuffle to one vector per bundle); the fitted
selector is then built by ``DSIR.fit_counts`` in one ``Map`` and handed to the scoring step as a
singleton side input.

The fit budget (``num_tokens_to_fit``) counts features in input order, so every unit is given the
number of features before it (``already``, from the per-unit totals the features job stored in its
footers) and counts with ``DSIR.raw_counts_from_counts(occ, already)``: the same documents as the
in-process fit, whatever the sharding; units entirely past the budget are not read at all.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import apache_beam as beam


class ArraySum(beam.CombineFn):
    """Elementwise sum of equal-shape numpy arrays (None when there are none)."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, v):
        return np.array(v, copy=True) if acc is None else acc + v

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            if a is not None:
                out = a.copy() if out is None else out + a
        return out

    def extract_output(self, acc):
        return acc


class VectorSum(ArraySum):
    """Sum of equal-length numpy vectors of one dtype (zeros of ``size`` when there are none)."""

    def __init__(self, size: int, dtype=np.int64):
        self.size, self.dtype = int(size), np.dtype(dtype)

    def add_input(self, acc, v):
        return super().add_input(acc, np.asarray(v, dtype=self.dtype))

    def extract_output(self, acc):
        return np.zeros(self.size, dtype=self.dtype) if acc is None else acc


def read_ngram_unit(path: str, unit_index: int, num_buckets: int):
    """NgramCounts of the valid documents of one unit of a ``dsir_ngrams`` side file."""
    from lmsieve.features.ngrams import NgramCounts
    from lmsieve.pipelines import fileio
    from lmsieve.pipelines.features import BUCKETS, COUNTS

    with fileio.open_read(path) as f:
        t = pq.ParquetFile(f).read_row_group(unit_index, columns=["id", BUCKETS, COUNTS])
    ok = np.asarray(t.column(BUCKETS).is_valid())
    if not ok.all():
        t = t.filter(pa.array(ok))
    return NgramCounts.from_arrow(t.column(BUCKETS), t.column(COUNTS), num_buckets), t.column("id")


class RawCountsOfUnit(beam.DoFn):
    """Budgeted raw bucket counts of one unit (see the module doc)."""

    def __init__(self, selector):
        self.selector = selector

    def process(self, task):
        occ, _ = read_ngram_unit(task.files["dsir_ngrams"], task.unit, self.selector.featurizer.num_buckets)
        if self.selector.fit_budget is None:
            yield occ.total_counts()
        else:
            counts, _ = self.selector.raw_counts_from_counts(occ, int(task.already))
            yield counts


def target_counts(table: pa.Table, selector) -> np.ndarray:
    from lmsieve.schemas.document import text_array

    text_array(table)  # raises InputError on a null text, like the API's validation
    return selector.featurizer.transform(table).total_counts()


def fit_dsir(raw: np.ndarray, target: np.ndarray, selector):
    """A fitted copy of ``selector`` (DSIR) from the two count vectors."""
    from lmsieve.selectors.dsir import DSIR

    sel = DSIR(**selector.get_params())
    return sel.fit_counts(raw, [target])


class FitDsir(beam.PTransform):
    """(fit units as a task-list file, target paths) -> PCollection with one fitted DSIR (use as a singleton)."""

    def __init__(self, selector, fit_tasks_path: str, target_paths: list[str]):
        super().__init__()
        self.selector, self.fit_tasks_path, self.target_paths = selector, fit_tasks_path, target_paths

    def expand(self, p):
        from apache_beam.io.parquetio import ReadAllFromParquetBatched

        from lmsieve.pipelines.features_job import ReadTasks, distribute, unit_key

        B = self.selector.featurizer.num_buckets
        sel = self.selector
        raw = (distribute(p | "FitUnits" >> ReadTasks(self.fit_tasks_path), "SpreadFit", key=unit_key)
               | "RawCounts" >> beam.ParDo(RawCountsOfUnit(sel))
               | "SumRaw" >> beam.CombineGlobally(VectorSum(B)))
        tgt = (p | "TargetFiles" >> beam.Create(self.target_paths)
               | "ReadTarget" >> ReadAllFromParquetBatched(columns=["text"])
               | "TargetCounts" >> beam.Map(target_counts, sel)
               | "SumTarget" >> beam.CombineGlobally(VectorSum(B)))
        return raw | "Fit" >> beam.Map(fit_dsir, beam.pvalue.AsSingleton(tgt), sel)


__all__ = ["FitDsir", "RawCountsOfUnit", "VectorSum", "fit_dsir", "read_ngram_unit"]
