"""Expanding user paths into input files: a file, a directory, a glob, or a list of those; local or
any fsspec URL.

* a **file** is read whatever its name (its format is chosen by :mod:`lmsieve.io.formats`);
* a **directory** means every input file under it (recursively, sorted, hidden files and folders
  such as ``.lmsieve-runs`` left out): Parquet, JSON Lines (``.jsonl``, ``.ndjson``, ``.json.gz``,
  ``.jsonl.zst``, ...), CSV/TSV; plain ``.json`` files (manifests, dataset cards) are not inputs;
* a **Hugging Face ``datasets`` directory** (``save_to_disk``: ``state.json`` + ``*.arrow``) means its
  Arrow shards in the order ``state.json`` lists them; a ``DatasetDict`` directory
  (``dataset_dict.json``) with one split means that split, with several it is an error naming them;
* a **glob** means the files it matches.
"""
from __future__ import annotations

import json
import os

import fsspec

from lmsieve.schemas.errors import ConfigError, InputError


def _datasets_dir(fs, path: str, shown: str) -> list[str] | None:
    """The Arrow shards of a ``save_to_disk`` directory, or None when ``path`` is not one."""
    if fs.exists(f"{path}/dataset_dict.json"):
        with fs.open(f"{path}/dataset_dict.json") as f:
            splits = json.load(f).get("splits", [])
        if len(splits) == 1:
            return _datasets_dir(fs, f"{path}/{splits[0]}", f"{shown}/{splits[0]}")
        raise InputError(f"a Hugging Face DatasetDict with splits {', '.join(splits)}; name one, "
                         f"e.g. {shown.rstrip('/')}/{splits[0] if splits else 'train'}", shown)
    if not fs.exists(f"{path}/state.json"):
        return None
    with fs.open(f"{path}/state.json") as f:
        state = json.load(f)
    files = [d["filename"] for d in state.get("_data_files", [])]
    if not files:
        raise InputError("a Hugging Face datasets directory whose state.json lists no data files", shown)
    return [f"{path.rstrip('/')}/{n}" for n in files]


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/") if part)


def expand_paths(spec, parquet_only: bool = False) -> list[str]:
    """Sorted input files named by a path, directory, glob, or a list of those.

    ``parquet_only``: for readers that take only Parquet (Beam jobs); other inputs are an error
    saying how to convert them."""
    from lmsieve.io.formats import EXPECTED, is_input_name, split_suffix

    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for s in specs:
        s = os.fspath(s)
        fs, path = fsspec.core.url_to_fs(s)
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        prefix = "" if proto in ("file", "local") else f"{proto}://"
        if any(c in path for c in "*?["):
            found = sorted(p for p in fs.glob(path) if not fs.isdir(p))
        elif fs.isdir(path):
            found = _datasets_dir(fs, path.rstrip("/"), s)
            if found is None:
                root = path.rstrip("/")
                found = sorted(p for p in fs.find(path)
                               if is_input_name(p, in_directory=True) and not _hidden(p[len(root):]))
        elif fs.exists(path):
            found = [path]
        else:
            raise InputError("no such file or directory", s)
        if not found:
            raise InputError(f"matches no input files (expected {EXPECTED})", s)
        if parquet_only:
            other = [p for p in found if split_suffix(p)[0] not in ("parquet", None)]
            if other:
                raise InputError(f"{other[0]} is not Parquet; Beam jobs and datatrove steps read Parquet: convert "
                                 "it first with `lmsieve convert IN --out DIR` (same reader, same ids)", s)
        out.extend(prefix + p if prefix and not p.startswith(prefix) else p for p in found)
    return out


def open_file(path: str, mode: str = "rb"):
    return fsspec.open(path, mode).open()


def file_size(path: str) -> int:
    fs, p = fsspec.core.url_to_fs(path)
    return int(fs.size(p))


def is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def check_out(path: str, kind: str = "dir", flag: str = "--out", example: str = "") -> None:
    """Refuse an output path of the wrong kind before any work (nothing is created or left behind).

    ``kind``: "dir" (a directory the command fills) or "file" (one file)."""
    if is_remote(path):
        return
    p = str(path).removeprefix("file://")
    if kind == "dir":
        if os.path.exists(p) and not os.path.isdir(p):
            raise ConfigError(f"{flag} {path}: is an existing file; this command writes a directory"
                              f"{' (' + example + ')' if example else ''}")
    else:
        if p.endswith(("/", os.sep)) or os.path.isdir(p):
            raise ConfigError(f"{flag} {path}: is a directory; this command writes one file"
                              f"{' (e.g. ' + example + ')' if example else ''}")
        p = os.path.dirname(os.path.abspath(p))
    # the nearest existing ancestor must be a directory
    q = os.path.abspath(p)
    while q and not os.path.exists(q):
        q = os.path.dirname(q)
    if q and not os.path.isdir(q):
        raise ConfigError(f"{flag} {path}: {q} is a file, not a directory")
