"""MATES's fine-tuned encoder influence model: a transformer encoder + a linear regression head.

Yu, Das, Xiong (NeurIPS 2024), "MATES: Model-Aware Data Selection for Efficient Pretraining with
Data Influence Models" (reference cxcscmu/MATES): the data influence model is a fine-tuned
bert-base with a regression head, trained by MSE on z-scored oracle losses; the best checkpoint is
the one with the highest Spearman correlation on a held-out split.

Here the encoder is any local Hugging Face encoder directory (``transformers.AutoModel`` /
``AutoTokenizer``, ``local_files_only=True``, safetensors weights only; the packaged
all-MiniLM-L6-v2 by default), the document vector is the attention-masked mean of the last hidden
states, and the head is one ``Linear(hidden, 1)``. Choices where the paper/spec is silent:

* Held-out split: the ``heldout_fraction`` of documents (at least 2) first in the order of the
  stable hash of (seed, doc id) (:func:`heldout_mask`), so it does not depend on input order.
* AdamW with ``lr`` for the encoder and ``head_lr`` (default 1e-3) for the freshly initialised
  head (a zero-bias, N(0, 0.02) weight drawn from a seeded generator); weight decay 0.01; no LR
  schedule. Dropout uses torch's global RNG, so training runs inside ``torch.random.fork_rng``
  seeded from ``seed``: callers' RNG state is left untouched.
* Float32 throughout (no autocast, also on CUDA): the model is small and scores stay comparable.
* Best epoch by held-out Spearman; epoch -1 (the untrained model) is a candidate too, so training
  never returns something worse on the held-out split than where it started.
* Persistence: ``encoder/`` (``save_pretrained`` safetensors + tokenizer files),
  ``head.safetensors`` and ``encoder.json`` (max_length, report). Never pickle.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from lmsieve.sampling.hashing import stable_hash64
from lmsieve.schemas.errors import ConfigError, InputError


def heldout_mask(ids, seed: int, fraction: float) -> np.ndarray:
    """Boolean mask of the held-out documents: the ``fraction`` (>= 2 docs) first by hash of (seed, id)."""
    ids = [str(i) for i in ids]
    n = len(ids)
    n_val = max(2, int(round(fraction * n)))
    if n - n_val < 2:
        raise InputError(f"{n} documents leave fewer than 2 for training after a {fraction} held-out split",
                         "influence model")
    mask = np.zeros(n, dtype=bool)
    mask[np.argsort(stable_hash64(seed, ids), kind="stable")[:n_val]] = True
    return mask


def _spearman(pred: np.ndarray, z: np.ndarray) -> float:
    from scipy.stats import spearmanr

    rho = spearmanr(pred, z).statistic if np.std(pred) > 0 else 0.0
    return float(rho) if np.isfinite(rho) else -1.0


class EncoderRegressor:
    """A (fine-tuned) encoder + linear head: ``predict(texts)`` -> float64 predictions (z units)."""

    def __init__(self, model, tokenizer, head, max_length: int, device, report: dict | None = None):
        self.model, self.tokenizer, self.head = model, tokenizer, head
        self.max_length, self.device, self.report = int(max_length), device, dict(report or {})

    def _forward(self, texts):
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        hidden = self.model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)

    def predict(self, texts, batch_size: int = 32) -> np.ndarray:
        """Predictions for ``texts`` in eval mode (deterministic for a fixed batch size and device)."""
        import torch

        texts = list(texts)
        self.model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(texts), batch_size):
                out.append(self._forward(texts[s:s + batch_size]).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def save(self, path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path / "encoder", safe_serialization=True)
        self.tokenizer.save_pretrained(path / "encoder")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                  str(path / "head.safetensors"))
        (path / "encoder.json").write_text(json.dumps({"max_length": self.max_length, "report": self.report},
                                                      indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path, device: str = "auto") -> "EncoderRegressor":
        import torch
        from safetensors.torch import load_file

        from lmsieve.features.device import resolve_device

        path = Path(path)
        if not (path / "encoder.json").is_file():
            raise ConfigError(f"{path}: no encoder.json (not a saved MATES encoder)")
        meta = json.loads((path / "encoder.json").read_text())
        dev = resolve_device(device)
        with _private_rng(dev, 0):  # the throw-away init weights are overwritten by the saved ones
            model, tok = _load_encoder(path / "encoder", dev)
            head = torch.nn.Linear(model.config.hidden_size, 1)
        head.load_state_dict(load_file(str(path / "head.safetensors")))
        return cls(model, tok, head.to(dev), meta["max_length"], dev, meta.get("report"))


def _load_encoder(path, device):
    from transformers import AutoModel, AutoTokenizer

    if not Path(path).is_dir():
        raise ConfigError(f"encoder_path {os.fspath(path)!r} is not a local directory")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True, trust_remote_code=False)
    return model.float().to(device), tok


def fit_encoder(texts, targets_z, model_path=None, *, ids=None, epochs: int = 3, lr: float = 5e-5,
                head_lr: float = 1e-3, batch_size: int = 16, max_length: int = 128, seed: int = 0,
                heldout_fraction: float = 0.1, device: str = "auto") -> EncoderRegressor:
    """Fine-tune the encoder at ``model_path`` (None: packaged MiniLM) + a linear head by MSE on
    ``targets_z``; return the best epoch by held-out Spearman (``.report`` says which)."""
    from lmsieve.features.device import resolve_device
    from lmsieve.features.embeddings import resolve_model_path

    texts = list(texts)
    z = np.asarray(targets_z, dtype=np.float64)
    if len(z) != len(texts):
        raise InputError(f"{len(texts)} texts but {len(z)} targets", "influence model")
    if not np.all(np.isfinite(z)):
        raise InputError("non-finite target", "influence model", int(np.flatnonzero(~np.isfinite(z))[0]))
    if epochs < 1 or batch_size < 1 or max_length < 2:
        raise ConfigError("fit_encoder: epochs and batch_size must be >= 1, max_length >= 2")
    ids = [str(i) for i in range(len(texts))] if ids is None else list(ids)
    val = heldout_mask(ids, seed, heldout_fraction)
    tr_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    dev = resolve_device(device)
    path = resolve_model_path(model_path)
    with _private_rng(dev, seed):  # weight init on load, head init, dropout: never the caller's RNG
        return _train(texts, z, path, tr_idx, val_idx, dev, epochs=epochs, lr=lr, head_lr=head_lr,
                      batch_size=batch_size, max_length=max_length, seed=seed)


@contextlib.contextmanager
def _private_rng(dev, seed: int):
    """Global torch RNG seeded from ``seed`` inside, the caller's state restored on exit."""
    import torch

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed & ((1 << 63) - 1))
        yield


def _train(texts, z, path, tr_idx, val_idx, dev, *, epochs, lr, head_lr, batch_size, max_length, seed):
    import torch

    from lmsieve.features.device import generator

    model, tok = _load_encoder(path, dev)
    g = generator(seed)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.02)
        head.bias.zero_()
    reg = EncoderRegressor(model, tok, head.to(dev), max_length, dev)
    val_texts = [texts[i] for i in val_idx]
    zt = torch.from_numpy(z.astype(np.float32)).to(dev)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
                            weight_decay=0.01)
    best_rho = _spearman(reg.predict(val_texts, batch_size), z[val_idx])
    report = {"spearman_untrained": best_rho, "n_train": len(tr_idx), "n_heldout": len(val_idx), "history": []}
    best = (best_rho, -1, _snapshot(reg))
    for ep in range(epochs):
        model.train()
        order = tr_idx[torch.randperm(len(tr_idx), generator=g).numpy()]
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            loss = torch.mean((reg._forward([texts[i] for i in b]) - zt[torch.from_numpy(b).to(dev)]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rho = _spearman(reg.predict(val_texts, batch_size), z[val_idx])
        report["history"].append(rho)
        if rho > best[0]:
            best = (rho, ep, _snapshot(reg))
    model.load_state_dict(best[2][0])
    head.load_state_dict(best[2][1])
    model.eval()
    reg.report = {**report, "spearman": best[0], "epoch": best[1]}
    return reg


def _snapshot(reg: EncoderRegressor):
    return ({k: v.detach().clone() for k, v in reg.model.state_dict().items()},
            {k: v.detach().clone() for k, v in reg.head.state_dict().items()})


__all__ = ["EncoderRegressor", "fit_encoder", "heldout_mask"]
