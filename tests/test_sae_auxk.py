"""TopK SAE AuxK loss (Gao et al. 2024) against a slow per-token reference, dead-latent tracking,
and which parameters the auxiliary term trains."""
import json

import numpy as np
import torch

from lmsieve.features.device import generator
from lmsieve.features.sae import AUXK_COEF, TopKSAE, auxk_loss, fvu, load_sae, save_sae, train_sae

D, LATENTS, K = 16, 64, 4


def _sae(seed=0):
    sae = TopKSAE(D, LATENTS, K, layer=1, gen=generator(seed))
    with torch.no_grad():
        sae.encoder.bias.copy_(torch.randn(LATENTS, generator=generator(seed + 1)) * 0.3)
        sae.b_dec.copy_(torch.randn(D, generator=generator(seed + 2)) * 0.1)
    return sae


def slow_auxk(sae, x, dead, k_aux):
    """Per token, in float64 with Python loops: the k_aux largest ReLU pre-activations among dead
    latents decode (no bias) the main residual; normalised MSE over the batch."""
    W, b = sae.encoder.weight.detach().double().numpy(), sae.encoder.bias.detach().double().numpy()
    Wd, bd = sae.W_dec.detach().double().numpy(), sae.b_dec.detach().double().numpy()
    X = x.double().numpy()
    dead_ids = [j for j in range(LATENTS) if dead[j]]
    kk = min(k_aux, len(dead_ids))
    err, res = [], []
    for row in X:
        pre = [max(0.0, float(np.dot(W[j], row - bd) + b[j])) for j in range(LATENTS)]
        top = sorted(range(LATENTS), key=lambda j: -pre[j])[:K]
        recon = bd + sum(pre[j] * Wd[j] for j in top)
        e = row - recon
        aux = sorted(dead_ids, key=lambda j: -pre[j])[:kk]
        e_hat = sum((pre[j] * Wd[j] for j in aux), np.zeros(D))
        err.append(((e_hat - e) ** 2).sum())
        res.append(e)
    res = np.array(res)
    return sum(err) / ((res - res.mean(0)) ** 2).sum()


def test_auxk_matches_slow_reference():
    sae = _sae()
    x = torch.randn(40, D, generator=generator(5))
    for n_dead, k_aux in [(10, 4), (3, 8), (LATENTS, 8)]:
        dead = torch.zeros(LATENTS, dtype=torch.bool)
        dead[torch.randperm(LATENTS, generator=generator(n_dead))[:n_dead]] = True
        pre = sae.pre_acts(x)
        values, idx = pre.topk(K, dim=-1)
        got = float(auxk_loss(sae, pre, x, sae.decode(values, idx), dead, k_aux).detach())
        want = slow_auxk(sae, x, dead.numpy(), k_aux)
        assert want > 0 and abs(got - want) <= 1e-5 * want, (n_dead, k_aux, got, want)
    none = torch.zeros(LATENTS, dtype=torch.bool)
    assert float(auxk_loss(sae, pre, x, sae.decode(values, idx), none, 8)) == 0.0


def test_auxk_gradient_reaches_dead_latents_only():
    sae = _sae()
    x = torch.randn(64, D, generator=generator(6))
    dead = torch.zeros(LATENTS, dtype=torch.bool)
    dead[:20] = True
    pre = sae.pre_acts(x)
    values, idx = pre.topk(K, dim=-1)
    auxk_loss(sae, pre, x, sae.decode(values, idx), dead, 8).backward()
    g = sae.encoder.weight.grad.abs().sum(1)
    assert g[20:].max() == 0 and g[:20].max() > 0  # live encoder rows untouched, the residual is detached
    gd = sae.W_dec.grad.abs().sum(1)
    assert gd[20:].max() == 0 and gd[:20].max() > 0


def test_dead_latents_tracked_and_auxk_recorded(tmp_path):
    # data in a 4-dimensional subspace: most of the 64 latents never win a top-4 slot
    basis = torch.randn(4, D, generator=generator(1))
    acts = torch.randn(4000, 4, generator=generator(2)) @ basis
    plain, h0 = train_sae(acts, num_latents=LATENTS, k=K, steps=150, batch_size=256, seed=0, auxk=False)
    sae, h1 = train_sae(acts, num_latents=LATENTS, k=K, steps=150, batch_size=256, seed=0, dead_tokens=2000)
    info = sae.train_info
    assert info["auxk"] and info["k_aux"] == D // 2 and info["dead_tokens"] == 2000 and info["auxk_coef"] == AUXK_COEF
    assert 0 < plain.train_info["dead_fraction"] and plain.train_info["dead_tokens"] == 150 * 256 // 10
    assert h1[-1] < h1[0] * 0.5 and np.isfinite(h0).all()
    held = torch.randn(500, 4, generator=generator(3)) @ basis
    with torch.no_grad():
        v, i = sae.encode(held)
        assert float(fvu(held, sae.decode(v, i))) < 0.5
    d = save_sae(sae, tmp_path / "sae")
    cfg = json.loads((d / "cfg.json").read_text())
    assert cfg["lmsieve_train"]["auxk"] and cfg["k"] == K
    back = load_sae(d)
    with torch.no_grad():
        np.testing.assert_array_equal(back.encode(held)[1].numpy(), i.numpy())
