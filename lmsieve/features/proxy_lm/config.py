"""Configuration of a proxy language model: architecture, training, tokenizer.

A proxy is a Hugging Face ``LlamaForCausalLM`` (:meth:`ModelConfig.to_hf`: RMSNorm, rotary
positions, SwiGLU MLP, tied embeddings, no biases). The defaults are the **default proxy**: 4
layers, 128 wide, a 512-token context (a CoLoR-Filter chunk fits in one window) and a 4,096-token
byte-level BPE trained on the training documents (about 2.7 characters per token on the shared
pool): about 1.3M parameters, trained for 600 AdamW steps of 8 x 512 tokens (2.5M tokens); widen
it where there are more cores or a GPU. Every field is plain JSON, saved in ``lmsieve.json`` next to
the model's own ``config.json``.
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
    d_ff: int = 0  # 0 -> 8/3 * d_model rounded up to a multiple of 32 (SwiGLU: the cost of a 4x GELU MLP)
    context: int = 512
    positions: str = "rotary"  # kept for old configs; Llama has rotary positions only
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def ff(self) -> int:
        return self.d_ff or -(-8 * self.d_model // 3 // 32) * 32

    def to_hf(self, bos_id: int | None = None, eos_id: int | None = None, pad_id: int | None = None):
        """The ``transformers.LlamaConfig`` of this architecture."""
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=self.vocab_size, hidden_size=self.d_model, intermediate_size=self.ff,
                           num_hidden_layers=self.n_layer, num_attention_heads=self.n_head,
                           num_key_value_heads=self.n_head, max_position_embeddings=self.context,
                           rms_norm_eps=self.norm_eps, tie_word_embeddings=True, use_cache=False,
                           rope_parameters={"rope_type": "default", "rope_theta": float(self.rope_base)},
                           bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)

    def validate(self) -> None:
        for k in ("vocab_size", "n_layer", "d_model", "n_head", "context"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"model.{k} must be >= 1")
        if self.d_model % self.n_head:
            raise ConfigError(f"model.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.positions != "rotary":
            raise ConfigError(f"model.positions: proxies are Llama models with rotary positions, got {self.positions!r}")
        if (self.d_model // self.n_head) % 2:
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
    kind: str = "bpe"  # "bpe" (trained on the training documents) or "byte" (a BPE with no merges: UTF-8 bytes)
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
