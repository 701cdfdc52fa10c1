"""Pieces of the Beam jobs without a pipeline: units, shard names, row validation, exact cutoffs."""
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import scatter, validate_rows
from lmsieve.pipelines.global_select import (ALL, NONE, Band, Cutoff, Scored, band_inputs, boundaries, budget_kind,
                                             exact_cutoff, hist_inputs, locate, trivial_cutoff)
from lmsieve.sampling.select import Budget, rank, take_budget


def _footer(rows_per_group: list[int], width: int = 100) -> pq.FileMetaData:
    buf = io.BytesIO()
    n = sum(rows_per_group)
    t = pa.table({"id": [str(i) for i in range(n)], "text": ["x" * width] * n})
    with pq.ParquetWriter(buf, t.schema) as w:
        s = 0
        for r in rows_per_group:
            w.write_table(t.slice(s, r), row_group_size=r)
            s += r
    buf.seek(0)
    return pq.ParquetFile(buf).metadata


def test_units_coalesce_row_groups():
    md = _footer([10, 10, 10, 5, 30])
    units = fileio.plan_units(md, target_bytes=1 << 40, max_rows=25)
    assert [(u.rg_start, u.rg_stop, u.row_start, u.row_stop) for u in units] == [(0, 2, 0, 20), (2, 4, 20, 35), (4, 5, 35, 65)]
    assert [u.index for u in units] == [0, 1, 2]
    one = fileio.plan_units(md, target_bytes=1 << 40, max_rows=1000)
    assert len(one) == 1 and one[0].rows == 65
    assert fileio.plan_units(_footer([])) == []


def test_shard_names_are_relative_and_deterministic():
    paths = ["/d/pool/a/x.parquet", "/d/pool/b/x.parquet", "/d/pool/c.parquet"]
    assert fileio.shard_names(paths) == ["a__x", "b__x", "c"]
    assert fileio.shard_names(["gs://b/p/s-0.parquet", "gs://b/p/s-1.parquet"]) == ["s-0", "s-1"]


def test_validate_rows_flags_each_problem_once():
    t = pa.table({"id": ["a", None, "c", "a", "e"], "text": ["t", "t", None, "t", "t"]})
    valid, why = validate_rows(t)
    assert valid.tolist() == [True, False, False, False, True]
    assert why == {"null id": 1, "null text": 1, "duplicate id": 1}
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(np.array([0, 2, 4], np.int32).tobytes()),
                                                 pa.py_buffer(b"ok\xff\xfe")])
    valid, why = validate_rows(pa.table({"id": ["x", "y"], "text": bad}))
    assert valid.tolist() == [True, False] and why == {"invalid UTF-8 in text": 1}
    assert scatter(pa.array([1, 2]), np.array([True, False, True])).to_pylist() == [1, None, 2]


def _scored(key, tb, w, elig, group) -> Scored:
    n = len(key)
    return Scored(0, 0, 0, n, np.arange(n, dtype=np.int32), [str(i) for i in range(n)], key.copy(), elig, key, tb,
                  w, w, np.full(n, None, dtype=object), group)


@pytest.mark.parametrize("seed", range(6))
def test_band_pass_gives_the_exact_prefix_whatever_the_boundaries(seed):
    """The exact cutoff from (boundaries, exact histogram, band) equals rank + take_budget, with ties
    in the keys, zero weights, and boundaries that are poor quantiles."""
    rng = np.random.default_rng(seed)
    n = 700
    key = np.round(rng.normal(size=n), 1)  # many ties
    tb = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    w = rng.integers(0, 50, size=n).astype(np.int64)
    elig = rng.random(n) > 0.1
    key = np.where(elig, key, -np.inf)
    parts = [slice(0, 250), slice(250, 251), slice(251, n)]  # units
    units = [_scored(key[s], tb[s], w[s], elig[s], np.full(len(key[s]), "", dtype=object)) for s in parts]
    order = rank(key, tb)
    for b in (Budget(k=int(rng.integers(1, 600))), Budget(fraction=float(rng.random())),
              Budget(length_fraction=float(rng.random())), Budget(k=0), Budget(k=10_000), Budget(length_fraction=1.0)):
        ref = np.sort(take_budget(order, b, n_total=n, lengths=w))
        kind = budget_kind(b)
        totals = np.array([n, w.sum(), elig.sum(), w[elig].sum()])
        c = trivial_cutoff(b, totals)
        if c is None:
            bounds = boundaries(rng.choice(key[elig], size=int(rng.integers(1, 9))))
            hist = sum(h for u in units for _, h in hist_inputs(u, {"": kind}, {"": bounds}))
            band = locate(b, totals, hist)
            got = [x for u in units for _, x in band_inputs(u, {"": band}, {"": bounds})]
            c = exact_cutoff(band, got)
        sel = np.flatnonzero(c.mask(key, tb, key, elig))
        assert sel.tolist() == ref.tolist(), (b, c)
    assert trivial_cutoff(Budget(k=3), None) == Cutoff(NONE)
    assert trivial_cutoff(Budget(k=10**6), np.array([5, 5, 5, 5])) == Cutoff(ALL)
    assert isinstance(Band(0, 0.0, 1.0, "count"), Band)
