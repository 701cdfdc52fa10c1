"""DSIR: identities from the spec, agreement with the data-selection package, real targeted selection."""
import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import pool_slice, target_set

import lmsieve
from lmsieve.api import make_budget, run_selection
from lmsieve.selectors.dsir import DSIR


def test_smoothing_identity():
    B, alpha = 50, 0.7
    rng = np.random.default_rng(0)
    raw = rng.integers(1, 100, size=B)
    tgt = rng.integers(0, 20, size=B)
    T = tgt.sum()
    d = DSIR(num_buckets=B, target_laplace_smoothing=alpha).fit_counts(raw, [tgt])
    p_target = (tgt / T * T + alpha) / (T + alpha * B)
    expected = np.log(p_target + 1e-8) - np.log(raw / raw.sum() + 1e-8)
    np.testing.assert_allclose(d.log_diff_[0], expected, rtol=1e-12)
    d0 = DSIR(num_buckets=B).fit_counts(raw, [tgt])
    np.testing.assert_allclose(d0.log_diff_[0], np.log(tgt / T + 1e-8) - np.log(raw / raw.sum() + 1e-8))


def test_score_is_unnormalised_dot_product():
    d = DSIR(num_buckets=10000, min_example_length=0).fit(["alice went to the store"], ["bob ran home", "alice"])
    s = d.score(["alice went", "alice went alice went"])
    ld = d.log_diff_[0]
    from lmsieve.features.ngrams import hash_bucket

    np.testing.assert_allclose(s[0], ld[6720] + ld[hash_bucket("went")] + ld[114])
    np.testing.assert_allclose(s[1], 2 * s[0] + ld[hash_bucket("went alice")])


def test_min_length_mask():
    pool = pa.table({"id": ["short", "long"], "text": ["word " * 99, "word " * 100]})
    d = DSIR().fit(["word word"], pool)
    _, eligible = d.score_and_mask(pool)
    assert list(eligible) == [False, True]
    got = lmsieve.select(pool, "dsir", ["word word"], keep=2, ranking="topk")
    assert got.column("id").to_pylist() == ["long"]  # ineligible never selected, even if k allows


def test_fit_budget_stops_after_the_crossing_document():
    texts = [f"w{i} " * 10 for i in range(6)]  # 10 unigrams + 9 bigrams = 19 features each
    d = DSIR(num_tokens_to_fit=40).fit(["w0"], texts)
    assert d.raw_counts_.sum() == 19 * 3  # 19, 38 (<= 40), 57 (> 40: included, then stop)


@pytest.mark.parametrize("budget", ["auto", 30_000])
def test_fit_score_equals_fit_then_score(budget):
    pool = pool_slice(400)
    target = target_set("heldout_manpages").slice(0, 30)
    a = DSIR(num_tokens_to_fit=budget).fit(target, pool)
    s1, e1 = a.score_and_mask(pool)
    b = DSIR(num_tokens_to_fit=budget)
    s2, e2 = b.fit_score(target, pool, batch_rows=64)  # batches cross the budget mid-way
    np.testing.assert_array_equal(a.raw_counts_, b.raw_counts_)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(e1, e2)


def test_separate_targets_allocation_and_masking():
    d = DSIR(separate_targets=True, target_proportions=[1, 2]).fit_counts(np.ones(10000), [np.ones(10000), np.ones(10000)])
    assert d.allocate(10) == [3, 7]  # floor(10/3)=3, remainder to the last
    texts = [("a b c " * 60) if i % 2 else ("x y z " * 60) for i in range(40)]
    pool = pa.table({"id": [f"d{i}" for i in range(40)], "text": texts})
    sel = DSIR(separate_targets=True).fit({"abc": ["a b c"], "xyz": ["x y z x y z"]}, pool)
    scores, elig = sel.score_and_mask(pool)
    assert scores.shape == (40, 2)
    res = run_selection(sel, pool, make_budget(10), seed=0, ranking="topk")
    assert len(res.indices) == len(set(res.indices.tolist())) == 10


def test_save_load_round_trip(tmp_path):
    pool = pool_slice(300)
    d = DSIR().fit(target_set("heldout_math").slice(0, 50), pool)
    d.save(tmp_path / "sel")
    meta = json.loads((tmp_path / "sel" / "selector.json").read_text())
    assert meta["method"] == "dsir" and meta["params"]["num_buckets"] == 10000
    from lmsieve.selectors.base import Selector

    d2 = Selector.load(tmp_path / "sel")
    np.testing.assert_array_equal(d2.score(pool), d.score(pool))


def _write_jsonl(path, texts):
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")


@pytest.mark.slow
def test_log_weights_equal_reference_package(tmp_path):
    """Exact agreement with data-selection's HashedNgramDSIR (same WordPunct tokenizer)."""
    from data_selection import HashedNgramDSIR

    pool = pool_slice(600)
    target = target_set("heldout_code_python").slice(0, 80)
    _write_jsonl(tmp_path / "raw.jsonl", pool.column("text").to_pylist())
    _write_jsonl(tmp_path / "target.jsonl", target.column("text").to_pylist())
    ref = HashedNgramDSIR([str(tmp_path / "raw.jsonl")], [str(tmp_path / "target.jsonl")],
                          cache_dir=str(tmp_path / "cache"), num_proc=1)
    ref.fit_importance_estimator(num_tokens_to_fit="auto")
    ref.compute_importance_weights()
    ref_w = np.load(tmp_path / "cache" / "log_importance_weights" / "0.npy")
    ref_len = np.load(tmp_path / "cache" / "perexample_metadata" / "0.npy")

    ours = DSIR().fit(target, pool)
    np.testing.assert_allclose(ours.log_diff_[0], ref.log_diff, rtol=0, atol=1e-12)
    w, eligible = ours.score_and_mask(pool)
    np.testing.assert_allclose(w, ref_w, rtol=1e-10, atol=1e-8)  # same sums, different order of addition
    np.testing.assert_array_equal(eligible, ref_len >= 100)
    np.testing.assert_array_equal(np.argsort(-w, kind="stable"), np.argsort(-ref_w, kind="stable"))


@pytest.mark.slow
@pytest.mark.parametrize("target,domain", [("heldout_code_python", "code_python"), ("heldout_legal", "legal")])
def test_targeted_selection_on_real_pool(target, domain):
    pool = pool_slice(6000)
    picked = lmsieve.select(pool, "dsir", target_set(target), keep=0.05, ranking="topk")
    assert picked.num_rows == 300
    precision = np.mean(np.array(picked.column("domain").to_pylist()) == domain)
    assert precision >= 0.9, precision
