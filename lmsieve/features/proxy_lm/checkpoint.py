"""Causal LMs as Hugging Face model directories: lmsieve's proxies and any local ``transformers`` model.

One code path for every model. A directory holds what ``save_pretrained`` writes (``config.json``,
``model.safetensors`` or shards, ``tokenizer.json`` + ``tokenizer_config.json``); an lmsieve proxy
adds ``lmsieve.json`` (``"format": "lmsieve-proxy-lm"``: how it was trained, its context, its step)
and, when saved with its optimizer, ``optimizer.safetensors`` + ``optimizer.json`` (AdamW moments by
parameter name). Loading is ``AutoModelForCausalLM.from_pretrained(local_files_only=True,
use_safetensors=True, trust_remote_code=False)``: a directory with only a pickle
(``pytorch_model.bin``) is refused, and nothing in a directory can run code. ``model=`` may also
name a model fetched with ``lmsieve models fetch NAME`` (:func:`resolve_model`); never a hub id.

Inference defaults (:func:`load_proxy`): ``device="auto"`` (CUDA when present), dtype bf16 on CUDA
and float32 on CPU (``dtype="float16"`` on request), ``device_map="auto"`` (accelerate) when the
weights do not fit on one GPU, and a context capped at ``max_context`` (2,048 by default for a
foreign model, whatever its ``max_position_embeddings`` says; a proxy's own training context).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from lmsieve.features.device import autocast, generator, resolve_device, resolve_dtype
from lmsieve.features.proxy_lm.config import ModelConfig, TokenizerConfig, TrainConfig
from lmsieve.features.proxy_lm.tokenizer import LMTokenizer
from lmsieve.features.store import hash_files
from lmsieve.schemas.errors import ConfigError

FORMAT = "lmsieve-proxy-lm"
META = "lmsieve.json"
#: Context of a foreign model unless ``max_context`` says otherwise (RDS+ truncates at 2,048;
#: PreSelect's 1,900-token window fits). ``max_position_embeddings`` can be 131,072.
DEFAULT_MAX_CONTEXT = 2048
#: Logits computed at once when scoring (rows x vocabulary floats): bounds memory for 49k-150k vocabularies.
LOGIT_FLOATS = 1 << 25
log = logging.getLogger("lmsieve")


class _Stop(Exception):
    pass


def _quiet() -> None:
    """No per-file progress bars from transformers' own load/save (lmsieve shows its own progress)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class LoadedLM:
    """A causal LM with its tokenizer: ``model`` (transformers), ``tokenizer``, ``context``, ``device``.

    ``kind`` is ``"lmsieve"`` for a proxy lmsieve trained (or fine-tuned), ``"hf"`` for any other.
    Training state: ``optimizer`` (AdamW or None), ``step``, ``history`` (losses of the last run).
    """

    def __init__(self, model, tokenizer: LMTokenizer, *, device=None, context: int | None = None,
                 path: Path | None = None, meta: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device if device is not None else model.get_input_embeddings().weight.device
        cfg = model.config
        limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 1 << 30
        self.context = int(min(limit, context or DEFAULT_MAX_CONTEXT))
        self.path = path
        meta = meta or {}
        self.kind = "lmsieve" if meta.get("format") == FORMAT else "hf"
        self.tok_cfg = TokenizerConfig.from_dict(meta["tokenizer"]) if meta.get("tokenizer") else None
        self.model_cfg = ModelConfig.from_dict(meta["model"]) if meta.get("model") else None
        self.train_cfg = TrainConfig.from_dict(meta.get("train")) if meta.get("train") else TrainConfig()
        self.step = int(meta.get("step", 0))
        self.base = meta.get("base")
        self.optimizer: torch.optim.Optimizer | None = None
        self.history: list[float] = []

    # -- description ---------------------------------------------------------------------------
    @property
    def config(self) -> ModelConfig | None:
        return self.model_cfg

    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def model_hash(self) -> str:
        if self.path is None:
            raise ConfigError("this model was never saved; save it to give it a fingerprint")
        return hash_files(self.path)

    def meta(self) -> dict:
        return {"format": FORMAT, "version": 2, "context": self.context, "step": int(self.step), "base": self.base,
                "model": self.model_cfg.to_dict() if self.model_cfg else None,
                "tokenizer": self.tok_cfg.to_dict() if self.tok_cfg else None, "train": self.train_cfg.to_dict()}

    # -- forward passes ------------------------------------------------------------------------
    def _mask(self, ids, mask):
        return torch.ones_like(ids) if mask is None else mask.to(ids.device).long()

    def run(self, ids: torch.Tensor, mask: torch.Tensor | None = None, *, hidden: bool = False, logits: bool = True,
            upto: int | None = None):
        """``(logits, hidden_states)`` for right-padded ``ids`` (``mask`` None = no padding).

        ``hidden_states`` follows transformers: entry 0 the embeddings, entry i the residual stream
        after block i, the last one after the final norm. ``upto=i`` stops after block ``i`` (no
        logits; only ``hidden_states[:i + 1]``), which is what SAE activation collection needs.
        """
        ids = ids.to(self.device)
        if upto is not None and upto < self.num_layers():
            return None, self._states_upto(ids, self._mask(ids, mask), int(upto))
        prefix = getattr(self.model, "base_model_prefix", "")
        body = self.model if logits or not hasattr(self.model, prefix) else getattr(self.model, prefix)
        with autocast(self.device):  # without logits, the body alone (no vocabulary projection)
            out = body(input_ids=ids, attention_mask=self._mask(ids, mask), output_hidden_states=hidden, use_cache=False)
        return (out.logits if logits else None), (tuple(out.hidden_states) if hidden else None)

    def _states_upto(self, ids, mask, upto: int):
        base = getattr(self.model, self.model.base_model_prefix)
        states, hooks = [], []
        hooks.append(base.get_input_embeddings().register_forward_hook(lambda m, i, o: states.append(o)))

        def grab(m, i, o):
            states.append(o[0] if isinstance(o, tuple) else o)
            if len(states) > upto:
                raise _Stop

        hooks += [layer.register_forward_hook(grab) for layer in base.layers[:upto]]
        try:
            with autocast(self.device):
                base(input_ids=ids, attention_mask=mask, use_cache=False)
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        return tuple(states[: upto + 1])

    def token_nll(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """float32 ``(B, T-1)``: NLL of ``ids[:, 1:]`` given the prefix; logits in slices of rows."""
        ids = ids.to(self.device)
        inp, tgt = ids[:, :-1], ids[:, 1:]
        am = self._mask(inp, None if mask is None else mask[:, : inp.shape[1]])
        cfg = self.model.config
        special = any(getattr(cfg, k, None) not in (None, 1.0) for k in
                      ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        head = self.model.get_output_embeddings()
        prefix = getattr(self.model, "base_model_prefix", "")
        if special or head is None or not hasattr(self.model, prefix):
            logits, _ = self.run(inp, am)
            b, t, v = logits.shape
            return torch.nn.functional.cross_entropy(logits.float().reshape(b * t, v), tgt.reshape(-1),
                                                     reduction="none").view(b, t)
        with autocast(self.device):
            h = getattr(self.model, prefix)(input_ids=inp, attention_mask=am, use_cache=False).last_hidden_state
        b, t, d = h.shape
        flat, tflat = h.reshape(b * t, d), tgt.reshape(-1).to(h.device)
        rows = max(1, LOGIT_FLOATS // head.weight.shape[0])
        out = torch.empty(b * t, dtype=torch.float32, device=h.device)
        for s in range(0, b * t, rows):
            with autocast(self.device):
                lg = head(flat[s:s + rows])
            out[s:s + rows] = torch.nn.functional.cross_entropy(lg.float(), tflat[s:s + rows], reduction="none")
        return out.view(b, t)


# Older names of the one class (lmsieve proxies and HF models were two classes before).
ProxyLM = HFCausalLM = LoadedLM


def build_model(cfg: ModelConfig, tokenizer: LMTokenizer, seed: int):
    """A randomly initialised ``LlamaForCausalLM`` from ``cfg``, weights from a seeded generator only.

    GPT-2 style init: N(0, 0.02) for every matrix and the (tied) embedding, residual output
    projections (``o_proj``, ``down_proj``) scaled by 1/sqrt(2 n_layer), norms at 1. The model is
    first built under ``fork_rng`` so that transformers' own init leaves the global RNG as it was.
    """
    import math

    from transformers import LlamaForCausalLM

    hf_cfg = cfg.to_hf(tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
    hf_cfg._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        model = LlamaForCausalLM(hf_cfg)
    g = generator(seed)
    std_out = 0.02 / math.sqrt(2 * cfg.n_layer)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, std_out if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02, generator=g)
    return model.float()


def resolve_model(ref: str | os.PathLike) -> Path:
    """A local directory as given, or a name fetched with ``lmsieve models fetch`` (``lmsieve.models``)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    try:
        from lmsieve.models import resolve
    except ImportError:
        raise ConfigError(f"model {str(ref)!r}: not a directory (give a local Hugging Face model directory "
                          "or an lmsieve proxy checkpoint)") from None
    return Path(resolve(str(ref)))


def _weights_bytes(path: Path, dtype: torch.dtype) -> float:
    """Bytes the weights take in ``dtype``: file sizes rescaled from the stored dtype of ``config.json``."""
    stored = json.loads((path / "config.json").read_text())
    stored = stored.get("dtype") or stored.get("torch_dtype") or "float32"
    size = {"float32": 4, "bfloat16": 2, "float16": 2}.get(stored, 4)
    files = sum(p.stat().st_size for p in path.glob("*.safetensors") if not p.name.startswith("optimizer"))
    return files / size * torch.finfo(dtype).bits / 8


def load_proxy(ref: str | os.PathLike, *, device="auto", with_optimizer: bool = False, dtype="auto",
               max_context: int | None = None, device_map: str | None = None) -> LoadedLM:
    """Load a causal LM directory (an lmsieve proxy or any safetensors HF causal LM) or a fetched model name.

    ``dtype``: ``auto`` (bf16 on CUDA, float32 on CPU), ``float32``, ``bfloat16``, ``float16``.
    ``device_map``: ``"auto"`` spreads the model over the visible GPUs (and CPU) with accelerate; by
    default it is used only when ``device`` resolves to CUDA and the weights exceed 90% of the free
    memory of the first GPU. ``max_context`` caps the context (default: the proxy's own, else 2,048).
    """
    from transformers import AutoModelForCausalLM

    _quiet()
    path = resolve_model(ref).resolve()
    if not (path / "config.json").is_file():
        raise ConfigError(f"model {str(ref)!r}: no config.json (not a Hugging Face model directory)")
    meta = json.loads((path / META).read_text()) if (path / META).is_file() else {}
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if device_map is None and dev.type == "cuda":
        free = torch.cuda.mem_get_info(dev)[0]
        if _weights_bytes(path, dt) > 0.9 * free:
            device_map = "auto"
            log.info("model %s does not fit on %s: device_map='auto'", path.name, dev)
    kwargs = {"device_map": device_map} if device_map else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, use_safetensors=True,
                                                     trust_remote_code=False, dtype=dt, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"model {str(ref)!r}: cannot load as a safetensors Hugging Face causal LM "
                          f"({str(exc).splitlines()[0]})") from None
    if not device_map:
        model = model.to(dev)
    tok = LMTokenizer.from_dir(path, kind=(meta.get("tokenizer") or {}).get("kind", "hf"))
    if tok.vocab_size > model.config.vocab_size:
        raise ConfigError(f"model {str(ref)!r}: tokenizer has {tok.vocab_size} ids, model {model.config.vocab_size}")
    lm = LoadedLM(model, tok, device=None if device_map else dev, context=max_context or meta.get("context"),
                  path=path, meta=meta)
    if with_optimizer:
        from lmsieve.features.proxy_lm.train import load_optimizer

        lm.model.float()
        lm.optimizer = load_optimizer(lm.model, path, lm.train_cfg)
    return lm


def save_proxy(lm: LoadedLM, out_dir: str | os.PathLike, *, optimizer: bool = False) -> Path:
    """``save_pretrained`` the model and tokenizer, plus ``lmsieve.json`` (and the AdamW state if asked)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if getattr(lm.model, "hf_device_map", None) and len(set(lm.model.hf_device_map.values())) > 1:
        raise ConfigError("save_proxy: a model spread over several devices (device_map) cannot be saved here")
    _quiet()
    lm.model.save_pretrained(str(out))
    lm.tokenizer.save(out)
    (out / META).write_text(json.dumps(lm.meta(), indent=2))
    if optimizer:
        if lm.optimizer is None:
            raise ConfigError("save_proxy(optimizer=True): this model has no optimizer state")
        from lmsieve.features.proxy_lm.train import save_optimizer

        save_optimizer(lm.optimizer, lm.model, out)
    lm.path = out.resolve()
    return out
