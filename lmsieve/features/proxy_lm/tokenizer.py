"""Tokenizers: a byte-level BPE trained with ``tokenizers`` for proxies trained from scratch, or a model's own.

Every language model lmsieve runs carries a Hugging Face tokenizer saved in its directory
(``tokenizer.json`` + ``tokenizer_config.json``), read back with ``AutoTokenizer`` (local files
only, no remote code). :class:`LMTokenizer` puts one interface in front of it: ``encode_batch``
(each document on its own, without special tokens, through the fast backend), ``bos_id`` (the
model's ``bos_token_id``, else its ``eos_token_id``: every scored sequence starts with it, so a
document's first token is predicted too; with neither, the first token is context only),
``pad_id`` and ``vocab_size``.

Proxies trained from scratch (:func:`train_tokenizer`):

* ``bpe``: a ``tokenizers`` BPE over GPT-2-style byte-level pre-tokens (no input is ever out of
  vocabulary), trained with ``BpeTrainer`` on the first ``sample_docs`` training documents;
  deterministic for the same documents in the same order;
* ``byte``: the same byte-level model with no merges (vocabulary: ``<bos>``, ``<eos>``, ``<pad>``
  and the 256 bytes), so one token is one UTF-8 byte, for losses comparable across runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lmsieve.features.proxy_lm.config import TokenizerConfig
from lmsieve.schemas.document import text_array
from lmsieve.schemas.errors import ConfigError


class LMTokenizer:
    """A Hugging Face tokenizer behind the interface losses, pooling and training use."""

    def __init__(self, hf, kind: str = "hf"):
        self.hf, self.kind = hf, kind
        self.backend = getattr(hf, "backend_tokenizer", None) if getattr(hf, "is_fast", False) else None
        self.vocab_size = len(hf)
        self.eos_id = hf.eos_token_id
        self.bos_id = hf.bos_token_id if hf.bos_token_id is not None else hf.eos_token_id
        pad = hf.pad_token_id if hf.pad_token_id is not None else self.eos_id
        self.pad_id = int(pad) if pad is not None else 0

    @classmethod
    def from_dir(cls, path: str | Path, kind: str = "hf") -> "LMTokenizer":
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"model {str(path)!r}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from None
        return cls(hf, kind)

    @classmethod
    def from_tokenizers(cls, tok, cfg: TokenizerConfig) -> "LMTokenizer":
        from transformers import PreTrainedTokenizerFast

        bos, eos, pad = cfg.specials[:3]
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)
        return cls(hf, cfg.kind)

    def encode_batch(self, batch) -> list[np.ndarray]:
        texts = text_array(batch).to_pylist()
        texts = ["" if t is None else t for t in texts]
        if self.backend is not None:
            enc = self.backend.encode_batch_fast(texts, add_special_tokens=False)
            return [np.asarray(e.ids, dtype=np.int32) for e in enc]
        out = self.hf(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [np.asarray(ids, dtype=np.int32) for ids in out]

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in ids])

    def save(self, out_dir: str | Path) -> None:
        self.hf.save_pretrained(str(out_dir))


def train_tokenizer(cfg: TokenizerConfig, texts) -> LMTokenizer:
    """The tokenizer ``cfg`` asks for; BPE is trained on the first ``cfg.sample_docs`` texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    cfg.validate()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=cfg.kind == "bpe")
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = cfg.vocab_size if cfg.kind == "bpe" else len(alphabet) + len(cfg.specials)
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=list(cfg.specials), min_frequency=2,
                                  initial_alphabet=alphabet, show_progress=False)
    sample = text_array(texts).slice(0, cfg.sample_docs).to_pylist() if cfg.kind == "bpe" else []
    tok.train_from_iterator([t for t in sample if t], trainer)
    return LMTokenizer.from_tokenizers(tok, cfg)


__all__ = ["LMTokenizer", "train_tokenizer"]
