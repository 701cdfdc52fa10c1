"""Expanding user paths: a Parquet file, a directory of them, or a glob; local or any fsspec URL."""
from __future__ import annotations

import os

import fsspec

from lmsieve.schemas.errors import InputError


def expand_paths(spec) -> list[str]:
    """Sorted list of Parquet files named by a path, directory, glob, or a list of those."""
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for s in specs:
        s = os.fspath(s)
        fs, path = fsspec.core.url_to_fs(s)
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        prefix = "" if proto in ("file", "local") else f"{proto}://"
        if any(c in path for c in "*?["):
            found = sorted(fs.glob(path))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
        elif fs.exists(path):
            found = [path]
        else:
            raise InputError("no such file or directory", s)
        if not found:
            raise InputError("matches no Parquet files", s)
        out.extend(prefix + p if prefix and not p.startswith(prefix) else p for p in found)
    return out


def open_file(path: str, mode: str = "rb"):
    return fsspec.open(path, mode).open()


def file_size(path: str) -> int:
    fs, p = fsspec.core.url_to_fs(path)
    return int(fs.size(p))
