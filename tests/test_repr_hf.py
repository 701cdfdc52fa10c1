"""RDS+, RDS-RR and MONA on a Hugging Face model directory (a tiny random-init Llama, no lmsieve
files in it): fit, save, ``fitted=DIR``, and the Beam features + selection jobs select the same ids
as the API (same pool layout as test_repr_beam: 3 shards, units of at most 30 rows). MONA trains its
own SAE (AuxK) through ``lmsieve train-sae``; the default model is SmolLM2 when fetched, else one
line naming ``lmsieve models fetch smollm2-135m``."""
from pathlib import Path

import numpy as np
import pytest
from _proxy_fixture import one_thread  # noqa: F401
from _tiny_llama import tiny_llama_dir
from test_repr_beam import _target, beam_select, env  # noqa: F401

import lmsieve
from lmsieve.api import fit_selector
from lmsieve.pipelines.features import selector_class
from lmsieve.sampling.select import Budget
from lmsieve.schemas.errors import ConfigError


@pytest.fixture(scope="module")
def sae_dir(env, one_thread):  # noqa: F811
    """An SAE trained with the CLI on the tiny Llama's last hidden layer."""
    from lmsieve.cli.main import main

    root, pool, _ = env
    pool.slice(0, 60).to_pandas().to_parquet(root / "sae-data.parquet")
    out = root / "sae"
    rc = main(["train-sae", "--model", str(tiny_llama_dir()), "--layer", "-1", "--data", str(root / "sae-data.parquet"),
               "--out", str(out), "--latents", "128", "--k", "8", "--steps", "60", "--batch-size", "256",
               "--max-tokens", "48", "--no-progress"])
    assert rc == 0 and (out / "cfg.json").is_file() and (out / "sae.safetensors").is_file()
    return out


@pytest.mark.parametrize("method", ["rds", "rds-rr"])
def test_rds_hf_fit_save_fitted_beam(env, method, one_thread):  # noqa: F811
    root, pool, pool_dir = env
    tpath = _target(root, "heldout_code_python", 4)
    params = {"model": str(tiny_llama_dir()), "max_tokens": 48, "per_query_k": 8, "device": "cpu"}
    sel = fit_selector(method, tpath, **params)
    d = sel.save(root / f"{method}-hf-fit")
    ref = lmsieve.select(pool, method, tpath, keep=40, seed=5, **params).column("id").to_pylist()
    api = lmsieve.select(pool, method, tpath, keep=40, seed=5, fitted=d).column("id").to_pylist()
    ids, _ = beam_select(root, f"{method}-hf", pool_dir, tpath, method, {"fitted": d}, Budget(k=40), seed=5)
    assert len(ref) == 40 and api == ref and ids == ref
    np.testing.assert_array_equal(selector_class(method)(fitted=d).fit(None).queries_, sel.queries_)


def test_mona_hf_fit_save_fitted_beam(env, sae_dir, one_thread):  # noqa: F811
    root, pool, pool_dir = env
    tpath = _target(root, "heldout_literature", 5)
    params = {"model": str(tiny_llama_dir()), "sae": str(sae_dir), "max_tokens": 48, "device": "cpu"}
    sel = fit_selector("mona", tpath, **params)
    assert sel.prototypes_.shape == (1, 128) and sel._sae.layer == 2  # hidden_states[-1] of 2 blocks
    d = sel.save(root / "mona-hf-fit")
    assert (Path(d) / "sae" / "cfg.json").is_file()
    ref = lmsieve.select(pool, "mona", tpath, keep=10, seed=2, **params).column("id").to_pylist()
    api = lmsieve.select(pool, "mona", tpath, keep=10, seed=2, fitted=d).column("id").to_pylist()
    ids, _ = beam_select(root, "mona-hf", pool_dir, tpath, "mona", {"fitted": d}, Budget(k=10), seed=2)
    assert len(ref) == 10 and api == ref and ids == ref


def test_mona_trains_and_reuses_its_sae(env, tmp_path, monkeypatch, one_thread):  # noqa: F811
    """No sae=: MONA trains one on the bundled sample once, caches it per model + layer, reuses it."""
    root, pool, _ = env
    monkeypatch.setenv("LMSIEVE_HOME", str(tmp_path))
    tpath = _target(root, "heldout_literature", 5)
    params = {"model": str(tiny_llama_dir()), "max_tokens": 32, "device": "cpu", "sae_docs": 24, "sae_max_tokens": 32,
              "sae_steps": 20, "sae_expansion": 2, "sae_k": 8}
    a = lmsieve.score(pool.slice(0, 30), "mona", tpath, **params)
    cached = list((tmp_path / "sae").iterdir())
    assert len(cached) == 1 and "-hs1-" in cached[0].name  # layer -2 of 2 blocks: hidden_states[1]
    stamp = (cached[0] / "sae.safetensors").stat().st_mtime_ns
    b = lmsieve.score(pool.slice(0, 30), "mona", tpath, **params)
    assert (cached[0] / "sae.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and a.max() > 0


def test_default_model_is_smollm2_or_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LMSIEVE_HOME", str(tmp_path))  # an empty model cache
    for method in ("rds", "rds-rr", "mona"):
        with pytest.raises(ConfigError, match="lmsieve models fetch smollm2-135m"):
            selector_class(method)()
