"""MATES: oracle probes (spec §4 CPU validation), influence head, Gumbel selection, API = Beam."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from _proxy_fixture import one_thread, tiny_proxy_dir  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.features.proxy_lm import load_proxy
from lmsieve.features.proxy_lm.train import lm_loss
from lmsieve.sampling.select import Budget, select
from lmsieve.selectors.mates import MATES, OracleProbe, fit_head


def docs(domain, n, max_chars=600):
    t = pool_slice(1500)
    t = t.filter(pc.equal(t.column("domain"), domain)).slice(0, n)
    return pc.utf8_slice_codeunits(t.column("text"), 0, max_chars).to_pylist()


@pytest.fixture(scope="module")
def probe(one_thread):  # noqa: F811
    lm = load_proxy(tiny_proxy_dir(), device="cpu", with_optimizer=True)
    ref = target_set("heldout_code_python").slice(0, 10)
    return OracleProbe(lm, ref, lr=3e-3, ref_windows=8)


def test_probe_does_not_depend_on_order(probe):
    cands = docs("code_python", 3) + docs("legal", 3)
    a = probe.probe(cands)
    b = probe.probe(cands[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == len(a)  # candidates do differ
    before = probe.ref_loss()
    assert before == OracleProbe(probe.lm, target_set("heldout_code_python").slice(0, 10), ref_windows=8).ref_loss()


def test_small_lr_matches_first_order_adam_prediction(probe):
    lm, lr = probe.lm, 1e-4
    probe.restore()
    x = docs("code_python", 1)[0]
    ids = probe.windows(x)  # the whole candidate (up to probe_tokens) as one batch of windows
    assert ids.shape[0] > 1
    params = dict(lm.model.named_parameters())

    def grads(windows):
        lm.model.zero_grad(set_to_none=True)
        lm_loss(lm, windows).backward()
        return {n: p.grad.detach().clone() for n, p in params.items()}

    g_x, g_ref = grads(ids), grads(probe.ref)
    state = lm.optimizer.state_dict()
    pid = {id(p): n for n, p in params.items()}
    pred = 0.0
    for group, sgroup in zip(lm.optimizer.param_groups, state["param_groups"]):
        b1, b2 = group["betas"]
        for p, idx in zip(group["params"], sgroup["params"]):
            n, st = pid[id(p)], state["state"][idx]
            t = float(st["step"]) + 1
            m = b1 * st["exp_avg"] + (1 - b1) * g_x[n]
            v = b2 * st["exp_avg_sq"] + (1 - b2) * g_x[n] ** 2
            upd = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"]) + group["weight_decay"] * p.detach()
            pred += float(-(lr * upd * g_ref[n]).double().sum())
    lm.model.zero_grad(set_to_none=True)
    base = probe.ref_loss()
    small = OracleProbe(lm, target_set("heldout_code_python").slice(0, 10), lr=lr, ref_windows=8, clip=None)
    actual = small.probe([x])[0] - base
    assert abs(pred) > 1e-4
    assert abs(actual - pred) <= 0.1 * abs(pred), (actual, pred)


def test_reference_distribution_candidates_lower_loss_after(probe):
    code, legal = docs("code_python", 6), docs("legal", 6)
    y = probe.probe(code + legal)
    assert y[:6].mean() < y[6:].mean()
    assert np.mean(y[:6, None] < y[None, 6:]) >= 0.8


def test_temperature_to_zero_is_bottom_k_and_head_learns():
    rng = np.random.default_rng(0)
    s = rng.normal(size=300)
    ids = pa.array([f"d{i}" for i in range(300)])
    got = select(s, ids, Budget(k=30), seed=3, ranking="gumbel", temperature=1e-12, higher_is_better=False)
    assert got.tolist() == np.argsort(s, kind="stable")[:30].tolist()
    warm = select(s, ids, Budget(k=30), seed=3, ranking="gumbel", temperature=0.5, higher_is_better=False)
    assert set(warm.tolist()) != set(got.tolist()) and s[warm].mean() < 0  # noisy, but still prefers low
    X = rng.normal(size=(400, 16))
    y = X @ rng.normal(size=16) + 0.3 * rng.normal(size=400)
    fitted = fit_head(X, y, seed=0, epochs=30, val_fraction=0.25)
    assert fitted["spearman"] > 0.5


@pytest.fixture(scope="module")
def fitted_mates(tmp_path_factory, one_thread):  # noqa: F811
    from lmsieve.api import fit_and_score

    t = pool_slice(1500)
    pool = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, 50) for d in ("code_python", "legal")])
    pool = pool.set_column(pool.schema.get_field_index("text"), "text", pc.utf8_slice_codeunits(pool.column("text"), 0, 500))
    target = target_set("heldout_code_python").slice(0, 10)
    params = dict(model=str(tiny_proxy_dir()), n_probe=80, ref_windows=8, probe_lr=3e-3, epochs=40, seed=1, val_fraction=0.25,
                  embed_batch_size=1, influence="head")
    sel, s, e = fit_and_score("mates", target, pool, **params)
    return pool, target, sel, s, e, tmp_path_factory.mktemp("mates")


def test_fitted_selector_prefers_target_domain_and_beam_matches_api(fitted_mates):
    from _beam_fitted import beam_select_fitted

    from lmsieve.api import run_selection

    pool, target, sel, s, e, root = fitted_mates
    is_code = np.array(pool.column("domain").to_pylist()) == "code_python"
    assert s[is_code].mean() < s[~is_code].mean()  # lower predicted loss-after for the target's domain
    d = sel.save(root / "fitted")
    assert not (root / "fitted" / "proxy").exists()  # a given model is referenced by model=, not copied
    np.testing.assert_array_equal(MATES.load(d).score(pool.slice(0, 10)), s[:10])
    budget = Budget(fraction=0.2)
    got = beam_select_fitted(root, "mates", d, pool, target, 43, budget, seed=6, selector_kwargs={"embed_batch_size": 1},
                             temperature=0.5)
    ref = run_selection(sel, pool, budget, seed=6, temperature=0.5, scores=s, eligible=e).selected.column("id").to_pylist()
    assert len(ref) == 20 and got == ref


def test_run_stages_tiny(one_thread):  # noqa: F811
    """The staged loop: stage 0 random, later stages re-probe with the current proxy, re-fit and select
    20% of their own part of the pool; the same seed gives the same stages."""
    from lmsieve.sampling.hashing import stable_hash64
    from lmsieve.selectors.mates import run_stages

    t = pool_slice(1500)
    pool = pa.concat_tables([t.filter(pc.equal(t.column("domain"), d)).slice(0, 40) for d in ("code_python", "legal")])
    pool = pool.set_column(pool.schema.get_field_index("text"), "text", pc.utf8_slice_codeunits(pool.column("text"), 0, 300))
    target = target_set("heldout_code_python").slice(0, 5)
    kw = dict(stages=2, steps_per_stage=20, seed=3, proxy_model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64},
              n_probe=12, ref_windows=4, epochs=3, val_fraction=0.25, probe_tokens=128)
    out = run_stages(pool, target, **kw)
    part = stable_hash64(3, pool.column("id").to_pylist()) % np.uint64(2)
    ids = np.array(pool.column("id").to_pylist())
    assert len(out) == 2
    for s, chosen in enumerate(out):
        mine = set(ids[part == s].tolist())
        assert set(chosen) <= mine and len(chosen) == int(0.2 * len(mine)) and len(set(chosen)) == len(chosen)
    assert run_stages(pool, target, **kw) == out
