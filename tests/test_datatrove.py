"""datatrove integration: lmsieve steps in datatrove, datatrove's stages before lmsieve.

References: the selector's own ``score``/``score_and_mask`` and lmsieve's threshold selection
(``run_selection``) for the steps; datatrove's ``GopherQualityFilter`` run directly for the
prefilter; planted near-duplicates for MinHash; all three for the ``jobs/`` example.
"""
import json
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SHARED_DATA, pool_slice, target_set

pytest.importorskip("datatrove")
from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import GopherQualityFilter  # noqa: E402

from lmsieve.api import fit_selector, run_selection  # noqa: E402
from lmsieve.cli.main import main  # noqa: E402
from lmsieve.integrations.datatrove import (  # noqa: E402
    QUALITY_FILTERS,
    LmsieveFilter,
    LmsieveScorer,
    run_prefilter,
    threshold_for_fraction,
)
from lmsieve.io.inputs import load_docs  # noqa: E402
from lmsieve.sampling.select import Budget  # noqa: E402
from lmsieve.schemas.errors import ConfigError, InputError  # noqa: E402
from lmsieve.selectors.base import Selector  # noqa: E402

TARGET = "heldout_literature"


@pytest.fixture(scope="module")
def small_pool() -> pa.Table:
    """The 100 shortest of the first 400 pool documents (Gopher's spaCy tokenizer is slow on long
    ones), in pool order, plus one under-100-word document DSIR finds ineligible."""
    t = pool_slice(400)
    lens = pc.utf8_length(t.column("text")).to_numpy()
    t = t.take(np.sort(np.argsort(lens, kind="stable")[:100]))
    extra = pa.table({c: [{"id": "tiny", "text": "a short note about the law of the land"}.get(c, "x")]
                      for c in t.column_names}, schema=t.schema)
    return pa.concat_tables([t, extra]).combine_chunks()


@pytest.fixture(scope="module")
def dsir():
    return fit_selector("dsir", target_set(TARGET), pool=pool_slice(1000, ("id", "text")))


@pytest.fixture(scope="module")
def pool_dir(small_pool, tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("pool")
    pq.write_table(small_pool.slice(0, 50), d / "part-0.parquet")
    pq.write_table(small_pool.slice(50), d / "part-1.parquet")
    return str(d)


@pytest.fixture(scope="module")
def gopher_direct(small_pool) -> dict:
    """id -> datatrove GopherQualityFilter's own verdict (True or its drop reason)."""
    f = GopherQualityFilter()
    out = {}
    for row in small_pool.select(["id", "text"]).to_pylist():
        r = f.filter(Document(text=row["text"], id=row["id"]))
        out[row["id"]] = r if r is True else r[1]
    return out


def _docs(table: pa.Table) -> list:
    return [Document(text=r["text"], id=r["id"], metadata={}) for r in table.select(["id", "text"]).to_pylist()]


# -- scorer and filter ------------------------------------------------------------------------------
def test_scorer_scores_equal_selector_scores(small_pool, dsir, tmp_path):
    want_s, want_e = dsir.score_and_mask(small_pool)
    step = LmsieveScorer(dsir, batch_size=37)  # batches do not divide the stream evenly
    out = list(step.run(iter(_docs(small_pool))))
    assert [d.id for d in out] == small_pool.column("id").to_pylist()
    got = np.array([d.metadata["lmsieve_score"] for d in out])
    np.testing.assert_array_equal(got, dsir.score(small_pool))
    np.testing.assert_array_equal([d.metadata["lmsieve_eligible"] for d in out], want_e)
    assert step.stats["scored"].total == len(out) and step.stats["ineligible"].total == int((~want_e).sum()) >= 1
    # from a saved selector directory: the same scores
    dsir.save(tmp_path / "sel")
    out2 = list(LmsieveScorer(str(tmp_path / "sel"), score_key="s").run(iter(_docs(small_pool))))
    np.testing.assert_array_equal([d.metadata["s"] for d in out2], want_s)


def test_scorer_needs_a_fitted_selector():
    from lmsieve.selectors.dsir import DSIR

    with pytest.raises(Exception, match="not fitted"):
        LmsieveScorer(DSIR())
    with pytest.raises(ConfigError):
        LmsieveScorer(object())


@pytest.mark.parametrize("self_scoring", [False, True])
def test_filter_keeps_exactly_the_documents_at_or_above_threshold(small_pool, dsir, self_scoring):
    scores, eligible = dsir.score_and_mask(small_pool)
    t = float(np.median(scores[eligible]))
    ids = np.array(small_pool.column("id").to_pylist())
    # reference: lmsieve's own threshold selection (what `lmsieve select --threshold` keeps)
    ref = set(ids[run_selection(dsir, small_pool, Budget(threshold=t), scores=scores, eligible=eligible).indices])
    assert ref == set(ids[eligible & (scores >= t)]) and 0 < len(ref) < len(ids)
    if self_scoring:
        step, docs = LmsieveFilter(t, selector=dsir, batch_size=16), _docs(small_pool)
    else:
        docs = list(LmsieveScorer(dsir).run(iter(_docs(small_pool))))
        step = LmsieveFilter(t)
    kept = [d.id for d in step.run(iter(docs))]
    assert set(kept) == ref and kept == [i for i in ids if i in ref]  # stream order kept
    st = {k: v.total for k, v in step.stats.stats.items()}
    assert st["total"] == len(ids) == st["forwarded"] + st["dropped"]
    assert st["forwarded"] == len(ref)
    assert st["dropped_ineligible"] == int((~eligible).sum()) >= 1
    assert st["dropped_below_threshold"] == int((eligible & (scores < t)).sum())


def test_filter_reasons_from_metadata_and_missing_score():
    docs = [Document(text="x", id=str(i), metadata=m) for i, m in enumerate([
        {"lmsieve_score": 2.0, "lmsieve_eligible": True}, {"lmsieve_score": 0.5},
        {"lmsieve_score": float("nan")}, {"lmsieve_score": 9.0, "lmsieve_eligible": False},
        {"lmsieve_score": 1.0}])]
    step = LmsieveFilter(1.0)
    assert [d.id for d in step.run(iter(docs))] == ["0", "4"]
    st = {k: v.total for k, v in step.stats.stats.items()}
    assert (st["dropped_below_threshold"], st["dropped_nonfinite_score"], st["dropped_ineligible"]) == (1, 1, 1)
    low = LmsieveFilter(1.0, higher_is_better=False)
    assert [d.id for d in low.run(iter(docs[:2] + docs[4:]))] == ["1", "4"]
    with pytest.raises(InputError, match="no metadata 'lmsieve_score'"):
        list(LmsieveFilter(0.0).run(iter([Document(text="x", id="a", metadata={"file_path": "f.parquet"})])))


def test_threshold_for_fraction_matches_topk_selection(small_pool, dsir):
    t = threshold_for_fraction(dsir, small_pool, 0.25)
    scores, eligible = dsir.score_and_mask(small_pool)
    assert int((eligible & (scores >= t)).sum()) == math.floor(0.25 * small_pool.num_rows)
    with pytest.raises(ConfigError):
        threshold_for_fraction(dsir, small_pool, 1.5)


# -- prefilter ------------------------------------------------------------------------------------
def test_prefilter_gopher_drops_what_datatrove_drops(pool_dir, small_pool, gopher_direct, tmp_path):
    out = tmp_path / "pre"
    report = run_prefilter(pool_dir, str(out), filters=["gopher"], tasks=2)
    got, _ = load_docs(str(out))  # what `lmsieve select --pool OUT` reads, validated
    want = {i for i, v in gopher_direct.items() if v is True}
    assert set(got.column("id").to_pylist()) == want and 0 < len(want) < small_pool.num_rows
    reasons = Counter(v for v in gopher_direct.values() if v is not True)
    assert report.dropped == {"gopher": dict(reasons)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["output_rows"] == len(want) and manifest["input_rows"] == small_pool.num_rows
    assert manifest["input_rows"] == manifest["skipped_empty_text"] + sum(reasons.values()) + manifest["output_rows"]
    # every input column comes back untouched
    ref = small_pool.filter(pc.is_in(small_pool.column("id"), pa.array(sorted(want)))).sort_by("id")
    assert got.select(small_pool.column_names).sort_by("id").equals(ref)
    assert (out / "datatrove_logs" / "filter" / "stats.json").exists()


def test_prefilter_minhash_removes_planted_near_duplicates(tmp_path):
    base = pool_slice(120, ("id", "text"))
    chars = pc.utf8_length(base.column("text")).to_numpy()
    base = base.filter(pa.array((chars > 1500) & (chars < 6000))).slice(0, 24)
    originals = base.column("text").to_pylist()[:5]
    dups = pa.table({"id": [f"dup-{i}" for i in range(5)],
                     "text": [t.replace(" the ", " a ", 2) + "\nOne more line." for t in originals]})
    (tmp_path / "in").mkdir()
    pq.write_table(base, tmp_path / "in" / "a.parquet")
    pq.write_table(dups, tmp_path / "in" / "b.parquet")
    report = run_prefilter(str(tmp_path / "in"), str(tmp_path / "out"), filters=[], minhash=True, tasks=2)
    kept = set(load_docs(str(tmp_path / "out"))[0].column("id").to_pylist())
    ids = base.column("id").to_pylist()
    for i in range(5):  # exactly one of each planted pair survives
        assert (ids[i] in kept) + (f"dup-{i}" in kept) == 1
    assert set(ids[5:]) <= kept
    assert report.minhash_removed == 5 and report.output_rows == len(kept) == 24


def test_prefilter_cli_and_errors(pool_dir, tmp_path, capsys):
    from lmsieve.cli.prefilter_cmd import FILTER_NAMES

    assert FILTER_NAMES == tuple(QUALITY_FILTERS)
    assert main(["prefilter", "--input", pool_dir, "--out", str(tmp_path / "o"), "--filters", "fineweb",
                 "--filter-param", "fineweb.short_line_thr=0.9"]) == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["read"] == m["input_rows"] and m["filters"] == ["fineweb"] and "kept" in capsys.readouterr().out
    assert main(["prefilter", "--input", pool_dir, "--out", str(tmp_path / "x"), "--filters", "badwords"]) == 2
    assert "unknown prefilter 'badwords'" in capsys.readouterr().err
    # datatrove's reader skips empty texts: counted, not lost silently
    pq.write_table(pa.table({"id": ["e", "f"], "text": ["", "Fine text.\nAnother line here."]}), tmp_path / "e.parquet")
    r = run_prefilter(str(tmp_path / "e.parquet"), str(tmp_path / "eo"), filters=["fineweb"])
    assert (r.input_rows, r.read, r.skipped_empty_text) == (2, 1, 1)
    pq.write_table(pa.table({"id": ["a"], "body": ["b"]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=r"bad\.parquet.*missing required column 'text'"):
        run_prefilter(str(tmp_path / "bad.parquet"), str(tmp_path / "y"), filters=["gopher"])


# -- the jobs/ example ------------------------------------------------------------------------------
def test_example_job_runs_on_a_small_slice(pool_dir, small_pool, gopher_direct, tmp_path):
    out = tmp_path / "ex"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "datatrove_dsir.py"), "--pool", pool_dir,
         "--target", str(SHARED_DATA / "targets" / f"{TARGET}.parquet"), "--out", str(out),
         "--keep-fraction", "0.3", "--tasks", "2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    t = summary["threshold"]
    got = pq.read_table(sorted(str(p) for p in (out / "selected").glob("*.parquet")))
    assert got.num_rows > 0 and (pc.min(got.column("lmsieve_score")).as_py() >= t)
    # reference: Gopher's own verdicts, and the saved selector's scores against the threshold
    sel = Selector.load(out / "selector")
    scores, eligible = sel.score_and_mask(small_pool)
    ids = np.array(small_pool.column("id").to_pylist())
    gopher_ok = np.array([gopher_direct[i] is True for i in ids])
    assert set(got.column("id").to_pylist()) == set(ids[gopher_ok & eligible & (scores >= t)])
    by_id = dict(zip(ids, scores))
    np.testing.assert_array_equal(got.column("lmsieve_score").to_numpy(), [by_id[i] for i in got.column("id").to_pylist()])
    filt = next(v for k, v in summary["stats"].items() if "lmsieve threshold" in k)
    assert filt["total"] == int(gopher_ok.sum()) and filt["forwarded"] == got.num_rows
