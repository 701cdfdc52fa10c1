"""Causal LMs on transformers: small Llama proxies trained on the user's data, or any local HF causal LM.

    lm = train_proxy(texts, model={"n_layer": 4}, train={"steps": 600})   # or load_proxy(dir_or_fetched_name)
    save_proxy(lm, "proxy/")
    document_losses(lm, batch).bpc          # per-document NLL / mean CE / bits per character
    chunk_losses(lm, batch, chunk_len=512)  # CoLoR-Filter chunks
    pooled_states(lm, batch)                # RDS+ position-weighted mean of the last layer
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "checkpoint": ["HFCausalLM", "LoadedLM", "ProxyLM", "build_model", "load_proxy", "resolve_model", "save_proxy"],
    "config": ["ModelConfig", "TokenizerConfig", "TrainConfig"],
    "losses": ["LossResult", "ProxyChunkLoss", "ProxyLoss", "chunk_losses", "document_losses"],
    "pooling": ["PooledStates", "pool_hidden", "pooled_states"],
    "tokenizer": ["LMTokenizer", "train_tokenizer"],
    "train": ["finetune", "lm_loss", "load_optimizer", "lr_at", "make_optimizer", "save_optimizer", "train_proxy"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    """Lazy exports: importing the package (e.g. for CLI help) does not import torch."""
    if name not in _WHERE:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"lmsieve.features.proxy_lm.{_WHERE[name]}"), name)
