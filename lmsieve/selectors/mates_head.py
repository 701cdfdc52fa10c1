"""MATES's influence model head: a linear or one-hidden-layer regressor on document features.

Yu, Das, Xiong (NeurIPS 2024), MATES: the regressor is fitted by MSE to the oracle losses z-scored
with the train split's mean and std, and the best epoch is chosen by Spearman on the held-out
split. Here the features are frozen sentence embeddings (see :mod:`lmsieve.selectors.mates`);
the split is a seeded permutation, training is float64 AdamW in torch, and prediction is a
row-by-row numpy forward pass, so scores do not depend on the batch size.
"""
from __future__ import annotations

import numpy as np


def fit_head(X: np.ndarray, y: np.ndarray, *, seed: int, hidden: int = 0, epochs: int = 50, lr: float = 1e-3,
             weight_decay: float = 0.01, val_fraction: float = 0.1) -> dict:
    """Regressor on z-scored targets; returns numpy weights of the best epoch by held-out Spearman."""
    import torch
    from scipy.stats import spearmanr

    from lmsieve.features.device import generator

    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(2, int(round(val_fraction * n)))
    val, tr = perm[:n_val], perm[n_val:]
    mean, std = float(y[tr].mean()), float(y[tr].std() or 1.0)
    z = (y - mean) / std
    g = generator(seed)
    d = X.shape[1]
    layers = [torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)] if hidden else [torch.nn.Linear(d, 1)]
    net = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * (0.02 if p.dim() > 1 else 0.0))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    Xt, zt = torch.from_numpy(X.astype(np.float64)), torch.from_numpy(z)
    best = (-np.inf, -1, None)
    for ep in range(epochs):
        order = torch.from_numpy(tr)[torch.randperm(len(tr), generator=g)]
        for s in range(0, len(order), 32):
            b = order[s:s + 32]
            loss = torch.mean((net(Xt[b]).squeeze(-1) - zt[b]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pv = net(Xt[val]).squeeze(-1).numpy()
        rho = spearmanr(pv, z[val]).statistic if np.std(pv) > 0 else 0.0
        rho = -1.0 if not np.isfinite(rho) else float(rho)
        if rho > best[0]:
            best = (rho, ep, {k: v.detach().numpy().copy() for k, v in net.state_dict().items()})
    return {"weights": best[2], "spearman": best[0], "epoch": best[1], "mean": mean, "std": std, "hidden": hidden}


def head_predict(weights: dict, X: np.ndarray) -> np.ndarray:
    """Row-by-row float64 forward pass of the head (batch-invariant bits)."""
    X = np.asarray(X, dtype=np.float64)
    keys = sorted(weights)
    if len(keys) == 2:  # linear: 0.bias, 0.weight
        w, b = weights["0.weight"][0], weights["0.bias"][0]
        return np.array([float(np.dot(x, w)) + b for x in X])
    from scipy.special import erf

    W1, b1, W2, b2 = weights["0.weight"], weights["0.bias"], weights["2.weight"][0], weights["2.bias"][0]
    out = []
    for x in X:
        h = W1 @ x + b1
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        out.append(float(np.dot(h, W2)) + b2)
    return np.array(out)


__all__ = ["fit_head", "head_predict"]
