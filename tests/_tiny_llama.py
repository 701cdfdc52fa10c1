"""A tiny random-init Llama as a *foreign* Hugging Face model directory, built in the test session.

Written with ``transformers`` and ``tokenizers`` directly (no lmsieve code, no ``lmsieve.json``),
exactly what a user's ``save_pretrained`` would leave: ``config.json``, ``model.safetensors``,
``tokenizer.json`` + ``tokenizer_config.json`` (a byte-level BPE trained here on ``texts``).
Everything that takes ``model=`` must accept it. Shared by the model-stack, CoLoR-Filter,
PreSelect, MATES, RDS+ and MONA tests; about 2 s the first time, cached per session and arguments.

    from _tiny_llama import tiny_llama_dir, smollm2_dir
    d = tiny_llama_dir()                      # default texts: built-in English + Python snippets
    d = tiny_llama_dir(n_layer=3, seed=1)     # another architecture / init (a different model)
    d = smollm2_dir()                         # the fetched SmolLM2-135M, or pytest.skip
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

_WORDS = ("the cat sat on the mat while a dog ran in the park and the sun was warm over the quiet town "
          "def main(args): return [x * 2 for x in range(10) if x % 3] import numpy as np class Model: pass "
          "print('hello world') for i in range(len(items)): total += items[i] # sum the values")
DEFAULT_TEXTS = tuple(_WORDS[i:] + " " + _WORDS[:i] for i in range(0, len(_WORDS), 7))


def build_tiny_llama(out: Path, texts=DEFAULT_TEXTS, *, vocab_size: int = 400, n_layer: int = 2, d_model: int = 64,
                     n_head: int = 4, context: int = 256, seed: int = 0) -> Path:
    """Write a random-init LlamaForCausalLM + BPE tokenizer to ``out`` (weights from ``seed``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=d_model, intermediate_size=2 * d_model,
                      num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_head,
                      max_position_embeddings=context, tie_word_embeddings=True, bos_token_id=hf_tok.bos_token_id,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    hf_tok.save_pretrained(str(out))
    return out


@functools.lru_cache(maxsize=8)
def _cached(texts: tuple, kw: tuple) -> Path:
    root = tempfile.mkdtemp(prefix="lmsieve-tiny-llama-")
    atexit.register(shutil.rmtree, root, True)
    return build_tiny_llama(Path(root) / "llama", texts, **dict(kw))


def tiny_llama_dir(texts=None, **kw) -> Path:
    """The session's tiny Llama directory for these texts/arguments; do not modify it."""
    return _cached(tuple(texts) if texts is not None else DEFAULT_TEXTS, tuple(sorted(kw.items())))


def smollm2_dir() -> Path:
    """SmolLM2-135M from the lmsieve model cache (``lmsieve models fetch smollm2-135m``), or skip."""
    try:
        from lmsieve.models import resolve
    except ImportError:
        pytest.skip("lmsieve.models is not available")
    from lmsieve.schemas.errors import ConfigError

    try:
        return Path(resolve("smollm2-135m"))
    except ConfigError:
        pytest.skip("SmolLM2-135M is not in the model cache (lmsieve models fetch smollm2-135m)")
