"""Resumable multi-step runs: a run directory keyed by a hash of the configuration.

A multi-step command (``select``: load → fit → score → sample → write) keeps each finished
step's artifacts under ``OUT/.lmsieve-runs/<key>/<step>/``, where ``<key>`` is a hash of
everything that determines the result (method, parameters, seed, budget, input checksums,
lmsieve version: the caller's ``config`` dict). A rerun with the same configuration finds the
finished steps and skips them; a different configuration gets a different directory.

Atomicity, the same rule as :mod:`lmsieve.io.output`: a step writes into
``<key>/<step>.tmp-<token>/``, then writes its marker ``step.json`` (last, inside the temporary
directory) and renames the directory to ``<key>/<step>``. A step is done exactly when
``<key>/<step>/step.json`` exists, so a run killed at any point (even by SIGKILL) leaves either a
complete step or none; leftover temporary directories are removed when the run directory is
opened again (one run per directory at a time).

Local directories only (``Selector.save`` writes local files); commands skip resuming for remote
outputs. See ``docs/resume.md``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

RUNS_DIR = ".lmsieve-runs"
STEP_MARKER = "step.json"
CONFIG_FILE = "config.json"
_TMP = ".tmp-"

log = logging.getLogger("lmsieve.runs")


def _plain(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    raise TypeError(f"not JSON-able in a run configuration: {type(o).__name__}")


def config_hash(config: dict) -> str:
    """A stable 16-hex-digit key of a JSON-able configuration (sorted keys, no whitespace)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}{_TMP}{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_plain)
        f.write("\n")
    os.replace(tmp, path)


class RunDir:
    """The run directory of one configuration under ``root`` (``OUT/.lmsieve-runs``).

    ``resume=False`` deletes what an earlier run of this configuration recorded, so every step is
    computed again (and recorded afresh). ``enabled=False`` is a run that records nothing and
    skips nothing (remote outputs, or a caller that opts out).
    """

    def __init__(self, root: str | os.PathLike, config: dict, *, resume: bool = True, enabled: bool = True,
                 echo: Callable[[str], None] | None = None):
        self.config = config
        self.key = config_hash(config)
        self.root = os.fspath(root)
        self.path = os.path.join(self.root, self.key)
        self.enabled = enabled
        self.echo = echo or log.info
        if not enabled:
            return
        if not resume and os.path.isdir(self.path):
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        for stale in glob.glob(os.path.join(glob.escape(self.path), f"*{_TMP}*")):
            if os.path.isdir(stale):
                shutil.rmtree(stale, ignore_errors=True)
            else:
                os.remove(stale)
        if not os.path.exists(os.path.join(self.path, CONFIG_FILE)):
            _write_json(os.path.join(self.path, CONFIG_FILE), config)

    def step_path(self, name: str) -> str:
        return os.path.join(self.path, name)

    def done(self, name: str) -> bool:
        """Whether step ``name`` finished (its marker exists)."""
        return self.enabled and os.path.exists(os.path.join(self.step_path(name), STEP_MARKER))

    @contextmanager
    def step(self, name: str, info: dict | None = None) -> Iterator[str]:
        """Write a step's artifacts into the yielded temporary directory; on success the marker is
        written last and the directory renamed to ``<key>/<name>``. On error nothing is recorded."""
        if not self.enabled:
            raise RuntimeError("this run records no steps (enabled=False)")
        tmp = os.path.join(self.path, f"{name}{_TMP}{uuid.uuid4().hex[:12]}")
        os.makedirs(tmp)
        try:
            yield tmp
            _write_json(os.path.join(tmp, STEP_MARKER), {"step": name, "run": self.key, **(info or {})})
            final = self.step_path(name)
            if os.path.exists(final):  # an incomplete or superseded copy (no marker, or recomputed)
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)

    def cached(self, name: str, compute: Callable[[], Any], save: Callable[[Any, str], None],
               load: Callable[[str], Any]) -> Any:
        """``load(dir)`` if the step is done (logged as skipped), else ``compute()``, recorded by
        ``save(value, dir)`` when the run is enabled."""
        if self.done(name):
            self.echo(f"resume: step '{name}' already done ({self.step_path(name)}), skipped")
            return load(self.step_path(name))
        value = compute()
        self.record(name, value, save)
        return value

    def record(self, name: str, value: Any, save: Callable[[Any, str], None]) -> None:
        """Record an already computed step (when one computation finishes two steps at once)."""
        if self.enabled:
            with self.step(name) as d:
                save(value, d)

    def prune_others(self) -> None:
        """Remove the run directories of other configurations under the same root (call after the
        output is committed: they describe runs whose output this one replaced)."""
        if not self.enabled:
            return
        for d in glob.glob(os.path.join(glob.escape(self.root), "*")):
            if os.path.basename(d) != self.key and os.path.isdir(d):
                shutil.rmtree(d, ignore_errors=True)


def run_root(out_dir: str) -> str | None:
    """``OUT/.lmsieve-runs`` for a local output directory; None for a remote URL (no resuming)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(os.fspath(out_dir))
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return os.path.join(path, RUNS_DIR) if "file" in protocols or "local" in protocols else None


__all__ = ["RUNS_DIR", "RunDir", "config_hash", "run_root"]
