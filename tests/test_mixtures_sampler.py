"""Mixture spec and sampler: budgets, reproducibility, shortfalls, TOML errors."""
import numpy as np
import pytest

from lmsieve.mixtures import ShortfallError, load_spec, sample_mixture
from lmsieve.schemas.errors import ConfigError


def _pool(n=3000, seed=0):
    rng = np.random.Generator(np.random.PCG64(seed))
    ids = [f"d{i}" for i in range(n)]
    comp = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    lens = rng.integers(50, 2000, n)
    scores = rng.normal(size=n)
    return ids, comp, lens, scores


@pytest.mark.parametrize("ranking", ["random", "top", "gumbel"])
def test_budget_within_one_document_per_component(ranking):
    ids, comp, lens, scores = _pool()
    w = {"a": 0.2, "b": 0.5, "c": 0.3}
    budget = 600_000
    s = sample_mixture(ids, comp, lens, w, budget, scores=scores, ranking=ranking, seed=3)
    for c, share in w.items():
        got = lens[s.indices][comp[s.indices] == c].sum()
        quota = share * budget
        max_doc = lens[comp == c].max()
        assert quota <= got < quota + max_doc, (c, got, quota)
    assert budget <= lens[s.indices].sum() < budget + 3 * lens.max()


def test_same_seed_same_sample_and_order_independent():
    ids, comp, lens, scores = _pool()
    w = {"a": 0.4, "b": 0.4, "c": 0.2}
    a = sample_mixture(ids, comp, lens, w, 300_000, seed=7)
    b = sample_mixture(ids, comp, lens, w, 300_000, seed=7)
    assert np.array_equal(a.indices, b.indices)
    perm = np.random.Generator(np.random.PCG64(1)).permutation(len(ids))
    c = sample_mixture([ids[i] for i in perm], comp[perm], lens[perm], w, 300_000, seed=7)
    assert sorted(ids[i] for i in a.indices) == sorted(ids[perm[i]] for i in c.indices)
    d = sample_mixture(ids, comp, lens, w, 300_000, seed=8)
    assert not np.array_equal(a.indices, d.indices)


def test_top_ranking_takes_best_scores_first():
    ids, comp, lens, scores = _pool()
    s = sample_mixture(ids, comp, lens, {"a": 1.0}, 100_000, scores=scores, ranking="top")
    picked = np.zeros(len(ids), bool); picked[s.indices] = True
    a = comp == "a"
    assert scores[picked & a].min() >= scores[~picked & a].max()


def test_shortfall_error_and_redistribute():
    ids, comp, lens, _ = _pool()
    have_c = lens[comp == "c"].sum()
    budget = 1.2 * have_c / 0.5  # c would need 1.2x what it has
    with pytest.raises(ShortfallError, match="'c'"):
        sample_mixture(ids, comp, lens, {"a": 0.25, "b": 0.25, "c": 0.5}, budget)
    s = sample_mixture(ids, comp, lens, {"a": 0.25, "b": 0.25, "c": 0.5}, budget, redistribute=True)
    assert lens[s.indices][comp[s.indices] == "c"].sum() == have_c
    assert lens[s.indices].sum() >= budget
    with pytest.raises(ShortfallError):
        sample_mixture(ids, comp, lens, {"zzz": 1.0}, 10)


def test_toml_spec_errors_name_the_key(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[mixture]\nweights = {a = 1, b = 3}\nbudget = 1000\nunit = "chars"\n')
    spec = load_spec(p)
    assert spec.weights == {"a": 0.25, "b": 0.75}
    p.write_text('[mixture]\nweights = {a = -1}\nbudget = 1000\n')
    with pytest.raises(ConfigError, match="mixture.weights.a"):
        load_spec(p)
    p.write_text('[mixture]\nweights = {a = 1}\nbudgett = 1000\nbudget = 5\n')
    with pytest.raises(ConfigError, match="mixture.budgett"):
        load_spec(p)
    p.write_text('[mixture]\nweights = {a = 1}\nbudget = 5\nranking = "top"\n')
    with pytest.raises(ConfigError, match="score_column"):
        load_spec(p)
