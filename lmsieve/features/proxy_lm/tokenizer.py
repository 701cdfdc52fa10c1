"""Tokenizers that need no download: raw UTF-8 bytes, or a byte-level BPE trained on the data.

Both reserve ``<bos>``, ``<eos>`` and ``<pad>``. Every scored sequence starts with ``<bos>`` so
the first token of a document is predicted too (bits per character then cover every byte).
Documents are never split into tokens that depend on their neighbours: each document is
encoded on its own.

* ``byte``: ids 0-255 are the UTF-8 bytes, 256/257/258 are bos/eos/pad; encoding is a view of
  the Arrow string buffer (no Python per character).
* ``bpe``: a ``tokenizers`` BPE over GPT-2-style byte-level pre-tokens (so no input is ever out
  of vocabulary), trained with ``BpeTrainer`` on the training documents; deterministic for the same
  documents in the same order. Saved as the library's own ``tokenizer.json`` (plain JSON).
* :class:`HFTokenizer` adapts the tokenizer of a Hugging Face causal LM (``bos_token_id``, else
  ``eos_token_id``, serves as the sequence start; with neither, a sequence's first token is
  context only).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from lmsieve.features.proxy_lm.config import TokenizerConfig
from lmsieve.schemas.document import text_array


class ByteTokenizer:
    kind = "byte"
    vocab_size = 259
    bos_id, eos_id, pad_id = 256, 257, 258

    def encode_batch(self, batch) -> list[np.ndarray]:
        arr = text_array(batch)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        ids = data.astype(np.int32)
        return [ids[offsets[i]:offsets[i + 1]] for i in range(len(arr))]

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"lmsieve_tokenizer": "byte", "version": 1})


class BPETokenizer:
    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.bos_id, self.eos_id, self.pad_id = (tok.token_to_id(s) for s in ("<bos>", "<eos>", "<pad>"))
        if None in (self.bos_id, self.eos_id, self.pad_id):
            raise ValueError("BPE tokenizer lacks <bos>/<eos>/<pad>")

    @classmethod
    def train(cls, texts, cfg: TokenizerConfig) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=list(cfg.specials), min_frequency=2,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    def encode_batch(self, batch) -> list[np.ndarray]:
        texts = text_array(batch).to_pylist()
        return [np.asarray(e.ids, dtype=np.int32) for e in self.tok.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def to_json(self) -> str:
        return self.tok.to_str()


class HFTokenizer:
    """The tokenizer of a local Hugging Face model directory, behind the same interface."""

    kind = "hf"

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        self.vocab_size = len(self.tok)
        self.bos_id = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        self.eos_id = self.tok.eos_token_id
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0

    def encode_batch(self, batch) -> list[np.ndarray]:
        texts = text_array(batch).to_pylist()
        out = self.tok(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [np.asarray(ids, dtype=np.int32) for ids in out]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])


def train_tokenizer(cfg: TokenizerConfig, texts: pa.Array | list[str]):
    """The tokenizer ``cfg`` asks for; BPE is trained on the first ``cfg.sample_docs`` texts."""
    cfg.validate()
    if cfg.kind == "byte":
        return ByteTokenizer()
    texts = text_array(texts)
    return BPETokenizer.train(texts.slice(0, cfg.sample_docs).to_pylist(), cfg)


def tokenizer_from_json(text: str):
    """Load a tokenizer saved by :meth:`to_json` (plain JSON; nothing executable)."""
    data = json.loads(text)
    if data.get("lmsieve_tokenizer") == "byte":
        return ByteTokenizer()
    from tokenizers import Tokenizer

    return BPETokenizer(Tokenizer.from_str(text))
