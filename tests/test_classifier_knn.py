"""``classifier`` (fastText target vs pool) and ``knn`` (window embeddings, best cosine).

Checked against things the code under test does not produce: a brute-force knn score (every
window embedded on its own, the max cosine over examples and windows by a Python loop); the same
selection from the in-process API and from the Beam features + selection jobs (FnApiRunner,
units of 20 rows, so per-unit scoring and, for the round-robin, the cross-unit merge really run);
saved fits scoring identically after reload; two fits with one seed giving one model; the feature
store embedding a pool once for two targets.
"""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _beam_fitted import beam_select_fitted
from _proxy_fixture import one_thread  # noqa: F401
from conftest import pool_slice, target_set
from test_beam_select import selected_ids, write_shards

import lmsieve
from lmsieve.api import fit_and_score, fit_selector, run_selection
from lmsieve.features.windows import cut_windows
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import hash_target_files, read_target, selector_class
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.options import make_options
from lmsieve.pipelines.round_robin import stored_feature
from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
from lmsieve.sampling.select import Budget
from lmsieve.selectors.base import Selector

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def small(tmp_path_factory, one_thread):  # noqa: F811
    root = tmp_path_factory.mktemp("clf_knn")
    t = pool_slice(80)
    pool = t.set_column(t.schema.get_field_index("text"), "text",
                        pa.array([s[:900] for s in t.column("text").to_pylist()])).select(["id", "text", "domain"])
    target = target_set("humaneval").slice(0, 6).select(["id", "text"])
    mp = pytest.MonkeyPatch()
    mp.setattr(fileio, "UNIT_MAX_ROWS", 20)
    yield root, pool, target
    mp.undo()


# -- classifier -------------------------------------------------------------------------------
@pytest.mark.slow
def test_classifier_is_deterministic_saves_and_matches_beam(small, tmp_path):
    root, pool, target = small
    big_pool = pool_slice(400).select(["id", "text"])
    tgt = target_set("humaneval").slice(0, 40).select(["id", "text"])
    a = fit_selector("classifier", tgt, big_pool, bucket=5000, seed=3)
    b = fit_selector("classifier", tgt, big_pool, bucket=5000, seed=3)
    sa = a.score(pool)
    np.testing.assert_array_equal(sa, b.score(pool))  # one seed, one model
    assert a.n_positive_ == a.n_negative_ == 40 and 0 <= sa.min() and sa.max() <= 1 and sa.std() > 0
    d = a.save(tmp_path / "fit")
    rows = len(a.model_.get_words()) + 5000  # the model file is (vocabulary + bucket) x dim float32
    assert (tmp_path / "fit" / "classifier_fasttext.bin").stat().st_size < rows * 100 * 4 * 1.05 + 1_000_000
    for back in (Selector.load(d), selector_class("classifier").load(d),
                 selector_class("classifier")(fitted=str(d)).fit(None)):
        np.testing.assert_array_equal(back.score(pool), sa)
    ref = run_selection(a, pool, Budget(k=12), seed=5).selected.column("id").to_pylist()
    ids = beam_select_fitted(tmp_path, "classifier", str(d), pool, tgt, 50, Budget(k=12), 5)
    assert len(ref) == 12 and ids == ref
    # window mode (negatives windowed too) also saves and reloads
    w = fit_selector("classifier", tgt, big_pool, bucket=5000, seed=3, unit="window", negative_unit="window")
    dw = w.save(tmp_path / "fitw")
    np.testing.assert_array_equal(Selector.load(dw).score(pool), w.score(pool))


def test_classifier_finds_python_for_humaneval(small):
    pool = pool_slice(1500).select(["id", "text", "domain"])
    tgt = target_set("humaneval").slice(0, 40).select(["id", "text"])
    _, s, _ = fit_and_score("classifier", tgt, pool, bucket=20_000)
    top = np.argsort(-s, kind="stable")[:30]
    dom = np.asarray(pool.column("domain").to_pylist(), dtype=object)
    assert np.mean(dom[top] == "code_python") >= 0.8  # base rate ~0.1


# -- knn --------------------------------------------------------------------------------------
def test_knn_equals_brute_force_windows(small):
    from lmsieve.features.embeddings import Embedder

    _, pool, target = small
    docs = pool.slice(0, 6)
    sel, s, e = fit_and_score("knn", target, docs, window=300)
    emb = Embedder(None, device="cpu")
    q = emb.encode(target.column("text").to_pylist(), side="query")
    w = cut_windows(docs, 300, 0.5)
    for i in range(docs.num_rows):
        best = -np.inf
        for t in np.array(w.texts.to_pylist(), dtype=object)[w.doc == i]:
            v = emb.encode([t])[0].astype(np.float16).astype(np.float64)
            best = max(best, float(np.max(q.astype(np.float64) @ v)))
        assert s[i] == pytest.approx(best, abs=2e-6)
    doc_mode = fit_and_score("knn", target, docs, unit="doc")[1]
    assert np.all(s >= doc_mode - 0.05)  # a document's best window is at least about as close as the whole


def _beam_knn(root, tag, pool, target, params, budget, seed):
    tpath = root / f"{tag}-target.parquet"
    pq.write_table(target, tpath)
    pool_dir = write_shards(pool, root / tag / "pool", 30, 10)
    opts = make_options(["--runner=FnApiRunner"])
    sel = selector_class("knn")(**params).fit(read_target([str(tpath)]))
    feat, out = str(root / tag / "feat"), root / tag / "out"
    run_features_job(pool_dir, feat, [stored_feature(sel, hash_target_files([str(tpath)]))], options=opts,
                     progress_secs=0)
    cfg = SelectionConfig(method="knn", params=params, budget=budget, seed=seed, num_quantiles=5)
    m = run_selection_job(pool_dir, feat, [str(tpath)], str(out), cfg, options=opts, progress_secs=0)
    return selected_ids(m, out)


@pytest.mark.slow
@pytest.mark.parametrize("params", [{"window": 400}, {"window": 400, "round_robin": True, "per_query_k": 4}])
def test_knn_api_equals_beam_and_reloads(small, params, tmp_path):
    root, pool, target = small
    tag = "rr" if params.get("round_robin") else "max"
    ids = _beam_knn(root, tag, pool, target, params, Budget(k=15), seed=2)
    ref = lmsieve.select(pool, "knn", target, keep=15, seed=2, **params).column("id").to_pylist()
    assert len(ref) == 15 and ids == ref
    sel = fit_selector("knn", target, **params)
    d = sel.save(tmp_path / "knn")
    back = Selector.load(d)
    np.testing.assert_array_equal(back.queries_, sel.queries_)
    np.testing.assert_array_equal(back.score(pool), sel.score(pool))
    if params.get("round_robin"):  # the round-robin really ran: picks scored 0, -1, -2, ...
        s = np.sort(lmsieve.score(pool, "knn", target, **params))[::-1]
        assert s[0] == 0 and s[1] == -1 and s[-1] < -len(target)


def test_knn_store_embeds_the_pool_once_for_two_targets(small, tmp_path, monkeypatch):
    from lmsieve.selectors import knn

    _, pool, target = small
    pool = pool.slice(0, 30)
    calls = []
    orig = knn.WindowEmbedder.__call__
    monkeypatch.setattr(knn.WindowEmbedder, "__call__", lambda self, b: calls.append(len(b)) or orig(self, b))
    store = str(tmp_path / "store")
    a = lmsieve.score(pool, "knn", target, window=400, store=store)
    other = target_set("heldout_code_python").slice(0, 3).select(["id", "text"])
    b = lmsieve.score(pool, "knn", other, window=400, store=store)
    assert sum(calls) == 30  # the second target reused every stored window embedding
    np.testing.assert_array_equal(a, lmsieve.score(pool, "knn", target, window=400))  # store = no store
    assert not np.array_equal(a, b)


# -- datatrove ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method,params", [("classifier", {"bucket": 2000}),
                                           ("dsir", {"unit": "window", "per_ngram": True, "num_buckets": 2048})])
def test_datatrove_scorer_runs_saved_window_and_classifier_fits(small, method, params, tmp_path):
    pytest.importorskip("datatrove")
    from datatrove.data import Document

    from lmsieve.integrations.datatrove import LmsieveScorer

    _, pool, _ = small
    tgt = target_set("humaneval").slice(0, 30).select(["id", "text"])
    sel = fit_selector(method, tgt, pool_slice(300).select(["id", "text"]), **params)
    d = sel.save(tmp_path / "sel")
    docs = [Document(text=r["text"], id=r["id"], metadata={}) for r in pool.select(["id", "text"]).to_pylist()]
    out = list(LmsieveScorer(str(d), batch_size=23).run(iter(docs)))
    np.testing.assert_array_equal([x.metadata["lmsieve_score"] for x in out], sel.score(pool))
