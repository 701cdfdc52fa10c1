"""Configuration of a proxy language model: architecture, training, tokenizer.

The defaults are the **default proxy**: a 4-layer, 128-wide pre-LN GPT with rotary positions, a
512-token context (a CoLoR-Filter chunk fits in one window) and a 4,096-token byte-level BPE
trained on the training documents (about 2.7 characters per token on the shared pool): 1.3M
parameters, trained for 600 AdamW steps of 8 x 512 tokens (2.5M tokens). That takes about
10-15 minutes on 2 CPU cores (see ``benchmarks/bench_features.py``); widen it (``d_model`` 256
gives 4.2M parameters, about 2.5x the time per token) where there are more cores or a GPU.
Every field is plain JSON, saved next to the weights.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lmsieve.schemas.errors import ConfigError


def _from_dict(cls, data: dict | None, what: str):
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    for f in dataclasses.fields(cls):
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    obj = cls(**data)
    obj.validate()
    return obj


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 4096
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    d_ff: int = 0  # 0 -> 4 * d_model
    context: int = 512
    positions: str = "rotary"  # "rotary" or "learned"
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model

    def validate(self) -> None:
        for k in ("vocab_size", "n_layer", "d_model", "n_head", "context"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"model.{k} must be >= 1")
        if self.d_model % self.n_head:
            raise ConfigError(f"model.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.positions not in ("rotary", "learned"):
            raise ConfigError(f"model.positions: expected 'rotary' or 'learned', got {self.positions!r}")
        if self.positions == "rotary" and (self.d_model // self.n_head) % 2:
            raise ConfigError("model: rotary positions need an even head dimension")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "ModelConfig":
        return _from_dict(cls, data, "model")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ConfigError("train: steps >= 0, batch_size >= 1 and warmup_steps >= 0 are required")
        if not self.lr > 0:
            raise ConfigError("train.lr must be > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("train.min_lr_ratio must be in [0, 1]")
        if len(self.betas) != 2:
            raise ConfigError("train.betas must have two values")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict | None) -> "TrainConfig":
        return _from_dict(cls, data, "train")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = "bpe"  # "bpe" (trained on the training documents) or "byte" (no training)
    vocab_size: int = 4096  # BPE only, special tokens included
    sample_docs: int = 20000  # BPE is trained on at most this many training documents
    specials: tuple = field(default=("<bos>", "<eos>", "<pad>"))

    def validate(self) -> None:
        if self.kind not in ("bpe", "byte"):
            raise ConfigError(f"tokenizer.kind: expected 'bpe' or 'byte', got {self.kind!r}")
        if self.kind == "bpe" and self.vocab_size < 256 + len(self.specials):
            raise ConfigError("tokenizer.vocab_size must be >= 259 (the 256 bytes and the special tokens)")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["specials"] = list(self.specials)
        return d

    @classmethod
    def from_dict(cls, data: dict | None) -> "TokenizerConfig":
        return _from_dict(cls, data, "tokenizer")
