"""MONA: generalised Jaccard properties, length bias of mean vs sum pooling, the real SAE path."""
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _proxy_fixture import one_thread, tiny_proxy_dir, tiny_sae_dir  # noqa: F401
from conftest import pool_slice, target_set

from lmsieve.selectors.base import Selector
from lmsieve.selectors.mona import Mona, jaccard, sparse_jaccard

L = 64  # latents of the synthetic dictionary


def test_generalised_jaccard_properties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y = rng.random(20) * (rng.random(20) < 0.4), rng.random(20) * (rng.random(20) < 0.4)
        x[0] = 0.5
        assert jaccard(x, x) == pytest.approx(1.0)
        assert jaccard(x, y) == pytest.approx(jaccard(y, x))
        assert 0.0 <= jaccard(x, y) <= 1.0
        for c in (1.0, 2.0, 7.5):
            assert jaccard(x, c * x) == pytest.approx(1 / c)
        # the sparse form used for scoring equals the dense definition
        nz = np.flatnonzero(x)
        protos = np.stack([y, x, 3 * x])
        np.testing.assert_allclose(sparse_jaccard(nz, x[nz], protos, protos.sum(1)),
                                   [jaccard(x, y), 1.0, 1 / 3], rtol=1e-12)


def _token_codes(rng, n_tokens, topic):
    """Per-token TopK codes (4 latents >= 0): topic 0 uses latents 0-15; topic 1 mostly 16-63,
    with a quarter of its activations on topic 0's latents (polysemantic overlap)."""
    dense = np.zeros((n_tokens, L))
    for t in range(n_tokens):
        if topic == 0 or rng.random() < 0.25:
            lat = rng.choice(16, 4, replace=False)
        else:
            lat = 16 + rng.choice(48, 4, replace=False)
        dense[t, lat] = rng.uniform(0.5, 1.5, 4)
    return dense


def _pooled_docs(rng, specs, pooling):
    out = []
    for n, topic in specs:
        d = _token_codes(rng, n, topic)
        v = d.mean(0) if pooling == "mean" else d.sum(0)
        nz = np.flatnonzero(v)
        out.append((nz.astype(np.int32), v[nz].astype(np.float32)))
    return out


def _fake_mona(codes_by_batch):
    m = Mona(model="unused", sae="unused")
    m._models = lambda: (None, types.SimpleNamespace(num_latents=L))
    m.codes = lambda batch: tuple(map(list, zip(*codes_by_batch[batch])))
    return m


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_length_bias_mean_vs_sum_pooling(pooling):
    rng = np.random.default_rng(1)
    target = [(300, 0)] * 20
    pool = [(10, 0)] * 30 + [(500, 0)] * 30 + [(10, 1)] * 30 + [(500, 1)] * 30  # on-topic first
    codes = {"target": _pooled_docs(rng, target, pooling), "pool": _pooled_docs(rng, pool, pooling)}
    m = _fake_mona(codes).fit("target")
    s, e = m.score_and_mask("pool")
    top = set(np.argsort(-s, kind="stable")[:60].tolist())
    recall_short = np.mean([i in top for i in range(30)])
    recall_long = np.mean([i in top for i in range(30, 60)])
    if pooling == "mean":
        assert recall_short >= 0.9 and recall_long >= 0.9
    else:  # summed codes of the short documents are 30x smaller than the prototype: J ~ 1/30
        assert recall_long - recall_short >= 0.5


@pytest.fixture(scope="module")
def mona_models(one_thread):  # noqa: F811
    return str(tiny_proxy_dir()), tiny_sae_dir()


def _short_pool(n):
    t = pool_slice(400).slice(0, n)
    return t.set_column(1, "text", pa.array([s[:120] for s in t.column("text").to_pylist()]))


def test_real_path_scores_and_save_load(mona_models, tmp_path):
    from lmsieve.features.sae import document_codes, load_sae
    from lmsieve.features.proxy_lm import load_proxy
    from lmsieve.pipelines.features import read_target, selector_class

    proxy, sae_dir = mona_models
    pool = _short_pool(60)
    tpath = str(tmp_path / "t.parquet")
    pq.write_table(target_set("heldout_literature").slice(0, 5), tpath)
    params = {"model": proxy, "sae": sae_dir}
    sel = selector_class("mona")(**params).fit(read_target([tpath]))
    # scores = Jaccard of the features' mean codes against the mean target code (dense reference)
    lm, sae = load_proxy(proxy, device="cpu"), load_sae(sae_dir)
    ti, tv = document_codes(lm, sae, read_target([tpath]), store_k=0)
    proto = np.zeros(sae.num_latents)
    for i, v in zip(ti, tv):
        proto[i] += v / len(ti)
    di, dv = document_codes(lm, sae, pool.slice(0, 10), store_k=0)
    s = sel.score(pool.slice(0, 10))
    for j in range(10):
        x = np.zeros(sae.num_latents)
        x[di[j]] = dv[j]
        assert s[j] == pytest.approx(jaccard(x, proto), rel=1e-6)
    back = Selector.load(sel.save(tmp_path / "mona"))
    np.testing.assert_array_equal(back.score(pool.slice(0, 10)), s)
