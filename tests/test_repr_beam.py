"""Representation selectors (betr, rds, rds-rr, mona): same seed, same selection through the
in-process API and the Beam features + selection jobs (FnApiRunner).

A 200-document pool slice (texts cut to 200 characters) in 3 shards with units of at most 30 rows,
so every Beam step really works per unit: rds-rr's per-query top-k must be merged across units
and shards (a batch-local round-robin gives other picks), BETR is fitted once in-process and
scored per unit from ``fitted=DIR``.
"""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _proxy_fixture import one_thread, tiny_proxy_dir, tiny_sae_dir  # noqa: F401
from conftest import pool_slice, target_set
from test_beam_select import selected_ids, write_shards

import lmsieve
from lmsieve.api import fit_selector, run_selection, select as api_select
from lmsieve.pipelines import fileio
from lmsieve.pipelines.features import hash_target_files, read_target, selector_class
from lmsieve.pipelines.features_job import run_features_job
from lmsieve.pipelines.options import make_options
from lmsieve.pipelines.round_robin import stored_feature
from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
from lmsieve.sampling.select import Budget
from lmsieve.schemas.errors import ConfigError

N_POOL = 200


@pytest.fixture(scope="module")
def env(tmp_path_factory, one_thread):  # noqa: F811
    root = tmp_path_factory.mktemp("repr_beam")
    t = pool_slice(N_POOL)
    pool = t.set_column(t.schema.get_field_index("text"), "text",
                        pa.array([s[:200] for s in t.column("text").to_pylist()]))
    mp = pytest.MonkeyPatch()
    mp.setattr(fileio, "UNIT_MAX_ROWS", 30)
    pool_dir = write_shards(pool, root / "pool", 80, 15)  # 80 + 80 + 40 rows, units of 30
    yield root, pool, pool_dir
    mp.undo()


def _target(root, name: str, n: int) -> str:
    path = root / f"{name}-{n}.parquet"
    if not path.exists():
        pq.write_table(target_set(name).slice(0, n), path)
    return str(path)


def beam_select(root, tag: str, pool_dir: str, tpath: str, method: str, params: dict, budget: Budget, seed: int):
    """(selected ids in input order, {id: score}) from the features job + the selection job."""
    opts = make_options(["--runner=FnApiRunner"])
    sel = selector_class(method)(**params).fit(read_target([tpath]))  # what the job spec does
    feat, out = str(root / tag / "feat"), root / tag / "out"
    run_features_job(pool_dir, feat, [stored_feature(sel, hash_target_files([tpath]))], options=opts, progress_secs=0)
    cfg = SelectionConfig(method=method, params=params, budget=budget, seed=seed, num_quantiles=5)
    m = run_selection_job(pool_dir, feat, [tpath], str(out), cfg, options=opts, progress_secs=0)
    scores = pa.concat_tables([pq.read_table(out / o["path"]) for o in m["outputs"] if o["path"].startswith("scores-")])
    return selected_ids(m, out), dict(zip(scores.column("id").to_pylist(), scores.column("score").to_pylist()))


@pytest.mark.parametrize("method", ["rds", "rds-rr"])
def test_rds_api_equals_beam(env, method):
    root, pool, pool_dir = env
    tpath = _target(root, "heldout_code_python", 4)
    params = {"model": str(tiny_proxy_dir()), "max_tokens": 64, "per_query_k": 8}
    # 4 queries x 8 candidates: the round-robin reaches at most 32 documents; 40 also takes the fallback
    ids, beam_scores = beam_select(root, method, pool_dir, tpath, method, params, Budget(k=40), seed=5)
    ref = lmsieve.select(pool, method, tpath, keep=40, seed=5, **params).column("id").to_pylist()
    assert len(ref) == 40 and ids == ref
    api = lmsieve.score(pool, method, tpath, **params)
    np.testing.assert_allclose([beam_scores[i] for i in pool.column("id").to_pylist()], api, rtol=0, atol=1e-5)
    if method == "rds-rr":  # really the global round-robin: picks 0..R-1 scored -p, R <= 4 x 8
        s = np.sort(api)[::-1]
        r = int(np.argmin(s == -np.arange(len(s))))  # the picks score 0, -1, ..., -(R - 1)
        assert 8 <= r <= 32 and s[r] <= -(r + 1)


def test_mona_api_equals_beam(env):
    root, pool, pool_dir = env
    tpath = _target(root, "heldout_literature", 5)
    params = {"model": str(tiny_proxy_dir()), "sae": tiny_sae_dir(), "max_tokens": 64}
    ids, _ = beam_select(root, "mona", pool_dir, tpath, "mona", params, Budget(k=10), seed=2)
    ref = lmsieve.select(pool, "mona", tpath, keep=10, seed=2, **params).column("id").to_pylist()
    assert len(ref) == 10 and ids == ref


def test_betr_fitted_dir_api_equals_beam(env):
    from lmsieve.pipelines.jobspec import validate_spec

    root, pool, pool_dir = env
    tpath = _target(root, "heldout_math", 40)
    fitted = fit_selector("betr", tpath, pool=pool, max_seq_length=64, bucket=50_000, seed=4, token_fraction=0.3)
    fdir = fitted.save(root / "betr-fit")
    assert 0 < fitted.threshold_ < 1
    # fitting in-process, loading fitted=DIR in the API and scoring per unit in Beam: one selection
    ref = run_selection(fitted, pool, Budget(fraction=0.1), seed=3).selected.column("id").to_pylist()
    api = lmsieve.select(pool, "betr", tpath, keep=0.1, seed=3, fitted=fdir).column("id").to_pylist()
    ids, _ = beam_select(root, "betr", pool_dir, tpath, "betr", {"fitted": fdir}, Budget(fraction=0.1), seed=3)
    assert len(ref) == 20 and api == ref and ids == ref
    # a length budget over the whole pool (characters), the Beam way to keep a share of the text
    ids, _ = beam_select(root, "betr", pool_dir, tpath, "betr", {"fitted": fdir}, Budget(length_fraction=0.2), seed=3)
    api = api_select(pool, "betr", tpath, keep_chars_fraction=0.2, seed=3, fitted=fdir).column("id").to_pylist()
    assert len(api) > 0 and ids == api
    # a job spec accepts betr with fitted=DIR (and still refuses it without)
    spec = {"inputs": {"pool": pool_dir, "target": tpath},
            "features": {"out": str(root / "spec-feat")},
            "selection": {"method": "betr", "out": str(root / "spec-out"), "keep_fraction": 0.1,
                          "params": {"fitted": fdir}},
            "beam": {"runner": "FnApiRunner"}}
    assert validate_spec(spec).selection_config().params == {"fitted": fdir}
    spec["selection"]["params"] = {}
    with pytest.raises(ConfigError, match="fitted=DIR"):
        validate_spec(spec)
