"""BETR: rank computation, max vs mean aggregation, balanced labels, token threshold, fastText AUC."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import pool_slice, target_set

from lmsieve.api import fit_and_score, run_selection
from lmsieve.sampling.select import Budget
from lmsieve.selectors.betr import Betr, balanced_labels, best_ranks, rank_scores, token_threshold, topk_lists


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute_ranks(q, d):
    s = q.astype(np.float64) @ d.T.astype(np.float64)
    return 1 + (s[:, None, :] > s[:, :, None]).sum(axis=2)  # (Q, N): 1 + #documents strictly better


def test_topk_ranks_equal_brute_force_200_by_50():
    rng = np.random.default_rng(0)
    q, d = _unit(rng.normal(size=(50, 16))), _unit(rng.normal(size=(200, 16)))
    brute = _brute_ranks(q, d)
    _, idx = topk_lists(q, d, 30)
    for i in range(50):
        assert [brute[i, j] for j in idx[i]] == list(range(1, 31))
    best, best_cos, k, _ = best_ranks(q, d, 0.1)
    true_best = brute.min(axis=0)
    inside = true_best <= k
    assert inside.sum() >= 20  # the union of the top-k lists covers 10% of the documents
    np.testing.assert_array_equal(best[inside], true_best[inside])
    assert np.all(best[~inside] == k + 1)
    sims = q @ d.T
    j = np.flatnonzero(inside)[0]
    assert best_cos[j] == pytest.approx(sims[brute[:, j] == true_best[j], j].max(), abs=1e-6)


def test_single_example_neighbour_is_top_decile_under_max_not_mean():
    rng = np.random.default_rng(1)
    a, b = np.eye(32)[0], np.eye(32)[1]
    examples = _unit(np.vstack([b, a + 0.01 * rng.normal(size=(19, 32))]))  # example 0 alone at b
    docs = _unit(a + 0.3 * rng.normal(size=(200, 32)))
    docs[7] = _unit(b[None] + 0.01 * rng.normal(size=(1, 32)))[0]  # next to example 0 only
    for agg, in_top in (("max", True), ("mean", False)):
        _, tie, _, (_, idx) = best_ranks(examples, docs, 0.1, per_list=agg == "mean")
        label = rank_scores(idx, len(docs), agg)
        top = np.lexsort((-tie, -label))[:20]
        assert (7 in top) is in_top, agg


def test_labels_are_balanced_one_to_one():
    rng = np.random.default_rng(2)
    score, tie = rng.integers(0, 50, 1000).astype(float), rng.random(1000)
    pos, neg = balanced_labels(score, tie, [f"d{i}" for i in range(1000)], 0.1, seed=0)
    assert len(pos) == len(neg) == 100 and not set(pos) & set(neg)
    assert score[pos].min() >= score[neg].max()
    # the negatives are a hash-chosen subset of the bottom 90%, not the next 100 by score
    assert score[neg].mean() < np.sort(score)[-200:-100].mean()


def test_token_fraction_is_kept_not_document_fraction():
    rng = np.random.default_rng(3)
    tokens = np.maximum(1, rng.lognormal(4, 1.5, 5000)).astype(np.int64)  # skewed lengths
    scores = np.log(tokens) + rng.normal(0, 0.5, 5000)  # long documents score higher
    for frac in (0.05, 0.1, 0.3):
        kept = scores >= token_threshold(scores, tokens, frac)
        assert abs(tokens[kept].sum() / tokens.sum() - frac) <= 0.01
        assert abs(kept.mean() - frac) > 0.02


def _auc(y, s):
    r = np.argsort(np.argsort(s)) + 1.0
    n1 = y.sum()
    return (r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1))


@pytest.fixture(scope="module")
def two_domains():
    t = pool_slice(3000)
    t = t.filter(pc.is_in(t.column("domain"), value_set=pa.array(["math", "literature"])))
    t = t.set_column(1, "text", pa.array([s[:400] for s in t.column("text").to_pylist()]))
    return t.slice(0, 200), t.slice(200, 200), target_set("heldout_math").slice(0, 40)


PARAMS = dict(max_seq_length=64, bucket=50_000, seed=4)


@pytest.fixture(scope="module")
def fitted(two_domains):
    sample, _, target = two_domains
    return Betr(**PARAMS).fit(target, sample)


def test_fasttext_propagation_auc_and_save_load(two_domains, fitted, tmp_path):
    _, held, _ = two_domains
    assert fitted.n_positive_ == fitted.n_negative_ == 18  # 10% of the 180 non-held-out sample documents
    s, e = fitted.score_and_mask(held)
    y = np.array(held.column("domain").to_pylist()) == "math"
    assert _auc(y, s) > 0.9
    back = Betr.load(fitted.save(tmp_path / "betr"))
    np.testing.assert_array_equal(back.score_and_mask(held)[0], s)
    assert back.threshold_ == fitted.threshold_ and np.array_equal(back.score_and_mask(held)[1], e)


def test_same_seed_same_selection_through_the_api(two_domains, fitted):
    sample, _, target = two_domains
    sel, s, e = fit_and_score("betr", target, sample, **PARAMS)  # refit from scratch, pool = sample
    ref_s, ref_e = fitted.score_and_mask(sample)
    np.testing.assert_array_equal(s, ref_s)
    picks = [run_selection(sel, sample, Budget(fraction=0.05), seed=9, scores=x, eligible=y).indices.tolist()
             for x, y in ((s, e), (ref_s, ref_e))]
    assert len(picks[0]) > 0 and picks[0] == picks[1]


def test_optimal_keep_fraction_follows_the_papers_formula():
    from lmsieve.schemas.errors import ConfigError
    from lmsieve.selectors.betr import optimal_keep_fraction

    # F_opt(C) = 4e-5 * C^0.25 percent of tokens (spec selection-methods-b.md section 1)
    assert optimal_keep_fraction(1e20) == pytest.approx(0.04, rel=1e-9)          # 4e-5 * 1e5 %
    assert optimal_keep_fraction(1e23) == pytest.approx(0.2249, rel=1e-3)        # 4e-5 * 10^5.75 %
    assert optimal_keep_fraction(1e16) == pytest.approx(0.004, rel=1e-9)
    # the spec's rounded anchors (3% at 1e20, 30% at 1e23) within a factor 1.4
    assert 0.03 / 1.4 < optimal_keep_fraction(1e20) < 0.03 * 1.4
    assert 0.30 / 1.4 < optimal_keep_fraction(1e23) < 0.30 * 1.4
    assert optimal_keep_fraction(1e40) == 1.0
    with pytest.raises(ConfigError):
        optimal_keep_fraction(0)
    from lmsieve.cli.select_cmd import method_notes

    assert "betr: token_fraction=F" in method_notes() and "4e-5*C^0.25" in method_notes()  # lmsieve select --help
