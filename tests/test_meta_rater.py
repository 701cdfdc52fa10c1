"""Meta-rater: scaling, thresholds, weight search on hidden quality, RegMix on a quadratic bowl."""
import numpy as np
import pyarrow as pa
import pytest

from lmsieve.mixtures.baselines import regmix
from lmsieve.selectors import get_selector_class
from lmsieve.selectors.meta_rater import scale_0_5, scale_classes, search_weights, top_fraction_mask


def test_scaling_and_ties():
    X = np.array([[0.0, 3.0], [5.0, 3.0], [10.0, 3.0]])
    lo, hi = X.min(0), X.max(0)
    assert np.allclose(scale_0_5(X, lo, hi), [[0, 0], [2.5, 0], [5, 0]])  # constant -> 0
    assert np.allclose(scale_0_5(np.array([[20.0, 1.0]]), lo, hi), [[5.0, 0.0]])  # stored stats, clipped
    assert np.allclose(scale_classes([0, 2, 5], 6), [0, 2, 5])
    assert np.allclose(scale_classes([[0.1, 0.9, 0.0]], 3), [2.5])
    s = np.array([1.0] * 10 + [2.0] * 10)
    assert top_fraction_mask(s, 0.15).sum() == 10  # ties at the threshold are kept


def test_search_puts_weight_on_hidden_quality_and_beats_uniform():
    rng = np.random.Generator(np.random.PCG64(5))
    Z = rng.normal(size=(4000, 25))
    q = Z[:, 3] + Z[:, 17]
    Xs = scale_0_5(Z, Z.min(0), Z.max(0))

    def proxy_loss(W):  # −(mean hidden quality of the top 15 % under w) + noise
        S = Xs @ W.T
        m = S >= np.percentile(S, 85, axis=0)
        return -(q[:, None] * m).sum(0) / m.sum(0) + rng.normal(0, 0.01, len(W))

    w = search_weights(proxy_loss, 25, n_runs=256, n_candidates=50_000)["weights"]
    assert w[3] + w[17] > 0.5
    assert proxy_loss(w[None])[0] < proxy_loss(np.full((1, 25), 1 / 25))[0] - 0.5


def test_regmix_lands_near_bowl_optimum():
    pstar = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    rng = np.random.Generator(np.random.PCG64(3))
    out = regmix(lambda W: ((W - pstar) ** 2).sum(1) + rng.normal(0, 1e-3, len(W)), 5, n_runs=128, seed=3,
                 n_candidates=50_000)
    assert len(out["runs"]) == 128
    assert np.abs(out["weights"] - pstar).sum() < 0.2


def test_selector_user_columns_signs_and_save(tmp_path):
    rng = np.random.Generator(np.random.PCG64(0))
    good, bad = rng.normal(size=200), rng.normal(size=200)
    t = pa.table({"id": [str(i) for i in range(200)], "text": ["x"] * 200, "good": good, "bad": bad})
    cls = get_selector_class("meta_rater")
    sel = cls(score_columns=["good", "bad"], heuristics=False, dsir=False, weights={"good": 1, "bad": 1},
              signs={"bad": -1}).fit(None, t)
    s = sel.score(t)
    assert np.corrcoef(s, bad)[0, 1] < -0.3 and np.corrcoef(s, good)[0, 1] > 0.3
    again = cls.load(sel.save(tmp_path / "mr"))
    assert np.allclose(again.score(t.slice(0, 50)), s[:50])  # stored min–max statistics reused


def test_heuristic_signals_come_from_datatrove():
    from lmsieve.features.quality_signals import quality_signals

    sig = quality_signals(["Hello world. This is fine.\nAnother line!", "123 456 789"])
    assert sig["word.n_words"][1] == 3.0 and sig["word.n_words"][0] > 3.0
    assert sig["line.n_lines"].tolist() == [2.0, 1.0]
    assert sig["doc.digit_ratio"][1] > 0.5
