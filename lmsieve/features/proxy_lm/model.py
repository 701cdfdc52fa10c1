"""A small GPT in torch: pre-LN blocks, rotary or learned positions, tied input/output embeddings.

No dropout and no biases in the linear layers; parameters are created empty and initialised
from a seeded ``torch.Generator`` (never the global RNG), so the same seed gives the same model.
Attention is causal (``scaled_dot_product_attention(is_causal=True)``); right padding therefore
never changes the states of real tokens, and callers pad on the right.

``hidden_states`` follows the Hugging Face convention, so layer indices mean the same thing for
a proxy and for a transformers model: entry 0 is the embedding output, entry ``i`` the residual
stream after block ``i``, and the last entry is the final LayerNorm's output.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmsieve.features.proxy_lm.config import ModelConfig


def _param(*shape) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.qkv = _param(3 * d, d)
        self.proj = _param(d, d)
        self.ln2 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.fc = _param(cfg.ff, d)
        self.fc2 = _param(d, cfg.ff)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = F.linear(self.ln1(x), self.qkv).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = _rotary(q, *rope), _rotary(k, *rope)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + F.linear(a.transpose(1, 2).reshape(b, t, d), self.proj)
        return x + F.linear(F.gelu(F.linear(self.ln2(x), self.fc)), self.fc2)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.tok_emb = _param(cfg.vocab_size, cfg.d_model)
        self.pos_emb = _param(cfg.context, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        if cfg.positions == "rotary":
            hd = cfg.d_model // cfg.n_head
            inv = 1.0 / (cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
            self.register_buffer("inv_freq", inv.float(), persistent=False)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """GPT-2 init: N(0, 0.02); residual output projections scaled by 1/sqrt(2 * n_layer)."""
        std_out = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if ".ln" in name or name.startswith("ln"):
                (nn.init.ones_ if name.endswith("weight") else nn.init.zeros_)(p)
            else:
                std = std_out if name.endswith((".proj", ".fc2")) else 0.02
                nn.init.normal_(p, 0.0, std, generator=generator)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _rope(self, t: int, device) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.pos_emb is not None:
            return None
        ang = torch.outer(torch.arange(t, device=device, dtype=torch.float32), self.inv_freq)
        ang = torch.cat([ang, ang], dim=-1)
        return ang.cos(), ang.sin()

    def forward(self, ids: torch.Tensor, *, hidden: bool = False, logits: bool = True, upto: int | None = None):
        """``(logits or None, hidden_states tuple or None)`` for right-padded ``ids`` of shape (B, T).

        ``upto=i`` stops after block ``i`` (``hidden_states[i]`` is then the last entry computed; no
        logits), which is what activation collection for a sparse autoencoder needs.
        """
        b, t = ids.shape
        if t > self.cfg.context:
            raise ValueError(f"sequence of {t} tokens exceeds the model context ({self.cfg.context})")
        x = F.embedding(ids, self.tok_emb)
        if self.pos_emb is not None:
            x = x + self.pos_emb[:t]
        rope = self._rope(t, ids.device)
        states = [x] if hidden else None
        n = self.cfg.n_layer
        stop = n if upto is None else min(int(upto), n)
        for i in range(stop):
            x = self.blocks[i](x, rope)
            if hidden and i < n - 1:
                states.append(x)
        if stop < n:
            return None, tuple(states) if hidden else None
        x = self.ln_f(x)
        if hidden:
            states.append(x)
        out = F.linear(x, self.tok_emb) if logits else None
        return out, tuple(states) if hidden else None
