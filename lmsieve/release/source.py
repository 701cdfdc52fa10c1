"""Read a finished selection directory for a release: ``lmsieve select`` or the Beam selection job.

Both write ``selected-XXXXX-of-YYYYY.parquet`` (the selected rows, all input columns, input
order), scores (``scores.parquet``, or ``scores-XXXXX-of-YYYYY.parquet`` from Beam, which may
also be absent when the job ran with ``write_scores = false``) and ``manifest.json`` last. Only a
directory with a manifest is complete; every file the manifest lists must be there with its row
count, and the selected rows must be exactly the ids the scores mark as selected, or the release
stops with an :class:`InputError` naming the file.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.io.parquet import read_parquet_file, sha256_file
from lmsieve.schemas.document import ID, first_duplicate, validate_documents
from lmsieve.schemas.errors import InputError

MANIFEST = "manifest.json"
COMMANDS = ("select", "beam-select")


@dataclass
class SelectionDir:
    """A selection directory, read and checked."""

    path: str
    manifest: dict
    manifest_sha256: str
    documents: pa.Table  # the selected rows, file order, one schema
    scores: pa.Table | None  # id, score, eligible, selected (None: the job wrote no scores)
    files: list[dict]  # every file read: path (relative), rows, bytes, sha256

    @property
    def counts(self) -> dict:
        return self.manifest.get("counts", {})

    @property
    def method(self) -> str:
        return self.manifest.get("method", "")


def _read_listed(root: str, entry: dict) -> tuple[pa.Table, dict]:
    name = entry["path"]
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        raise InputError("listed in manifest.json but missing", path)
    t = read_parquet_file(path)
    if t.num_rows != entry.get("rows", t.num_rows):
        raise InputError(f"{t.num_rows} rows, manifest.json says {entry['rows']}", path)
    return t, {"path": name, "rows": t.num_rows, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def _unify(tables: list[pa.Table]) -> pa.Table:
    """One table with one schema (columns in first-file order, types promoted, no metadata)."""
    if not tables:
        raise InputError("no selected-*.parquet listed in manifest.json")
    t = pa.concat_tables([x.replace_schema_metadata(None) for x in tables], promote_options="permissive")
    return t.replace_schema_metadata(None).combine_chunks()


def read_selection(path: str) -> SelectionDir:
    """Read and check the selection in ``path`` (a local directory)."""
    path = os.fspath(path)
    mpath = os.path.join(path, MANIFEST)
    if not os.path.isdir(path):
        raise InputError("not a directory (expected a selection from `lmsieve select` or the Beam job)", path)
    if not os.path.isfile(mpath):
        raise InputError("no manifest.json: not a finished selection", path)
    try:
        with open(mpath, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", mpath) from None
    if manifest.get("command") not in COMMANDS:
        raise InputError(f"command {manifest.get('command')!r} is not a selection ({', '.join(COMMANDS)})", mpath)
    outputs = sorted(manifest.get("outputs", []), key=lambda o: o["path"])
    sel_entries = [o for o in outputs if o["path"].startswith("selected-")]
    score_entries = [o for o in outputs if o["path"] == "scores.parquet" or o["path"].startswith("scores-")]
    listed = {o["path"] for o in outputs}
    for p in sorted(glob.glob(os.path.join(path, "selected-*.parquet"))):
        if os.path.basename(p) not in listed:
            raise InputError("not listed in manifest.json (left from another run?)", p)

    files, docs = [], []
    for e in sel_entries:
        t, info = _read_listed(path, e)
        docs.append(validate_documents(t, source=os.path.join(path, e["path"])))
        files.append(info)
    documents = _unify(docs)
    scores = None
    if score_entries:
        parts = []
        for e in score_entries:
            t, info = _read_listed(path, e)
            parts.append(t.select([c for c in ("id", "score", "eligible", "selected") if c in t.column_names]))
            files.append(info)
        scores = _unify(parts)
    _check_consistent(path, manifest, documents, scores)
    return SelectionDir(path, manifest, sha256_file(mpath), documents, scores, files)


def _check_consistent(path: str, manifest: dict, docs: pa.Table, scores: pa.Table | None) -> None:
    n_sel = manifest.get("counts", {}).get("selected")
    if n_sel is not None and docs.num_rows != n_sel:
        raise InputError(f"selected-*.parquet hold {docs.num_rows} rows, manifest.json counts {n_sel} selected", path)
    ids = docs.column(ID)
    if pc.count_distinct(ids).as_py() != len(ids):
        row, first = first_duplicate(ids)
        raise InputError(f"duplicate id {ids[row].as_py()!r} across selected-*.parquet (first at row {first})",
                         f"{path}/selected-*.parquet", row)
    if scores is None:
        return
    for col in ("id", "score", "selected"):
        if col not in scores.column_names:
            raise InputError(f"scores have no {col!r} column", path)
    chosen = scores.filter(pc.fill_null(scores.column("selected"), False)).column(ID)
    same = len(chosen) == docs.num_rows and (
        docs.num_rows == 0 or pc.all(pc.is_in(ids, value_set=chosen.combine_chunks())).as_py())
    if not same:
        raise InputError(f"the scores mark {len(chosen)} documents selected, not the {docs.num_rows} "
                         "in selected-*.parquet", path)


__all__ = ["SelectionDir", "read_selection"]
