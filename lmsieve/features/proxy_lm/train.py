"""Training causal LMs: proxies from scratch on a pool sample, and one-epoch fine-tunes of any model.

* :func:`train_proxy`: tokenizer (BPE trained on the documents, or bytes), a randomly initialised
  ``LlamaForCausalLM`` (:func:`~lmsieve.features.proxy_lm.checkpoint.build_model`), then ``steps`` AdamW
  steps on random ``context + 1``-token windows of the documents' token stream (each document
  starts with ``<bos>``); linear warmup then cosine decay to ``lr * min_lr_ratio``; gradient
  clipping. All randomness (initialisation and window offsets) comes from one
  ``torch.Generator`` seeded with ``train.seed``: the same data and config give the same weights.
* :func:`finetune`: continue any loaded model (a proxy or a local/fetched HF causal LM) over a
  target set for whole epochs (CoLoR-Filter's conditional model: one epoch, optimizer reset by
  default); the target's token stream is cut into consecutive ``window``-token windows, shuffled by
  the seed. Weights train in float32 (bf16 autocast on CUDA).
* :func:`save_optimizer` / :func:`load_optimizer`: AdamW state as safetensors + JSON, keyed by
  parameter name, so MATES-style probes can restore the exact moments and take one step.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lmsieve.features.device import generator, resolve_device
from lmsieve.features.proxy_lm.checkpoint import FORMAT, LoadedLM, build_model
from lmsieve.features.proxy_lm.config import ModelConfig, TokenizerConfig, TrainConfig
from lmsieve.features.proxy_lm.tokenizer import train_tokenizer
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError, InputError

FINETUNE = TrainConfig(lr=1e-3, warmup_steps=20, min_lr_ratio=0.1, weight_decay=0.0)


def token_stream(tokenizer, texts) -> np.ndarray:
    """All documents as one int32 stream, each preceded by ``<bos>`` (when the tokenizer has one)."""
    parts = []
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    for ids in tokenizer.encode_batch(texts):
        parts.append(np.array(bos, np.int32))
        parts.append(ids)
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def window_starts(n: int, span: int) -> torch.Tensor:
    """Starts of ``span``-token windows covering a stream of ``n`` tokens: consecutive windows share
    one token (each target predicted once), plus one window ending at the tail when needed."""
    starts = list(range(0, n - span + 1, span - 1))
    if starts[-1] + span < n:
        starts.append(n - span)  # cover the tail
    return torch.tensor(starts)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate of (0-based) ``step`` of ``total``: linear warmup, cosine to ``lr*min_lr_ratio``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (and the tied embedding), none on norms."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def lm_loss(lm: LoadedLM, windows: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``(B, T+1)`` windows (float32, on the LM's device)."""
    return lm.token_nll(windows.to(lm.device)).mean()


def _steps(lm: LoadedLM, batches, total: int, cfg: TrainConfig, opt, progress: bool, desc: str,
           callback=None) -> list[float]:
    from lmsieve import progress as _progress

    lm.model.train()
    history = []
    # progress=False defers to the process default (the CLI turns bars on), so a proxy trained inside
    # a selector's fit shows its bar too.
    bar = _progress.bar(total=total, desc=desc, unit="step", enabled=progress or None)
    for i, windows in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(i, total, cfg)
        loss = lm_loss(lm, windows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(lm.model.parameters(), cfg.grad_clip)
        opt.step()
        lm.step += 1
        history.append(float(loss.detach()))
        if callback is not None:
            lm.model.eval()
            with torch.no_grad():
                callback(i + 1, lm)
            lm.model.train()
        bar.update(1)
        if i % 20 == 0:
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    bar.close()
    lm.model.eval()
    return history


def train_proxy(texts, model: ModelConfig | dict | None = None, train: TrainConfig | dict | None = None,
                tokenizer: TokenizerConfig | dict | None = None, *, device="auto", progress: bool = False,
                callback=None) -> LoadedLM:
    """Train a proxy LM from scratch on ``texts`` (any batch ``text_array`` accepts).

    ``callback(step, lm)``, if given, runs after every optimizer step (``step`` from 1, model in
    eval mode, no grad): e.g. to score held-out text for a loss curve. It must not change ``lm``.
    """
    mcfg = model if isinstance(model, ModelConfig) else ModelConfig.from_dict(model)
    tcfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train)
    kcfg = tokenizer if isinstance(tokenizer, TokenizerConfig) else TokenizerConfig.from_dict(tokenizer)
    texts = text_array(texts)
    tok = train_tokenizer(kcfg, texts)
    mcfg = ModelConfig.from_dict({**mcfg.to_dict(), "vocab_size": tok.vocab_size})
    stream = torch.from_numpy(token_stream(tok, texts).astype(np.int64))
    if len(stream) < 2:
        raise InputError("training documents hold fewer than one token")
    g = generator(tcfg.seed)
    dev = resolve_device(device)
    meta = {"format": FORMAT, "model": mcfg.to_dict(), "tokenizer": kcfg.to_dict(), "train": tcfg.to_dict()}
    lm = LoadedLM(build_model(mcfg, tok, tcfg.seed).to(dev), tok, device=dev, context=mcfg.context, meta=meta)
    span = min(mcfg.context + 1, len(stream))
    offsets = torch.arange(span)

    def batches():
        for _ in range(tcfg.steps):
            start = torch.randint(0, len(stream) - span + 1, (tcfg.batch_size,), generator=g)
            yield stream[start[:, None] + offsets]

    lm.optimizer = make_optimizer(lm.model, tcfg)
    if callback is not None:
        lm.model.eval()
        with torch.no_grad():
            callback(0, lm)
    lm.history = _steps(lm, batches(), tcfg.steps, tcfg, lm.optimizer, progress, "train-proxy", callback)
    return lm


def finetune(lm: LoadedLM, texts, train: TrainConfig | dict | None = None, *, epochs: int = 1,
             reset_optimizer: bool = True, progress: bool = False, window: int | None = None) -> LoadedLM:
    """Continue training ``lm`` (any loaded causal LM) in place over ``texts`` for ``epochs`` epochs.

    ``window``: tokens per training sequence (default: the model context). ``reset_optimizer=False``
    continues from ``lm.optimizer`` (load the checkpoint ``with_optimizer=True``); the schedule
    restarts over the fine-tune's own steps either way. Returns ``lm``, now ``kind == "lmsieve"``.
    """
    if not isinstance(lm, LoadedLM):
        raise ConfigError("finetune needs a loaded causal LM (load_proxy)")
    if getattr(lm.model, "hf_device_map", None) and len(set(lm.model.hf_device_map.values())) > 1:
        raise ConfigError("finetune: a model spread over several devices (device_map) is not trained here")
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict({**FINETUNE.to_dict(), **(train or {})})
    stream = torch.from_numpy(token_stream(lm.tokenizer, text_array(texts)).astype(np.int64))
    span = min(int(window or lm.context) + 1, lm.context + 1, len(stream))
    if span < 2:
        raise InputError("fine-tuning documents hold fewer than one token")
    starts_t = window_starts(len(stream), span)
    g = generator(cfg.seed)
    per_epoch = math.ceil(len(starts_t) / cfg.batch_size)

    def batches():
        for _ in range(epochs):
            order = starts_t[torch.randperm(len(starts_t), generator=g)]
            for s in range(0, len(order), cfg.batch_size):
                yield stream[order[s:s + cfg.batch_size, None] + torch.arange(span)]

    if next(lm.model.parameters()).dtype != torch.float32:
        lm.model.float()  # float32 master weights (an optimizer built before this would hold stale tensors)
        reset_optimizer = True
    if reset_optimizer or lm.optimizer is None:
        lm.optimizer = make_optimizer(lm.model, cfg)
    if lm.kind != "lmsieve":
        lm.base = str(lm.path) if lm.path is not None else lm.base
    lm.kind, lm.train_cfg, lm.path = "lmsieve", cfg, None  # changed weights: no longer the files at lm.path
    lm.history = _steps(lm, batches(), per_epoch * epochs, cfg, lm.optimizer, progress, "finetune")
    return lm


def save_optimizer(opt: torch.optim.Optimizer, model: torch.nn.Module, out_dir: str | Path) -> None:
    """AdamW state as ``optimizer.safetensors`` (tensors by parameter name) + ``optimizer.json``."""
    names = {id(p): n for n, p in model.named_parameters()}
    sd = opt.state_dict()
    params = [p for group in opt.param_groups for p in group["params"]]
    tensors = {}
    for idx, st in sd["state"].items():
        name = names[id(params[idx])]
        for key, val in st.items():
            tensors[f"{name}::{key}"] = torch.as_tensor(val).detach().to("cpu").contiguous()
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [names[id(params[i])] for i in g["params"]]} for g in sd["param_groups"]]
    save_file(tensors, str(Path(out_dir) / "optimizer.safetensors"))
    (Path(out_dir) / "optimizer.json").write_text(json.dumps({"type": "AdamW", "param_groups": groups}, default=list))


def load_optimizer(model: torch.nn.Module, path: str | Path, cfg: TrainConfig | None = None) -> torch.optim.AdamW:
    """Rebuild the AdamW saved by :func:`save_optimizer` over ``model``'s parameters."""
    path = Path(path)
    if not (path / "optimizer.safetensors").is_file():
        raise ConfigError(f"{str(path)!r}: no optimizer.safetensors (save the checkpoint with optimizer state)")
    meta = json.loads((path / "optimizer.json").read_text())
    by_name = dict(model.named_parameters())
    groups = []
    for g in meta["param_groups"]:
        hp = {k: (tuple(v) if k == "betas" else v) for k, v in g.items() if k != "params"}
        groups.append({**hp, "params": [by_name[n] for n in g["params"]]})
    opt = torch.optim.AdamW(groups)
    tensors = load_file(str(path / "optimizer.safetensors"))
    order = [n for g in meta["param_groups"] for n in g["params"]]
    state = {}
    for i, n in enumerate(order):
        st = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.split("::", 1)[0] == n}
        if st:
            state[i] = st
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)
    return opt
