"""Atomic run outputs: files appear by rename, and ``manifest.json`` is written last.

A run writes into ``DIR/.tmp-<token>/``; on success each file is renamed into ``DIR`` and the
manifest is written (itself by rename) at the end, so a directory with a manifest is complete and
one without it is not. A failed run leaves no file under its final name, and the temporary
directory a killed run leaves behind is removed by the next run into ``DIR``.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid

import fsspec

MANIFEST = "manifest.json"
#: Rows per output shard (``PREFIX-NNNNN-of-NNNNN.parquet``).
SHARD_ROWS = 100_000


class RunOutput:
    """Context manager for a run's output directory (local or fsspec URL)."""

    def __init__(self, out_dir: str, overwrite: bool = True):
        self.out_dir = os.fspath(out_dir)
        self.fs, self.root = fsspec.core.url_to_fs(self.out_dir)
        self.tmp = f"{self.root.rstrip('/')}/.tmp-{uuid.uuid4().hex[:12]}"
        self.overwrite = overwrite
        self._files: list[str] = []

    def __enter__(self) -> "RunOutput":
        self.fs.makedirs(self.root, exist_ok=True)
        manifest = f"{self.root}/{MANIFEST}"
        if self.fs.exists(manifest):
            if not self.overwrite:
                raise FileExistsError(f"{self.out_dir} already holds a finished run")
            self.fs.rm(manifest)  # the old run is no longer complete from here on
        for stale in self.fs.glob(f"{self.root.rstrip('/')}/.tmp-*"):  # left by a killed run (one run per dir)
            self.fs.rm(stale, recursive=True)
        self.fs.makedirs(self.tmp, exist_ok=True)
        return self

    def path(self, name: str) -> str:
        """Temporary path to write ``name`` to; it is renamed into place by ``commit``."""
        self._files.append(name)
        p = f"{self.tmp}/{name}"
        if self.fs.protocol in ("file", "local") or "file" in self.fs.protocol:
            return p
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{proto}://{p}"

    def commit(self, manifest: dict) -> str:
        for name in self._files:
            self.fs.mv(f"{self.tmp}/{name}", f"{self.root}/{name}")
        tmp_manifest = f"{self.tmp}/{MANIFEST}"
        with self.fs.open(tmp_manifest, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
        self.fs.mv(tmp_manifest, f"{self.root}/{MANIFEST}")
        self._cleanup()
        return f"{self.out_dir.rstrip('/')}/{MANIFEST}"

    def _cleanup(self) -> None:
        if self.fs.exists(self.tmp):
            if self.fs.protocol in ("file", "local") or "file" in self.fs.protocol:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                self.fs.rm(self.tmp, recursive=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cleanup()


def write_shards(out: "RunOutput", table, prefix: str, shard_rows: int = SHARD_ROWS) -> list[dict]:
    """``table`` as ``PREFIX-NNNNN-of-NNNNN.parquet`` files in ``out`` (at least one, even when
    empty); returns ``[{"path", "rows"}]`` for the manifest."""
    from lmsieve.io.parquet import write_table

    n = max(1, -(-table.num_rows // shard_rows))
    outputs = []
    for i in range(n):
        name = f"{prefix}-{i:05d}-of-{n:05d}.parquet"
        part = table.slice(i * shard_rows, shard_rows)
        write_table(part, out.path(name))
        outputs.append({"path": name, "rows": part.num_rows})
    return outputs
