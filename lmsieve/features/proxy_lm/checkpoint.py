"""Proxy-LM checkpoints: safetensors weights + JSON config + JSON tokenizer; never a pickle.

An lmsieve checkpoint directory holds ``config.json`` (``"format": "lmsieve-proxy-lm"``),
``model.safetensors``, ``tokenizer.json`` and, when saved, ``optimizer.safetensors`` +
``optimizer.json`` (AdamW moments and hyper-parameters, keyed by parameter name). Loading reads
only those files, with ``safetensors`` and ``json``: nothing in a checkpoint can run code.

Any other directory holding a ``config.json`` is taken to be a Hugging Face causal LM and loaded
with ``AutoModelForCausalLM.from_pretrained(path, local_files_only=True, use_safetensors=True,
trust_remote_code=False)``: a directory with only ``pytorch_model.bin`` (a pickle) is refused.

:class:`LoadedLM` is the one interface losses, pooling and the SAE use, whichever kind it is.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lmsieve.features.device import autocast, generator, resolve_device
from lmsieve.features.proxy_lm.config import ModelConfig, TokenizerConfig, TrainConfig
from lmsieve.features.proxy_lm.model import GPT
from lmsieve.features.proxy_lm.tokenizer import HFTokenizer, tokenizer_from_json
from lmsieve.features.store import hash_files
from lmsieve.schemas.errors import ConfigError

FORMAT = "lmsieve-proxy-lm"
FILES = ("config.json", "model.safetensors", "tokenizer.json")


class LoadedLM:
    """A causal LM ready for scoring: ``tokenizer``, ``context``, ``device``, :meth:`run`."""

    kind = ""
    tokenizer = None
    context: int = 0
    path: Path | None = None

    def __init__(self, model: torch.nn.Module, device):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()

    def run(self, ids: torch.Tensor, mask: torch.Tensor, *, hidden: bool = False, logits: bool = True,
            upto: int | None = None):
        """``(logits, hidden_states)`` for right-padded ``ids``/``mask`` on this LM's device."""
        raise NotImplementedError

    def model_hash(self) -> str:
        if self.path is None:
            raise ConfigError("this model was never saved; save it to give it a fingerprint")
        return hash_files(self.path, list(FILES)) if self.kind == "lmsieve" else hash_files(self.path)

    def num_layers(self) -> int:
        raise NotImplementedError

    def hidden_size(self) -> int:
        raise NotImplementedError


class ProxyLM(LoadedLM):
    kind = "lmsieve"

    def __init__(self, model: GPT, tokenizer, tok_cfg: TokenizerConfig, train_cfg: TrainConfig | None = None,
                 device="auto", step: int = 0, path: Path | None = None):
        super().__init__(model, device)
        self.tokenizer, self.tok_cfg = tokenizer, tok_cfg
        self.train_cfg = train_cfg or TrainConfig()
        self.context = model.cfg.context
        self.step, self.path = step, path
        self.optimizer: torch.optim.Optimizer | None = None
        self.history: list[float] = []  # training loss per step of the last train/finetune call

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg

    def num_layers(self) -> int:
        return self.model.cfg.n_layer

    def hidden_size(self) -> int:
        return self.model.cfg.d_model

    def run(self, ids, mask, *, hidden=False, logits=True, upto=None):
        with autocast(self.device):
            return self.model(ids, hidden=hidden, logits=logits, upto=upto)


class HFCausalLM(LoadedLM):
    kind = "hf"

    def __init__(self, path: Path, device="auto", dtype=None):
        from transformers import AutoModelForCausalLM

        kwargs = {} if dtype is None else {"dtype": dtype}
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True,
                                                     trust_remote_code=False, **kwargs)
        if resolve_device(device).type == "cpu" and dtype is None:
            model = model.float()  # CPU runs in float32 (deterministic, and bf16 matmuls are slow there)
        super().__init__(model, device)
        self.path = path
        self.tokenizer = HFTokenizer(path)
        cfg = model.config
        ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        self.context = int(ctx or min(self.tokenizer.tok.model_max_length, 4096))

    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def run(self, ids, mask, *, hidden=False, logits=True, upto=None):
        with autocast(self.device):
            out = self.model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=hidden)
        states = tuple(out.hidden_states) if hidden else None
        if upto is not None and states is not None:
            states = states[: upto + 1]
        return (out.logits if logits else None), states


def save_proxy(lm: ProxyLM, out_dir: str | os.PathLike, *, optimizer: bool = False) -> Path:
    """Write ``lm`` (and, with ``optimizer=True``, its AdamW state) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in lm.model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": FORMAT})
    (out / "tokenizer.json").write_text(lm.tokenizer.to_json())
    cfg = {"format": FORMAT, "version": 1, "model": lm.config.to_dict(), "tokenizer": lm.tok_cfg.to_dict(),
           "train": lm.train_cfg.to_dict(), "step": int(lm.step)}
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    if optimizer:
        if lm.optimizer is None:
            raise ConfigError("save_proxy(optimizer=True): this model has no optimizer state")
        from lmsieve.features.proxy_lm.train import save_optimizer

        save_optimizer(lm.optimizer, lm.model, out)
    lm.path = out
    return out


def is_proxy_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path) / "config.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError):
        return False


def load_proxy(path: str | os.PathLike, *, device="auto", with_optimizer: bool = False) -> LoadedLM:
    """An lmsieve proxy checkpoint, or a Hugging Face causal LM directory (safetensors only)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"proxy model {str(path)!r}: not a directory")
    if not is_proxy_checkpoint(path):
        if not (path / "config.json").is_file():
            raise ConfigError(f"proxy model {str(path)!r}: no config.json (neither an lmsieve checkpoint "
                              "nor a Hugging Face model directory)")
        try:
            return HFCausalLM(path.resolve(), device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"proxy model {str(path)!r}: cannot load as a safetensors Hugging Face "
                              f"causal LM ({str(exc).splitlines()[0]})") from None
    cfg = json.loads((path / "config.json").read_text())
    model = GPT(ModelConfig.from_dict(cfg["model"]), generator(0))  # init is overwritten; no global RNG use
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise ConfigError(f"proxy checkpoint {str(path)!r}: missing {', '.join(missing)}")
    model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    tok = tokenizer_from_json((path / "tokenizer.json").read_text())
    if tok.vocab_size > model.cfg.vocab_size:
        raise ConfigError(f"proxy checkpoint {str(path)!r}: tokenizer has {tok.vocab_size} ids, model {model.cfg.vocab_size}")
    lm = ProxyLM(model, tok, TokenizerConfig.from_dict(cfg.get("tokenizer")), TrainConfig.from_dict(cfg.get("train")),
                 device=device, step=int(cfg.get("step", 0)), path=path.resolve())
    if with_optimizer:
        from lmsieve.features.proxy_lm.train import load_optimizer

        lm.optimizer = load_optimizer(lm.model, path, lm.train_cfg)
    return lm
