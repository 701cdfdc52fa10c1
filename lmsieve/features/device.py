"""Device and dtype selection for the model features: CUDA with bf16 when present, CPU float32 otherwise.

Every extractor takes ``device="auto"`` and goes through :func:`resolve_device`, so the same call
runs on a laptop and on a GPU worker; which device ``auto`` picked is logged once per process
(logger ``lmsieve``). On CPU everything runs in float32 with no autocast, which keeps results
deterministic for a fixed thread count (there is no dropout and no global RNG use anywhere in the
features: randomness comes from :func:`generator`). On CUDA, inference weights are bf16
(:func:`resolve_dtype`; ``"float16"`` on request) and training keeps float32 weights under bf16
autocast; outputs are cast back to float32 before any reduction we report.

The CUDA path is written but was not measured in this repository (no GPU was available).
"""
from __future__ import annotations

import contextlib
import logging

import torch

from lmsieve.schemas.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if not _SAID:
            _SAID.append(dev)
            logging.getLogger("lmsieve").info("device=auto: running models on %s", describe(dev).get("gpu", "cpu"))
        return dev
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device: {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but CUDA is not available")
    return dev


_SAID: list = []
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    """``"auto"``/``None`` -> bf16 on CUDA (fp16 where bf16 is unsupported), float32 on CPU; or as named."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: expected auto, float32, bfloat16 or float16, got {dtype!r}")
    return DTYPES[dtype]


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (when the GPU supports bf16); a no-op context on CPU."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch Generator seeded from ``seed``; the only source of randomness in training."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an int, got {seed!r}")
    g = torch.Generator(device=str(device) if not isinstance(device, str) else device)
    g.manual_seed(seed & ((1 << 63) - 1))
    return g


def describe(device: torch.device) -> dict:
    """What ran where, for manifests and benchmark output."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["autocast"] = "bf16" if torch.cuda.is_bf16_supported() else "none"
    else:
        info["autocast"] = "none"
    return info
