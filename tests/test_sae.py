"""TopK SAE: exactly K non-negative codes per token (checked against the formula in numpy),
reconstruction improves with training, exact save/load, Eleuther sparsify-format loading, and
per-document mean pooling."""
import json

import numpy as np
import pytest
import torch
from _proxy_fixture import domain_docs, one_thread, tiny_proxy_dir  # noqa: F401
from safetensors.torch import save_file

from lmsieve.features.proxy_lm import load_proxy
from lmsieve.features.sae import (TopKSAE, collect_activations, document_codes, load_sae, save_sae, train_sae)
from lmsieve.schemas.errors import ConfigError

K, LATENTS, LAYER = 8, 256, 1


@pytest.fixture(scope="module")
def lm(one_thread):  # noqa: F811
    return load_proxy(tiny_proxy_dir(), device="cpu")


@pytest.fixture(scope="module")
def acts(lm):
    docs = domain_docs("literature").column("text").to_pylist()
    train = collect_activations(lm, [t[:1000] for t in docs[:60]], LAYER)
    held = collect_activations(lm, [t[:1000] for t in docs[60:80]], LAYER)
    return train, held


@pytest.fixture(scope="module")
def trained(acts):
    return train_sae(acts[0], num_latents=LATENTS, k=K, layer=LAYER, steps=250, batch_size=512, seed=0)


def numpy_codes(sae, x):
    """TopK(ReLU(W_enc (x - b_pre) + b_enc)) as a dense (N, latents) array, by hand."""
    W = sae.encoder.weight.detach().double().numpy()
    pre = np.maximum((x.double().numpy() - sae.b_dec.detach().double().numpy()) @ W.T
                     + sae.encoder.bias.detach().double().numpy(), 0)
    kth = -np.sort(-pre, axis=1)[:, sae.k - 1:sae.k]
    return np.where(pre >= kth, pre, 0.0), pre


def numpy_fvu(sae, x):
    codes, _ = numpy_codes(sae, x)
    recon = codes @ sae.W_dec.detach().double().numpy() + sae.b_dec.detach().double().numpy()
    xd = x.double().numpy()
    return ((xd - recon) ** 2).sum() / ((xd - xd.mean(0)) ** 2).sum()


def test_exactly_k_nonnegative_codes_per_token(trained, acts):
    sae, _ = trained
    x = acts[1][:2000]
    with torch.no_grad():
        values, indices = sae.encode(x)
    dense, pre = numpy_codes(sae, x)
    assert ((pre > 0).sum(1) >= K).all()  # enough positive pre-activations for K non-zeros
    assert values.shape == indices.shape == (len(x), K)
    assert (values >= 0).all() and ((values > 0).sum(1) == K).all()
    assert ((dense > 0).sum(1) == K).all()
    got = np.zeros_like(dense)
    np.put_along_axis(got, indices.numpy(), values.double().numpy(), axis=1)
    np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-6)


def test_reconstruction_error_falls_during_training(trained, acts):
    sae, history = trained
    untrained, _ = train_sae(acts[0], num_latents=LATENTS, k=K, layer=LAYER, steps=0, seed=0)
    before, after = numpy_fvu(untrained, acts[1]), numpy_fvu(sae, acts[1])
    assert after < 0.5 * before
    assert np.mean(history[-20:]) < 0.5 * np.mean(history[:5])
    norms = sae.W_dec.detach().norm(dim=1)
    np.testing.assert_allclose(norms.numpy(), 1.0, rtol=1e-5)  # unit-norm decoder rows


def test_save_load_round_trip_is_exact(trained, acts, tmp_path):
    sae, _ = trained
    back = load_sae(save_sae(sae, tmp_path / "sae"))
    assert back.layer == LAYER and back.k == K
    a, b = sae.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        v1, i1 = sae.encode(acts[1][:500])
        v2, i2 = back.encode(acts[1][:500])
    assert torch.equal(v1, v2) and torch.equal(i1, i2)


def test_loads_an_eleuther_sparsify_directory(tmp_path):
    """The layout of EleutherAI/sae-llama-3-8b-32x: one directory per hookpoint, bf16 weights."""
    g = torch.Generator().manual_seed(3)
    d_in, k = 16, 4
    enc = torch.randn(d_in * 4, d_in, generator=g)
    hook = tmp_path / "repo" / "layers.2"
    hook.mkdir(parents=True)
    (hook / "cfg.json").write_text(json.dumps({"expansion_factor": 4, "normalize_decoder": True, "num_latents": 0,
                                               "k": k, "multi_topk": False, "signed": False, "d_in": d_in}))
    tensors = {"encoder.weight": enc, "encoder.bias": torch.randn(d_in * 4, generator=g) * 0.1,
               "W_dec": enc / enc.norm(dim=1, keepdim=True), "b_dec": torch.randn(d_in, generator=g)}
    save_file({n: t.to(torch.bfloat16) for n, t in tensors.items()}, str(hook / "sae.safetensors"))
    sae = load_sae(tmp_path / "repo", hookpoint="layers.2")
    assert sae.layer == 3  # output of block 2 = hidden_states[3]
    assert sae.num_latents == 64 and sae.k == k
    x = torch.randn(50, d_in, generator=g)
    dense, _ = numpy_codes(sae, x)
    with torch.no_grad():
        v, i = sae.encode(x)
    got = np.zeros_like(dense)
    np.put_along_axis(got, i.numpy(), v.double().numpy(), axis=1)
    np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-6)
    (hook / "cfg.json").write_text(json.dumps({"d_in": d_in, "k": k, "num_latents": 64, "activation": "groupmax"}))
    with pytest.raises(ConfigError):
        load_sae(hook)


def test_document_codes_are_the_mean_of_token_codes(lm, trained):
    sae, _ = trained
    texts = ["Hail, holy Light, offspring of Heaven first-born", "Sing, Heavenly Muse", "Of Man's first " * 20, ""]
    idx, val = document_codes(lm, sae, texts, store_k=0)
    for text, i, v in zip(texts, idx, val):
        tok = collect_activations(lm, [text], LAYER)  # <bos> left out, as in document_codes
        want = numpy_codes(sae, tok)[0].mean(0) if len(tok) else np.zeros(LATENTS)
        got = np.zeros(LATENTS)
        got[i] = v
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert (v > 0).all() and (np.diff(v) <= 0).all()
    assert len(idx[-1]) == 0  # an empty document has no code
    top_i, top_v = document_codes(lm, sae, texts[:1], store_k=5)
    assert top_i[0].tolist() == idx[0][:5].tolist() and np.allclose(top_v[0], val[0][:5])
    single = document_codes(lm, sae, texts[1:2], store_k=0)
    assert single[0][0].tolist() == idx[1].tolist()
    np.testing.assert_allclose(single[1][0], val[1], rtol=1e-5)


def test_topk_sae_rejects_bad_k():
    with pytest.raises(ConfigError):
        TopKSAE(8, 16, 0)
    with pytest.raises(ConfigError):
        TopKSAE(8, 16, 17)
